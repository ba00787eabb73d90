"""Cleaning and exact/near deduplication, alone and as counted by `prepare`."""

from __future__ import annotations

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
