"""The shard and merge components, called directly with stand-in artifacts (the first tier of component
tests): the merged dataset equals the single-task prepare and its artifact carries the URI."""

# no `from __future__ import annotations`: KFP reads the pipeline's annotations as real types

import json
from types import SimpleNamespace

from components.prepare.component import merge_shards, prepare_shard


class _Artifact(SimpleNamespace):
    def __init__(self, path):
        super().__init__(path=str(path), metadata={})


class _Metrics(_Artifact):
    def log_metric(self, key, value):
        self.metadata[key] = value


def test_shards_then_merge(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    work = str(tmp_path / "work")
    shards = []
    for i in range(2):
        art = _Artifact(tmp_path / f"shard{i}.json")
        prepare_shard.python_func(recipe="tiny", overrides={}, work_uri=work, run_id="r1", shard_index=i,
                                  num_shards=2, shard=art)
        assert art.metadata["uri"] == f"{work}/r1/prepare-shards/{i:05d}"
        shards.append(art)
    dataset, stats, report = _Artifact(tmp_path / "ds.json"), _Metrics(tmp_path / "m"), _Artifact(tmp_path / "r.md")
    merge_shards.python_func(recipe="tiny", overrides={}, work_uri=work, run_id="r1", shards=shards,
                             dataset=dataset, stats=stats, report=report)
    assert dataset.metadata["uri"] == f"{work}/r1/prepare" and dataset.metadata["shards"] == 2
    written = json.loads(open(dataset.path).read())
    assert stats.metadata["cpt/rows"] == written["cpt"]["rows"] > 0
    assert "decontamination/sets/medqa/docs_matched" in stats.metadata
    assert open(report.path).read().startswith("# Data preparation")


def test_parallel_for_through_kfp_local(tmp_path, monkeypatch):
    """The ParallelFor wiring the pipeline uses, run by kfp.local (second tier): shards fan out, merge collects."""
    from kfp import dsl, local

    from components.prepare.component import shard_indices

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    work = str(tmp_path / "work")

    @dsl.pipeline(name="prepare-sharded")
    def sharded(recipe: str = "tiny", overrides: dict = {}, work_uri: str = work, prepare_shards: int = 3):
        common = dict(recipe=recipe, overrides=overrides)
        indices = shard_indices(num_shards=prepare_shards)
        with dsl.ParallelFor(indices.output, name="prepare-shards") as i:
            shard = prepare_shard(work_uri=work_uri, run_id="run", shard_index=i, num_shards=prepare_shards, **common)
        merge_shards(work_uri=work_uri, run_id="run", shards=dsl.Collected(shard.outputs["shard"]), **common)

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    sharded()
    stats = json.loads((tmp_path / "work" / "run" / "prepare" / "stats.json").read_text())
    assert stats["cpt"]["rows"] > 0 and sorted(p.name for p in (tmp_path / "work" / "run" / "prepare-shards").iterdir()) == [
        "00000", "00001", "00002"]
