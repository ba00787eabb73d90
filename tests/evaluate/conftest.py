"""A tiny random LlamaForCausalLM with a BPE tokenizer trained here, saved the way training saves models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medllama.storage import SAMPLES_DIR

EVAL_SAMPLES = SAMPLES_DIR / "eval"


def _corpus() -> list[str]:
    texts = []
    for rec in json.loads((EVAL_SAMPLES / "pubmedqa" / "ori_pqal.json").read_text()).values():
        texts += [rec["QUESTION"], *rec["CONTEXTS"], rec["LONG_ANSWER"]]
    for line in (EVAL_SAMPLES / "medqa" / "US" / "4_options" / "phrases_no_exclude_test.jsonl").open():
        r = json.loads(line)
        texts += [r["question"], *r["options"].values()]
    texts += ["### Instruction:", "### Input:", "### Response:", "Answer with yes, no, or maybe.", "A B C D"]
    return texts


def build_tiny_model(path: Path, seed: int = 0) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    bpe.train_from_iterator(_corpus(), trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bos = bpe.token_to_id("<s>")
    bpe.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", bos)])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                  pad_token="<pad>")
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         initializer_range=0.2, bos_token_id=bos, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(config).eval()
    tok.save_pretrained(path)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def other_tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("other-tiny-model"), seed=1)


@pytest.fixture(scope="session")
def lm(tiny_model):
    from medllama.evaluate.scoring import load_model

    return load_model(tiny_model, device="cpu")
