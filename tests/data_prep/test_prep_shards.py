"""Scale-out: prepare_shard × N + merge_shards gives the single run's bytes, for any N.

"Equal" means: the same files under tokenizer/, cpt/ (manifest, token shards, boundary index) and
sft/, byte for byte, and the same stats.json and contamination.jsonl.
"""

from __future__ import annotations

import pytest

from medllama.data import DataError, merge_shards, prepare, prepare_shard
from medllama.recipe import load_recipe

from .helpers import small_recipe, synthetic_docs, write_jsonl

COMPARED = ("tokenizer", "cpt", "sft", "stats.json", "contamination.jsonl")


def tree(root) -> dict[str, bytes]:
    files = {}
    for name in COMPARED:
        p = root / name
        for f in ([p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())):
            files[str(f.relative_to(root))] = f.read_bytes()
    return files


def sharded(recipe, tmp_path, n: int, **kw):
    outs = [prepare_shard(recipe, i, n, tmp_path / f"shard{n}-{i}", progress=False, **kw).uri for i in reversed(range(n))]
    return merge_shards(recipe, outs, tmp_path / f"merged{n}", progress=False, **kw)


@pytest.mark.parametrize("n", [2, 3])
def test_sharded_tiny_equals_single_run(tiny_run, tmp_path, n):
    merged = sharded(load_recipe("tiny"), tmp_path, n)
    assert merged.stats == tiny_run.stats
    want, got = tree(tiny_run.output_dir), tree(merged.output_dir)
    assert sorted(got) == sorted(want) and any(k.startswith("cpt/docs-") for k in got)
    assert [k for k in want if want[k] != got[k]] == []


def test_dedup_stays_global_across_shards_with_a_given_tokenizer(tiny_run, tmp_path):
    """Copies spread over files of different shards (exact and near); shards tokenize themselves."""
    pytest.importorskip("datasketch")
    docs = synthetic_docs("biomedical", 240, lo=40, hi=60)
    files = [write_jsonl(tmp_path / "src" / f"b{i}.jsonl", docs[i * 60:(i + 1) * 60] + docs[:5] + [d + " extra" for d in docs[60:64]])
             for i in range(4)]
    recipe = small_recipe([{"path": str(tmp_path / "src" / "b*.jsonl"), "domain": "biomedical"}],
                          near_dup_threshold=0.8)
    recipe.model.tokenizer = str(tiny_run.tokenizer_dir)
    assert len(files) == 4
    single = prepare(recipe, tmp_path / "single", progress=False)
    drops = single.stats["domains"]["biomedical"]["drops"]
    # copies of docs[:5] in every file, and the "extra" variants (file 0) of documents of file 1
    assert drops == {"duplicate": 5 * 4 + 4 * 3, "near_duplicate": 4}
    want = tree(single.output_dir)
    got = tree(sharded(recipe, tmp_path, 3).output_dir)
    assert [k for k in want if want[k] != got.get(k)] == []
    parallel = prepare(recipe, tmp_path / "parallel", workers=2, progress=False)
    assert tree(parallel.output_dir) == want


def test_merge_refuses_missing_or_foreign_shards(tmp_path):
    recipe = load_recipe("tiny")
    a = prepare_shard(recipe, 0, 2, tmp_path / "a", progress=False).uri
    with pytest.raises(DataError, match="every shard"):
        merge_shards(recipe, [a], tmp_path / "m")
    other = load_recipe("tiny", {"data.min_chars": 5})
    b = prepare_shard(other, 1, 2, tmp_path / "b", progress=False).uri
    with pytest.raises(DataError, match="another recipe"):
        merge_shards(recipe, [a, b], tmp_path / "m")
