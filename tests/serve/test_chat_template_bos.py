"""A tokenizer that starts every encoding with BOS (LLaMA's do): the exported chat template carries BOS, so
vLLM (which tokenizes a rendered chat without adding special tokens) and `medllama serve` both prompt a
chat exactly as the SFT rows were built. No server needed: both tokenizations run here."""

from __future__ import annotations

from collections import Counter

from tokenizers import processors

from medllama.data.instructions import Example, build_example, chat_template
from medllama.data.tokenizer import bos_prefix, train_bpe
from medllama.recipe import load_recipe
from medllama.serve.openai_model import MedllamaModel
from medllama.serve.resolve import ServedModel

TEXTS = ["The patient was given iron for anemia.", "### Instruction:\n### Input:\n### Response:\n"] * 20


def test_a_bos_tokenizers_chat_prompt_is_the_sft_prompt_for_vllm_and_for_our_server(tmp_path):
    tok = train_bpe(TEXTS, 300, tmp_path / "tok")
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{tok.bos_token} $A", special_tokens=[(tok.bos_token, tok.bos_token_id)])
    assert bos_prefix(tok) == [tok.bos_token_id]
    spec = load_recipe("tiny").data
    tok.chat_template = chat_template(spec, bos=True)
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Name a cause of anemia."}]

    ids, labels = build_example(tok, Example("Name a cause of anemia.", "system: Answer briefly.", "Iron."), spec, Counter())
    sft_prompt = ids[:int((labels != -100).nonzero()[0][0])].tolist()
    vllm = tok(tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"]
    served = MedllamaModel(ServedModel(tmp_path, "m", str(tmp_path)))
    served.tokenizer = tok
    assert sft_prompt[0] == tok.bos_token_id
    assert vllm == sft_prompt
    assert served._chat_ids(messages) == sft_prompt

    tok.chat_template = chat_template(spec)  # a model exported before the template carried BOS: still one BOS
    assert served._chat_ids(messages) == sft_prompt
