"""Model pieces on one process: the masked loss, and LoRA export to a plain HF directory."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

from medllama.data.packed import PackedDataset
from medllama.recipe import LoraSpec, load_recipe
from medllama.train.model import build_model, causal_lm_loss, export


def test_masked_positions_do_not_contribute(tiny_assets):
    row = PackedDataset(tiny_assets["sft"])[0]
    labels = torch.from_numpy(row["labels"])[None]
    torch.manual_seed(0)
    logits = torch.randn(1, labels.shape[1], 300, requires_grad=True)
    loss = causal_lm_loss(logits, labels)
    # manual: cross-entropy of position t predicting label t+1, only where that label is trained on
    keep = [t for t in range(labels.shape[1] - 1) if labels[0, t + 1] != -100]
    manual = torch.stack([F.cross_entropy(logits[0, t], labels[0, t + 1]) for t in keep]).mean()
    assert len(keep) < labels.shape[1] // 2  # the prompt and the padding are masked
    assert loss.item() == pytest.approx(manual.item(), rel=1e-6)
    loss.backward()
    masked = [t for t in range(labels.shape[1] - 1) if t not in keep]
    assert torch.count_nonzero(logits.grad[0, masked]) == 0


def test_all_masked_batch_gives_zero_loss_not_nan():
    logits = torch.randn(2, 8, 16, requires_grad=True)
    loss = causal_lm_loss(logits, torch.full((2, 8), -100))
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(logits.grad) == 0


def test_lora_export_is_a_plain_merged_hf_model(tiny_assets, tmp_path):
    recipe = load_recipe(tiny_assets["recipe"])
    stage = recipe.sft.model_copy(update={"lora": LoraSpec(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"])})
    tok = AutoTokenizer.from_pretrained(tiny_assets["tokenizer"])
    model = build_model(recipe, stage, None, tok)
    with torch.no_grad():  # make the adapters non-trivial so the merge matters
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    ids = torch.tensor([tok.encode("the patient with asthma was treated with")])
    model.eval()
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    out = export(model, tok, tmp_path / "model")
    with safe_open(out / "model.safetensors", "pt") as f:
        keys = list(f.keys())
    assert keys and not any("lora" in k or "base_model" in k for k in keys)
    assert not (out / "adapter_config.json").exists()
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == tok.eos_token_id
    loaded = AutoModelForCausalLM.from_pretrained(out).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=ids).logits, expected, atol=1e-4)
    assert len(AutoTokenizer.from_pretrained(out)) == len(tok)


@pytest.mark.parametrize("attn", [None, "sdpa", "eager"])
def test_packed_documents_do_not_attend_across_boundaries(tiny_assets, attn):
    """position_ids from the packed data restart per document; the model then masks across documents,
    with the default kernel, SDPA and eager attention alike."""
    ds = PackedDataset(tiny_assets["cpt"])
    row = ds[3]
    starts = ds.doc_starts(3)
    assert len(starts) >= 2 and row["position_ids"][starts[0]] == 0
    recipe = load_recipe(tiny_assets["recipe"])
    tok = AutoTokenizer.from_pretrained(tiny_assets["tokenizer"])
    stage = recipe.cpt.model_copy(update={"attn_implementation": attn})
    model = build_model(recipe, stage, None, tok).eval()
    assert model.config._attn_implementation == (attn or "sdpa")
    ids, pos = torch.from_numpy(row["input_ids"])[None], torch.from_numpy(row["position_ids"])[None]
    b = int(starts[1])  # a document that starts inside the row
    changed = ids.clone()
    changed[0, :b] = tok.pad_token_id  # rewrite everything before it
    with torch.no_grad():
        a1 = model(input_ids=ids, position_ids=pos, use_cache=False).logits[0, b:b + 5]
        a2 = model(input_ids=changed, position_ids=pos, use_cache=False).logits[0, b:b + 5]
    assert torch.allclose(a1, a2, atol=1e-5)


def test_flash_attention_without_its_package_or_gpu_fails_with_the_fix(tiny_assets):
    recipe = load_recipe(tiny_assets["recipe"])
    tok = AutoTokenizer.from_pretrained(tiny_assets["tokenizer"])
    stage = recipe.cpt.model_copy(update={"attn_implementation": "flash_attention_2"})
    with pytest.raises(ValueError, match="use 'sdpa'"):
        build_model(recipe, stage, None, tok)


def test_packed_sft_example_sees_only_itself(tiny_assets, tmp_path):
    """Two instruction examples packed into one row (RowPacker, as prepare writes them): the second one's
    logits are those it has alone, so packing changes no example's loss."""
    from medllama.data.instructions import RowPacker
    from medllama.data.packed import Manifest, PackedWriter

    tok = AutoTokenizer.from_pretrained(tiny_assets["tokenizer"])
    texts = ["### Instruction: what treats asthma ? ### Response: heparin .", "### Instruction: what treats gout ? ### Response: statin ."]
    examples = [np.array(tok.encode(t, add_special_tokens=False) + [tok.eos_token_id]) for t in texts]
    writer = PackedWriter(tmp_path, Manifest("sft", 64, "uint16", len(tok), tok.eos_token_id, tok.pad_token_id))
    packer = RowPacker(writer)
    for ids in examples:
        packer.add(ids, ids.copy())
    packer.close()
    writer.close()
    row = PackedDataset(tmp_path)[0]
    first, second = len(examples[0]), examples[1]
    recipe = load_recipe(tiny_assets["recipe"])
    model = build_model(recipe, recipe.sft, None, tok).eval()
    with torch.no_grad():
        packed = model(input_ids=torch.from_numpy(row["input_ids"])[None],
                       position_ids=torch.from_numpy(row["position_ids"])[None], use_cache=False).logits
        alone = model(input_ids=torch.from_numpy(second)[None], use_cache=False).logits
    assert torch.allclose(packed[0, first:first + len(second)], alone[0], atol=1e-5)
