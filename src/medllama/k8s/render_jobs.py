"""`python -m medllama.k8s.render_jobs`: write k8s/jobs/*.yaml, the PyTorchJobs of the paper-size recipes.

Each file is exactly what `run_stage(..., launcher="kubernetes", cluster="gpu", dry_run=True)` prints for
that recipe and stage (medllama.launch.render_pytorchjob: the same pure builder, the same cluster profile),
so `kubectl apply -f k8s/jobs/me-llama-13b-cpt.yaml` starts the run the pipeline would. `--check` exits 1
when a committed file differs from a fresh render (a test runs it too).

Layout on the work PVC (mounted at the profile's work.mount_path, /mnt/medllama, in every pod):
  models/<base>/                 base checkpoints and tokenizers ($MEDLLAMA_MODELS, which the recipes name)
  data/<recipe>/<stage>/         packed data from `medllama prepare`
  runs/<recipe>/<stage>/         checkpoints/, model/, metrics.json; SFT starts from runs/<recipe>/cpt/model
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medllama.cluster import load_profile
from medllama.recipe import load_recipe

JOBS = [("me-llama-13b", "cpt"), ("me-llama-13b", "sft"), ("me-llama-70b", "cpt"), ("me-llama-70b", "sft")]
DEFAULT_DIR = Path(__file__).resolve().parents[3] / "k8s" / "jobs"
HEADER = ("# Rendered by `python -m medllama.k8s.render_jobs` from recipes/{recipe}.yaml ({stage}) and "
          "cluster/{profile}.yaml; do not edit.\n")


PROFILE = "gpu"  # the paper recipes need GPU nodes


def stage_paths(recipe: str, stage: str, mount: str) -> dict[str, str | None]:
    """data, tokenizer, init and output of a stage on the PVC; None = the recipe's own (model.base)."""
    run = f"{mount}/runs/{recipe}"
    return {"data_dir": f"{mount}/data/{recipe}/{stage}",
            "tokenizer_dir": load_recipe(recipe).model.tokenizer,  # ${MEDLLAMA_MODELS}/…, expanded in the pod
            "init": None if stage == "cpt" else f"{run}/cpt/model",
            "output_dir": f"{run}/{stage}"}


def render(recipe: str, stage: str, profile: str = PROFILE) -> str:
    """The YAML of one stage's PyTorchJob, header comment included."""
    from medllama.launch import render_pytorchjob

    body = render_pytorchjob(recipe, stage, **stage_paths(recipe, stage, load_profile(profile).work.mount_path),
                             cluster=profile, name=f"{recipe}-{stage}")
    return HEADER.format(recipe=recipe, stage=stage, profile=profile) + body


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
