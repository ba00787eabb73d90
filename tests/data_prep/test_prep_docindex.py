"""The document-boundary index beside CPT shards, and the position_ids PackedDataset derives from it."""

from __future__ import annotations

import json

import numpy as np

from medllama.data.packed import Manifest, PackedDataset, PackedWriter


def test_position_ids_restart_after_every_eos(tiny_run):
    ds = PackedDataset(tiny_run.cpt_dir)
    eos = ds.manifest.eos_id
    assert all(s.docs for s in ds.manifest.shards)
    restarts = 0
    for i in range(len(ds)):
        row = ds[i]
        ids, pos = row["input_ids"], row["position_ids"]
        after_eos = np.flatnonzero(ids[:-1] == eos) + 1
        starts = np.flatnonzero(pos == 0)
        assert starts[0] == 0
        assert list(starts[1:]) == list(after_eos), i  # a new document exactly after each EOS, nowhere else
        assert list(ds.doc_starts(i)) == list(after_eos)
        seg = np.diff(np.concatenate([starts, [len(pos)]]))
        assert all((pos[a:a + n] == np.arange(n)).all() for a, n in zip(starts, seg))
        restarts += len(after_eos)
    assert restarts >= tiny_run.stats["cpt"]["docs"] - len(ds) - 1  # most documents start mid-row


def test_index_is_small_and_sft_has_one_too(tiny_run):
    for directory, docs in ((tiny_run.cpt_dir, "docs"), (tiny_run.sft_dir, "examples")):
        m = Manifest.load(directory)
        size = sum((directory / s.docs).stat().st_size for s in m.shards)
        assert size <= 4 * (m.rows + 1 + m.stats[docs])


def test_manifest_without_index_still_loads(tmp_path):
    """A directory written before the index existed: no `docs` key; positions simply count 0..S-1."""
    w = PackedWriter(tmp_path, Manifest("cpt", 8, "uint16", 100, 2, 3))
    w.add(np.array([5, 6, 2, 7, 8, 9, 2, 4]))
    w.close()
    raw = json.loads((tmp_path / "manifest.json").read_text())
    for shard in raw["shards"]:
        shard.pop("docs")
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    row = PackedDataset(tmp_path)[0]
    assert list(row["position_ids"]) == list(range(8)) and list(row["labels"]) == list(row["input_ids"])


def test_writer_index_round_trip(tmp_path):
    w = PackedWriter(tmp_path, Manifest("cpt", 8, "uint16", 100, 2, 3), rows_per_shard=2)
    starts = [[3, 7], [], [1], [2, 4, 6]]
    for s in starts:
        w.add(np.arange(8), doc_starts=np.array(s))
    w.close()
    ds = PackedDataset(tmp_path)
    assert len(ds.manifest.shards) == 2
    assert [list(ds.doc_starts(i)) for i in range(4)] == starts
    assert list(ds[0]["position_ids"]) == [0, 1, 2, 0, 1, 2, 3, 0]
