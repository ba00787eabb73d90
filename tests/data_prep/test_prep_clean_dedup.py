"""Cleaning and exact/near deduplication, alone and as counted by `prepare`."""

from __future__ import annotations

import random

import numpy as np
import pytest

from medllama.data import prepare
from medllama.data.clean import clean_text
from medllama.data.dedup import ExactDedup

from .helpers import small_recipe, synthetic_docs, write_jsonl


def test_clean_text():
    assert clean_text("ﬁbrosis\u00a0 and   ＡＢＣ") == "fibrosis and ABC"  # NFKC: ligature, full-width, nbsp
    assert clean_text("a\x00b\u200bc\x1bd") == "abcd"  # control and zero-width characters
    assert clean_text("  line one \t\r\nline two\n\n\n\n\nnext para  ") == "line one\nline two\n\nnext para"


def test_exact_dedup():
    d = ExactDedup()
    assert [d.is_new(t) for t in ("a", "b", "a", "a", "c")] == [True, True, False, False, True]


def test_prepare_counts_duplicates_and_short_docs(tmp_path):
    docs = synthetic_docs("general", 150)
    # 20 exact copies, 5 copies that differ only by whitespace/NFKC (equal after cleaning), 7 too short
    extra = docs[:20] + [d.replace(" ", "  ", 3) for d in docs[20:25]] + ["tiny"] * 7
    write_jsonl(tmp_path / "g.jsonl", docs + extra)
    # a copy in another domain is a duplicate too: the first occurrence wins
    write_jsonl(tmp_path / "b.jsonl", docs[:10] + synthetic_docs("biomedical", 150))
    recipe = small_recipe([{"path": str(tmp_path / "g.jsonl"), "domain": "general"},
                           {"path": str(tmp_path / "b.jsonl"), "domain": "biomedical"}], min_chars=20)
    s = prepare(recipe, tmp_path / "out", progress=False).stats["domains"]
    assert s["general"]["docs_read"] == 182
    assert s["general"]["drops"] == {"duplicate": 25, "too_short": 7}
    assert s["general"]["docs_kept"] == 150
    assert s["biomedical"]["drops"] == {"duplicate": 10} and s["biomedical"]["docs_kept"] == 150


def test_near_duplicates_optional(tmp_path):
    pytest.importorskip("datasketch")
    docs = synthetic_docs("biomedical", 120, lo=40, hi=60)
    near = [d + " extra" for d in docs[:15]]  # one word more: Jaccard of 5-gram shingles well above 0.8
    write_jsonl(tmp_path / "b.jsonl", docs + near)
    recipe = small_recipe([{"path": str(tmp_path / "b.jsonl"), "domain": "biomedical"}])
    s = prepare(recipe, tmp_path / "out", near_dup_threshold=0.8, progress=False).stats["domains"]["biomedical"]
    assert s["drops"].get("near_duplicate", 0) >= 12 and s["docs_kept"] <= 123


def test_band_prefilter_keeps_what_the_index_alone_keeps():
    """`colliding` only spares the index documents it would have kept anyway: over a mix of unique
    documents, near copies (words added or changed) and exact copies, the decisions with the prefilter
    equal those of querying every document, and the prefilter spares the unique ones."""
    pytest.importorskip("datasketch")
    from medllama.data.dedup import NearDedup

    rng = random.Random(7)
    docs = synthetic_docs("clinical", 300, lo=30, hi=80)
    variants = [d + " extra words" for d in docs[:40]]  # near copies
    variants += [d.replace("patient", "person", 1) for d in docs[40:60]]  # sometimes near, sometimes not
    variants += [rng.choice(docs) for _ in range(10)]  # exact copies (the exact digest would drop them first)
    corpus = docs + variants
    rng.shuffle(corpus)
    signer = NearDedup(threshold=0.8)
    sigs = np.stack([signer.signature(t) for t in corpus])

    every = NearDedup(threshold=0.8)
    expected = [every.is_new_signature(s) for s in sigs]
    pre = NearDedup(threshold=0.8)
    collide = np.concatenate(pre.colliding([sigs[:200], sigs[200:]], chunk=64))  # two arrays, chunked reads
    got = [True if not c else pre.is_new_signature(s) for c, s in zip(collide, sigs)]
    assert got == expected
    assert expected.count(False) >= 40  # the near and exact copies were found
    assert 0 < collide.sum() < len(corpus) // 2  # most documents skipped the index
    assert all(collide[i] for i, new in enumerate(expected) if not new)  # every drop was a colliding row
