"""The stage's outputs on the bundled samples: layout, formats, masking and the stats it reports."""

from __future__ import annotations

import json

import numpy as np
from transformers import AutoTokenizer

from medllama.data.packed import IGNORE_INDEX, Manifest, PackedDataset
from medllama.recipe import load_recipe
from medllama.storage import local_path

from .helpers import packed_examples


def test_layout_and_manifests(tiny_run):
    out = tiny_run.output_dir
    for name in ("tokenizer", "cpt", "sft", "stats.json", "length_hist.png"):
        assert (out / name).exists(), name
    assert not list(out.glob(".work-*")), "the spool directory is removed"
    cpt, sft = Manifest.load(tiny_run.cpt_dir), Manifest.load(tiny_run.sft_dir)
    assert (cpt.kind, sft.kind) == ("cpt", "sft")
    assert cpt.seq_len == sft.seq_len == 128
    assert cpt.vocab_size == 2048 and cpt.dtype == "uint16"
    assert all(s.labels is None for s in cpt.shards) and all(s.labels for s in sft.shards)
    assert json.loads((out / "stats.json").read_text()) == tiny_run.stats


def test_tokenizer_loads_with_special_tokens(tiny_run):
    tok = AutoTokenizer.from_pretrained(tiny_run.tokenizer_dir)
    assert (tok.unk_token, tok.bos_token, tok.eos_token, tok.pad_token) == ("<unk>", "<s>", "</s>", "<pad>")
    assert len(tok) == 2048
    text = "Metformin is a common first-line medication for type 2 diabetes mellitus."
    assert tok.decode(tok(text)["input_ids"]) == text


def test_every_row_is_seq_len_and_in_vocab(tiny_run):
    for d in (tiny_run.cpt_dir, tiny_run.sft_dir):
        ds = PackedDataset(d)
        assert len(ds) > 100
        for i in range(len(ds)):
            row = ds[i]
            assert row["input_ids"].shape == row["labels"].shape == (128,)
            assert row["input_ids"].max() < 2048


def test_sft_labels_train_only_the_response_and_eos(tiny_run):
    tok = AutoTokenizer.from_pretrained(tiny_run.tokenizer_dir)
    ds = PackedDataset(tiny_run.sft_dir)
    with open(local_path(load_recipe("tiny").data.instructions[0])) as f:
        records = [json.loads(line) for line in f]
    outputs = {r.get("output") or r["messages"][-1]["content"] for r in records}
    examples = packed_examples(ds)
    assert len(examples) == tiny_run.stats["sft"]["examples"] > len(ds)  # several examples share a row
    for ids, labels in examples[::7]:
        trained = labels != IGNORE_INDEX
        first = np.argmax(trained)
        assert trained[first:].all(), "one trained span, to the end of the example"
        assert (labels[trained] == ids[trained]).all()
        prompt = tok.decode(ids[:first])
        assert prompt.startswith("### Instruction:\n") and prompt.endswith("### Response:\n")
        if ids[-1] == tok.eos_token_id:
            assert tok.decode(ids[first:-1]) in outputs


def test_tiny_stats_ratio_and_counts(tiny_run):
    s = tiny_run.stats
    assert s["tokenizer"]["trained"] and s["tokenizer"]["eos_id"] == 2
    achieved, target = s["ratio"]["achieved_share"], s["ratio"]["target_share"]
    for d in target:
        assert abs(achieved[d] - target[d]) < 0.01, (d, achieved, target)
    # no token budget: the limiting domain is used whole, the others are down-sampled without repeats
    used_whole = [d for d, v in s["domains"].items() if v["tokens_selected"] == v["tokens_available"]]
    assert used_whole
    for v in s["domains"].values():
        assert v["docs_selected"] <= v["docs_kept"] == v["docs_read"]
    assert s["cpt"]["rows"] * 128 == s["cpt"]["tokens"]
    assert s["cpt"]["tokens"] + s["cpt"]["tokens_dropped_tail"] == sum(v["tokens_selected"] for v in s["domains"].values())
    assert s["sft"]["examples"] == s["sft"]["examples_read"] >= 300 and s["sft"]["rows"] < s["sft"]["examples"]
    assert s["sft"]["truncated"] < s["sft"]["examples"] * 0.1
    # packing: the padding share falls well below one example per row's
    assert s["sft"]["padding_share"] < 0.5 * s["sft"]["padding_share_one_per_row"]
    assert abs(s["sft"]["padding_share"] - (1 - s["sft"]["tokens"] / (s["sft"]["rows"] * 128))) < 1e-12
