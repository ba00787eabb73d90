"""Packing and the whole stage: EOS between documents, determinism, SFT rows, a given tokenizer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from transformers import AutoTokenizer

from medllama.data import prepare
from medllama.data.clean import clean_text
from medllama.data.packed import IGNORE_INDEX, PackedDataset
from medllama.storage import sha256_tree

from .helpers import packed_examples


def test_cpt_rows_are_documents_separated_by_eos(tmp_path, corpus, corpus_recipe):
    res = prepare(corpus_recipe, tmp_path / "out", progress=False)
    tok = AutoTokenizer.from_pretrained(res.tokenizer_dir)
    ds = PackedDataset(res.cpt_dir)
    stream = np.concatenate([ds[i]["input_ids"] for i in range(len(ds))])
    cuts = np.flatnonzero(stream == tok.eos_token_id)
    pieces = np.split(stream, cuts + 1)
    complete = pieces[:-1]  # the last piece runs into the dropped tail
    assert len(complete) == len(cuts) and all(p[-1] == tok.eos_token_id for p in complete)
    originals = {clean_text(json.loads(line)["text"]) for p in corpus.values() for line in open(p)}
    decoded = [tok.decode(p[:-1]) for p in complete]
    assert all(d in originals for d in decoded), "every EOS-delimited span is exactly one source document"
    assert len(decoded) == res.stats["cpt"]["docs"] - (1 if len(pieces[-1]) else 0)
    assert len({d.split(" document ")[0] for d in decoded}) == 3, "domains interleaved"


def test_deterministic(tmp_path, corpus_recipe):
    a = prepare(corpus_recipe, tmp_path / "a", progress=False)
    b = prepare(corpus_recipe, tmp_path / "b", progress=False)
    for name in ("tokenizer", "cpt", "sft", "stats.json"):
        assert sha256_tree(a.output_dir / name) == sha256_tree(b.output_dir / name), name
    corpus_recipe.data.seed = 99
    c = prepare(corpus_recipe, tmp_path / "c", progress=False)
    assert sha256_tree(a.cpt_dir) != sha256_tree(c.cpt_dir)


def test_rerun_into_same_dir_replaces_outputs(tmp_path, corpus_recipe):
    out = tmp_path / "out"
    prepare(corpus_recipe, out, progress=False)
    (out / "cpt" / "tokens-00099.bin").write_bytes(b"stale")
    prepare(corpus_recipe, out, progress=False)
    assert not (out / "cpt" / "tokens-00099.bin").exists()


def test_sft_rows_pack_examples_and_mask_prompt_and_padding(tmp_path, corpus_recipe):
    corpus_recipe.data.seq_len = 256  # a 300-token vocabulary spends ~2 characters per token: 2-3 examples a row
    res = prepare(corpus_recipe, tmp_path / "out", progress=False)
    tok = AutoTokenizer.from_pretrained(res.tokenizer_dir)
    ds = PackedDataset(res.sft_dir)
    assert res.stats["sft"]["examples"] == 13 and len(ds) < 13 and res.stats["sft"]["truncated"] == 0
    seen = []
    for ids, labels in packed_examples(ds):
        trained = np.flatnonzero(labels != IGNORE_INDEX)
        assert (trained == np.arange(trained[0], len(ids))).all() and ids[-1] == tok.eos_token_id
        seen.append((tok.decode(ids[: trained[0]]), tok.decode(labels[trained])))
    assert len(seen) == 13
    assert seen[0] == ("### Instruction:\nWhat is finding 0?\n\n### Response:\n", "Finding 0 is a sign of fever.</s>")
    assert ("### Instruction:\nAnswer with yes, no, or maybe.\n\n### Input:\nContext: study 1 of the heart."
            "\n\n### Response:\n", "no</s>") in seen
    assert ("### Instruction:\nName a kidney test.\n\n### Input:\nsystem: Be brief.\n\n### Response:\n",
            "Serum creatinine.</s>") in seen


def test_tokenizer_that_adds_bos_gets_bos_before_documents_and_prompts(tmp_path, corpus_recipe):
    from tokenizers.processors import TemplateProcessing

    first = prepare(corpus_recipe, tmp_path / "a", progress=False)
    tok = AutoTokenizer.from_pretrained(first.tokenizer_dir)
    tok.backend_tokenizer.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.bos_token_id)])
    tok.save_pretrained(tmp_path / "llama-like")  # encodes like LLaMA-2: BOS first
    corpus_recipe.model.tokenizer = str(tmp_path / "llama-like")
    res = prepare(corpus_recipe, tmp_path / "b", progress=False)
    bos, eos = tok.bos_token_id, tok.eos_token_id
    stream = np.concatenate([r["input_ids"] for r in (PackedDataset(res.cpt_dir)[i] for i in range(30))])
    assert stream[0] == bos
    after_eos = stream[np.flatnonzero(stream[:-1] == eos) + 1]
    assert len(after_eos) > 3 and (after_eos == bos).all()
    assert (stream == bos).sum() == len(after_eos) + 1
    assert all(ids[0] == bos and labels[0] == IGNORE_INDEX for ids, labels in packed_examples(PackedDataset(res.sft_dir)))
