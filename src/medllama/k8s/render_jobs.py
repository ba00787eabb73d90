"""`python -m medllama.k8s.render_jobs`: write k8s/jobs/*.yaml, the PyTorchJobs of the paper-size recipes.

Each file is exactly what `run_stage(..., launcher="kubernetes", dry_run=True)` prints for that recipe and
stage with the cluster defaults below (medllama.launch.render_pytorchjob: the same pure builder), so
`kubectl apply -f k8s/jobs/me-llama-13b-cpt.yaml` starts the run the pipeline would. `--check` exits 1
when a committed file differs from a fresh render (a test runs it too).

Layout on the PVC (mounted at /mnt/medllama in every pod):
  models/<base>/                 base checkpoints and tokenizers ($MEDLLAMA_MODELS, which the recipes name)
  data/<recipe>/<stage>/         packed data from `medllama prepare`
  runs/<recipe>/<stage>/         checkpoints/, model/, metrics.json; SFT starts from runs/<recipe>/cpt/model
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from medllama.recipe import load_recipe

JOBS = [("me-llama-13b", "cpt"), ("me-llama-13b", "sft"), ("me-llama-70b", "cpt"), ("me-llama-70b", "sft")]
DEFAULT_DIR = Path(__file__).resolve().parents[3] / "k8s" / "jobs"
HEADER = "# Rendered by `python -m medllama.k8s.render_jobs` from recipes/{recipe}.yaml ({stage}); do not edit.\n"


@dataclass
class ClusterDefaults:
    """Where the jobs run; each field is a PyTorchJobOptions field (see medllama.k8s.pytorchjob)."""

    image: str = "ghcr.io/medllama-ops/medllama:0.1.0"
    namespace: str = "kubeflow-user"
    pvc: str = "medllama-work"
    mount_path: str = "/mnt/medllama"
    env_from_secrets: list[str] = field(default_factory=lambda: ["medllama-s3", "medllama-mlflow"])
    # an 8-GPU node: the DataLoader and DeepSpeed's host-side work need CPUs; ZeRO-3 export gathers in RAM
    cpu: str = "64"
    memory: str = "900Gi"
    shm_size: str = "64Gi"  # NCCL's shared-memory transport between the 8 local ranks
    tolerations: list[dict[str, str]] = field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    backoff_limit: int = 3


def stage_paths(recipe: str, stage: str, mount: str) -> dict[str, str | None]:
    """data, tokenizer, init and output of a stage on the PVC; None = the recipe's own (model.base)."""
    run = f"{mount}/runs/{recipe}"
    return {"data_dir": f"{mount}/data/{recipe}/{stage}",
            "tokenizer_dir": load_recipe(recipe).model.tokenizer,  # ${MEDLLAMA_MODELS}/…, expanded in the pod
            "init": None if stage == "cpt" else f"{run}/cpt/model",
            "output_dir": f"{run}/{stage}"}


def render(recipe: str, stage: str, defaults: ClusterDefaults | None = None) -> str:
    """The YAML of one stage's PyTorchJob, header comment included."""
    from medllama.launch import render_pytorchjob

    d = defaults or ClusterDefaults()
    spec = load_recipe(recipe).stage(stage)
    body = render_pytorchjob(
        recipe, stage, **stage_paths(recipe, stage, d.mount_path),
        name=f"{recipe}-{stage}", namespace=d.namespace, image=d.image, pvc=d.pvc, mount_path=d.mount_path,
        env={"MEDLLAMA_MODELS": f"{d.mount_path}/models"}, env_from_secrets=list(d.env_from_secrets),
        gpus=spec.nproc_per_node, cpu=d.cpu, memory=d.memory, shm_size=d.shm_size, tolerations=list(d.tolerations),
        backoff_limit=d.backoff_limit,
    )
    return HEADER.format(recipe=recipe, stage=stage) + body


def render_all(out_dir: Path = DEFAULT_DIR) -> dict[Path, str]:
    return {out_dir / f"{recipe}-{stage}.yaml": render(recipe, stage) for recipe, stage in JOBS}


def stale(out_dir: Path = DEFAULT_DIR) -> list[Path]:
    """Committed files that are missing or differ from a fresh render."""
    return [p for p, text in render_all(out_dir).items() if not p.is_file() or p.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m medllama.k8s.render_jobs", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_DIR)
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is stale")
    ns = p.parse_args(argv)
    if ns.check:
        bad = stale(ns.out)
        for path in bad:
            print(f"{path}: stale; run `python -m medllama.k8s.render_jobs`", file=sys.stderr)
        return 1 if bad else 0
    ns.out.mkdir(parents=True, exist_ok=True)
    for path, text in render_all(ns.out).items():
        path.write_text(text)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
