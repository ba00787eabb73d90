"""Reading sources: every format, bad input counted per reason, missing sources fail before any work."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from medllama.data import prepare
from medllama.data.sources import count_skipped, iter_file, resolve
from medllama.recipe import Source
from medllama.storage import StorageError

from .helpers import small_recipe, synthetic_docs, write_jsonl


def read(path: str | Path, **kw) -> tuple[list[str], Counter]:
    drops: Counter = Counter()
    (rs,) = resolve([Source(path=str(path), domain="biomedical", **kw)])
    count_skipped(rs, drops)  # as a prepare shard reads a source: skipped files counted, then file by file
    return [t for uri in rs.files for t in iter_file(rs, uri, drops)], drops


def test_bad_jsonl_lines_are_counted_per_reason(tmp_path):
    f = tmp_path / "mixed.jsonl"
    f.write_bytes(b"\n".join([
        b"\xef\xbb\xbf" + json.dumps({"text": "good one"}).encode(),  # with a UTF-8 BOM
        b'{"text": "unterminated',                    # malformed JSON
        b'{"text": "caf\xe9 latin-1 byte"}',           # not UTF-8
        json.dumps({"body": "wrong field"}).encode(),  # missing field
        json.dumps(["a", "list"]).encode(),            # not an object
        json.dumps({"text": 42}).encode(),             # not text
        b"",                                           # blank lines are skipped silently
        json.dumps({"text": "good two"}).encode(),
    ]))
    texts, drops = read(f)
    assert texts == ["good one", "good two"]
    assert drops == Counter(malformed_json=1, undecodable=1, missing_field=2, not_text=1)


def test_text_field_and_empty_file(tmp_path):
    write_jsonl(tmp_path / "d" / "a.jsonl", ["x", "y"], field="abstract")
    (tmp_path / "d" / "empty.jsonl").write_bytes(b"")
    texts, drops = read(tmp_path / "d", text_field="abstract")
    assert texts == ["x", "y"] and drops == Counter(empty_file=1)


def test_gzip_jsonl_and_txt_paragraphs(tmp_path):
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as f:
        f.write(json.dumps({"text": "from gzip"}) + "\n")
    with gzip.open(tmp_path / "b.txt.gz", "wb") as f:
        f.write(b"first paragraph\nstill first\n\n\nsecond \xff bad\n\nthird\n")
    (tmp_path / "c.txt").write_text("one document without blank lines\nsecond line\n")
    texts, drops = read(tmp_path / "*.gz")
    assert texts == ["from gzip", "first paragraph\nstill first\n", "third\n"]
    assert drops == Counter(undecodable=1)
    assert read(tmp_path / "c.txt")[0] == ["one document without blank lines\nsecond line\n"]


def test_truncated_gzip_keeps_what_was_read(tmp_path):
    data = gzip.compress("".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(2000)).encode())
    (tmp_path / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    texts, drops = read(tmp_path / "cut.jsonl.gz")
    assert 0 < len(texts) < 2000 and drops == Counter(unreadable_file=1)


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["p one", None, "p two"]}), tmp_path / "t.parquet")
    pq.write_table(pa.table({"other": ["z"]}), tmp_path / "u.parquet")
    texts, drops = read(tmp_path / "*.parquet")
    assert texts == ["p one", "p two"] and drops == Counter(not_text=1, missing_field=1)


def test_unsupported_files_in_a_directory_are_skipped_and_counted(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", ["kept"])
    (tmp_path / "README.pdf").write_bytes(b"%PDF")
    texts, drops = read(tmp_path)
    assert texts == ["kept"] and drops == Counter(unsupported_file=1)


def test_missing_source_fails_before_any_work(tmp_path, corpus):
    missing = str(tmp_path / "nowhere" / "clinical.jsonl")
    recipe = small_recipe([{"path": str(corpus["biomedical"]), "domain": "biomedical"},
                           {"path": missing, "domain": "clinical"}])
    out = tmp_path / "out"
    with pytest.raises(StorageError, match="nowhere/clinical.jsonl"):
        prepare(recipe, out, progress=False)
    assert not out.exists(), "nothing written before the sources are checked"


def test_source_without_readable_files_fails(tmp_path, corpus):
    (tmp_path / "pdfs").mkdir()
    (tmp_path / "pdfs" / "x.pdf").write_bytes(b"%PDF")
    recipe = small_recipe([{"path": str(corpus["biomedical"]), "domain": "biomedical"},
                           {"path": str(tmp_path / "pdfs"), "domain": "general"}])
    with pytest.raises(StorageError, match="pdfs"):
        prepare(recipe, tmp_path / "out", progress=False)


def test_missing_instruction_file_fails_before_any_work(tmp_path, corpus):
    recipe = small_recipe([{"path": str(corpus["biomedical"]), "domain": "biomedical"}], [str(tmp_path / "no-inst.jsonl")])
    with pytest.raises(StorageError, match="no-inst.jsonl"):
        prepare(recipe, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_prepare_counts_bad_input_in_stats(tmp_path):
    good = synthetic_docs("biomedical", 200)
    src = tmp_path / "bio"
    write_jsonl(src / "a.jsonl", good[:100])
    with gzip.open(src / "b.jsonl.gz", "wt") as f:
        f.writelines(json.dumps({"text": t}) + "\n" for t in good[100:])
    (src / "c.jsonl").write_bytes(b'{"text": "bad \xff"}\n{oops\n{"txt": "x"}\n')
    (src / "d.jsonl").write_bytes(b"")
    res = prepare(small_recipe([{"path": str(src), "domain": "biomedical"}]), tmp_path / "out", progress=False)
    bio = res.stats["domains"]["biomedical"]
    assert bio["docs_read"] == 200 and bio["docs_kept"] == 200
    assert bio["drops"] == {"empty_file": 1, "malformed_json": 1, "missing_field": 1, "undecodable": 1}
    assert res.stats["ratio"]["domains_without_data"] == ["clinical", "general"]
    assert res.stats["ratio"]["achieved_share"] == {"biomedical": 1.0}


def test_s3_sources_and_missing_prefix(tmp_path, s3):
    for i, chunk in enumerate((synthetic_docs("biomedical", 150)[:75], synthetic_docs("biomedical", 150)[75:])):
        s3.put_object(Bucket="corpus", Key=f"bio/part-{i}.jsonl.gz",
                      Body=gzip.compress("".join(json.dumps({"text": t}) + "\n" for t in chunk).encode()))
    texts, drops = read("s3://corpus/bio/")
    assert len(texts) == 150 and not drops
    recipe = small_recipe([{"path": "s3://corpus/bio/", "domain": "biomedical"},
                           {"path": "s3://corpus/clinical/", "domain": "clinical"}])
    with pytest.raises(StorageError, match="s3://corpus/clinical/"):
        prepare(recipe, tmp_path / "out", progress=False)


def test_s3_output_is_uploaded(s3, corpus_recipe):
    res = prepare(corpus_recipe, "s3://corpus/runs/1/prepare", progress=False)
    assert res.uri == "s3://corpus/runs/1/prepare" and (res.cpt_dir / "manifest.json").is_file()
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="corpus", Prefix="runs/1/prepare/")["Contents"]}
    for name in ("stats.json", "cpt/manifest.json", "sft/manifest.json", "tokenizer/tokenizer.json", "cpt/tokens-00000.bin"):
        assert f"runs/1/prepare/{name}" in keys


def test_missing_tokenizer_fails_before_any_work(tmp_path, corpus):
    recipe = small_recipe([{"path": str(corpus["biomedical"]), "domain": "biomedical"}])
    recipe.model.tokenizer = str(tmp_path / "no-tokenizer")
    with pytest.raises(StorageError, match="no-tokenizer"):
        prepare(recipe, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_lone_surrogate_escape_is_cleaned_not_fatal(tmp_path):
    """JSON may escape half of a surrogate pair ("\\ud800"): Python decodes it, but no UTF-8 consumer (the
    content hash, the tokenizer) accepts it. The cleaning removes it like a control character."""
    good = synthetic_docs("biomedical", 60)
    src = write_jsonl(tmp_path / "a.jsonl", good)
    with open(src, "a") as f:
        f.write('{"text": "a broken \\ud800 escape inside a document of the corpus"}\n')
    res = prepare(small_recipe([{"path": str(src), "domain": "biomedical"}]), tmp_path / "out", progress=False)
    bio = res.stats["domains"]["biomedical"]
    assert bio["docs_read"] == 61 and bio["docs_kept"] == 61 and bio["drops"] == {}
