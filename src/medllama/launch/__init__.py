"""Run a training stage where it is asked to run: `local` (torchrun subprocess) or `kubernetes` (a PyTorchJob
or a TrainJob, as the cluster profile says).

All run the same `-m medllama.train ...` command (launch.command.train_argv); the result is the exported
model directory and the run's metrics.
"""

from __future__ import annotations

import json
import logging
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medllama import storage
from medllama.launch.local import TrainingFailed
from medllama.recipe import load_recipe

log = logging.getLogger(__name__)

__all__ = ["StageResult", "TrainingFailed", "read_metrics", "render_pytorchjob", "run_stage"]


@dataclass
class StageResult:
    model_dir: Path | str  # `{output_dir}/model`, a plain HF model directory (str for s3://)
    metrics: dict[str, Any] = field(default_factory=dict)  # the trainer's metrics.json


def run_stage(recipe_path: str, stage: str, data_dir: str | Path, tokenizer_dir: str | Path, init: str | None,
              output_dir: str | Path, launcher: str = "local", overrides: dict[str, Any] | None = None,
              dry_run: bool = False, cluster: str | None = None, **k8s_options: Any) -> StageResult:
    """Train `stage` of the recipe and return its exported model; TrainingFailed (with the log tail) on failure.

    `init`: HF dir or URI to start from; None = the recipe's model.base (random init when that is null);
    "none" = random init. `kubernetes`: `cluster` names the profile (cluster/NAME.yaml or a path; default
    medllama.cluster.DEFAULT_PROFILE) whose job operator, image, volume, Secrets and placement apply;
    `k8s_options` (name, namespace, image, timeout_s, client, ...) override them. Paths are then paths inside
    the pods (a PVC mount) or s3:// URIs. `dry_run` prints the command (local) or the PyTorchJob YAML
    (kubernetes) and runs nothing.
    """
    recipe = load_recipe(recipe_path, overrides)  # fail fast on a bad recipe or override
    spec = recipe.stage(stage)
    argv = _stage_argv(recipe, recipe_path, stage, data_dir, tokenizer_dir, init, output_dir, overrides)
    what = f"training stage {stage!r} of {recipe_path}"
    if launcher == "local":
        if k8s_options or cluster:
            raise TypeError(f"launcher 'local' takes no cluster or Kubernetes options; got {sorted(k8s_options)}")
        from medllama.launch.local import local_command, run_local

        if dry_run:
            print(shlex.join(local_command(argv, spec.nproc_per_node)))
        elif not storage.is_s3(str(data_dir)) and not Path(data_dir).is_dir():  # in seconds, not after torchrun's start
            raise FileNotFoundError(f"{what}: prepared data {data_dir} not found (run `medllama prepare` first)")
        else:
            run_local(argv, spec.nproc_per_node, what)
    elif launcher == "kubernetes":
        profile, options = cluster_options(cluster, spec.nproc_per_node, k8s_options)
        if dry_run:
            if profile.training.operator != "pytorchjob":
                raise ValueError(f"--dry-run renders PyTorchJobs; profile {profile.name!r} runs TrainJobs, whose "
                                 "pods come from the runtime installed in the cluster")
            print(render_pytorchjob(recipe_path, stage, data_dir, tokenizer_dir, init, output_dir, overrides,
                                    cluster, **k8s_options), end="")
        elif profile.training.operator == "trainjob":
            from medllama.launch.trainjob import run_trainjob

            run_trainjob(argv, spec, what, runtime=profile.training.runtime, **options)
        else:
            from medllama.launch.kubernetes import run_pytorchjob

            run_pytorchjob(argv, spec, what, **options)
    else:
        raise ValueError(f"launcher {launcher!r}: use 'local' or 'kubernetes'")
    out = str(output_dir).rstrip("/")
    model_dir = f"{out}/model" if storage.is_s3(out) else Path(out) / "model"
    if dry_run:
        return StageResult(model_dir=model_dir, metrics={})
    # a launcher pod may not mount the PVC the job wrote to: then the metrics stay with the job
    return StageResult(model_dir=model_dir, metrics=read_metrics(out, required=launcher == "local"))


def cluster_options(cluster: str | None, nproc_per_node: int, overrides: dict[str, Any]):
    """The profile and the job options: the profile's for this size, then `overrides`."""
    from medllama.cluster import DEFAULT_PROFILE, load_profile

    profile = load_profile(cluster or DEFAULT_PROFILE)
    return profile, {**profile.job_options(nproc_per_node), **overrides}


def render_pytorchjob(recipe_path: str, stage: str, data_dir: str | Path, tokenizer_dir: str | Path, init: str | None,
                      output_dir: str | Path, overrides: dict[str, Any] | None = None, cluster: str | None = None,
                      **options: Any) -> str:
    """The YAML of the PyTorchJob run_stage(launcher='kubernetes', cluster=...) would create (for `--dry-run`)."""
    from medllama.k8s.pytorchjob import to_yaml
    from medllama.launch.kubernetes import stage_job

    recipe = load_recipe(recipe_path, overrides)
    spec = recipe.stage(stage)
    argv = _stage_argv(recipe, recipe_path, stage, data_dir, tokenizer_dir, init, output_dir, overrides)
    return to_yaml(stage_job(argv, spec, **cluster_options(cluster, spec.nproc_per_node, options)[1]))


def _stage_argv(recipe, recipe_path: str, stage: str, data_dir, tokenizer_dir, init: str | None, output_dir,
                overrides: dict[str, Any] | None) -> list[str]:
    """The trainer's arguments; `init` None starts from the recipe's base model."""
    from medllama.launch.command import train_argv

    return train_argv(recipe_path, stage, data_dir, tokenizer_dir, recipe.model.base if init is None else init,
                      output_dir, overrides)


def read_metrics(output_dir: str, required: bool = True) -> dict[str, Any]:
    """The trainer's `{output_dir}/metrics.json` (local path or s3://); {} if absent and not `required`."""
    uri = f"{output_dir.rstrip('/')}/metrics.json"
    try:
        if storage.is_s3(uri):
            bucket, key = storage.split_s3(uri)  # read directly: storage.fetch would cache a stale copy
            return json.loads(storage.s3_client().get_object(Bucket=bucket, Key=key)["Body"].read())
        return json.loads(Path(uri).read_text())
    except Exception as e:  # noqa: BLE001 - missing file, no bucket, no credentials: all "cannot read"
        if required:
            raise TrainingFailed(f"training finished but {uri} cannot be read: {e}") from None
        log.warning("%s cannot be read here (%s); returning no metrics", uri, e)
        return {}
