"""The Me-LLaMA pipeline: prepare → continued pre-training → instruction tuning → evaluate → register.

One pipeline object serves both places it runs:
  medllama pipeline compile     writes pipelines/me_llama.yaml for the Kubeflow UI
  medllama pipeline run         runs it here through kfp.local (SubprocessRunner)
(`python -m pipelines.me_llama compile|run` is the same.)
Large data (packed tokens, checkpoints, models) lives under `work_uri`, a path on the `work_pvc` volume
that every task and every PyTorchJob pod mounts; artifacts carry those URIs in their metadata.
"""

# No `from __future__ import annotations`: KFP reads the pipeline's annotations as real types.
import sys
import time
from pathlib import Path

from kfp import compiler, dsl, kubernetes

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python pipelines/me_llama.py` from anywhere
    sys.path.insert(0, str(ROOT))

from components.evaluate.component import evaluate_models  # noqa: E402
from components.prepare.component import merge_shards, prepare_shard, shard_indices  # noqa: E402
from components.register.component import register_model  # noqa: E402
from components.train.component import train_stage  # noqa: E402

COMPILED = Path(__file__).with_suffix(".yaml")
WORK_MOUNT = "/mnt/medllama"


def _on_work_volume(task: dsl.PipelineTask, work_pvc: str) -> dsl.PipelineTask:
    return kubernetes.mount_pvc(task, pvc_name=work_pvc, mount_path=WORK_MOUNT)


@dsl.pipeline(
    name="me-llama",
    description="Continued pre-training and instruction tuning of a LLaMA on biomedical, clinical and "
    "general text (Me-LLaMA), evaluated on the medical benchmark and registered in MLflow.",
)
def me_llama(
    recipe: str = "tiny",
    overrides: dict = {},
    launcher: str = "local",
    work_uri: str = f"{WORK_MOUNT}/runs",
    work_pvc: str = "medllama-work",
    tracking_uri: str = "",
    prepare_shards: int = 2,
):
    run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    common = dict(recipe=recipe, overrides=overrides)

    # Reading, cleaning, decontamination and tokenization fan out over source files; the merge dedups
    # globally, mixes and packs, so the result equals a single-task prepare.
    plan = shard_indices(num_shards=prepare_shards).set_display_name("plan prepare shards")
    with dsl.ParallelFor(plan.output, name="prepare-shards") as shard_index:
        shard = prepare_shard(
            work_uri=work_uri, run_id=run_id, shard_index=shard_index, num_shards=prepare_shards, **common
        ).set_display_name("read a shard of the sources")
    data = merge_shards(
        work_uri=work_uri, run_id=run_id, shards=dsl.Collected(shard.outputs["shard"]), tracking_uri=tracking_uri, **common
    ).set_display_name("prepare data")
    cpt = train_stage(
        stage="cpt", launcher=launcher, work_uri=work_uri, run_id=run_id, dataset=data.outputs["dataset"], **common
    ).set_display_name("continued pre-training")
    sft = train_stage(
        stage="sft",
        launcher=launcher,
        work_uri=work_uri,
        run_id=run_id,
        dataset=data.outputs["dataset"],
        init_model=cpt.outputs["model"],
        **common,
    ).set_display_name("instruction tuning")
    evaluation = evaluate_models(
        candidate=sft.outputs["model"], parent=cpt.outputs["model"], dataset=data.outputs["dataset"], **common
    ).set_display_name("evaluate vs CPT parent and base")
    # A refused candidate stops the run here; the evaluate task's Markdown report says why.
    with dsl.If(evaluation.outputs["Output"] == True, name="candidate-passes-the-gate"):  # noqa: E712 (KFP condition)
        registered = register_model(
            tracking_uri=tracking_uri,
            model=sft.outputs["model"],
            results=evaluation.outputs["results"],
            dataset=data.outputs["dataset"],
            **common,
        ).set_display_name("register in MLflow")
    for task in (shard, data, cpt, sft, evaluation, registered):
        _on_work_volume(task, work_pvc)


def compile_pipeline(path: Path = COMPILED) -> Path:
    compiler.Compiler().compile(me_llama, str(path))
    return path


def run_local(
    recipe: str = "tiny",
    overrides: "dict | None" = None,
    work_dir: "Path | None" = None,
    tracking_uri: str = "",
) -> dict:
    """Runs the pipeline on this machine and returns what was registered (or why nothing was)."""
    from kfp import local

    from medllama.steps import latest_registration

    work_dir = (work_dir or Path.cwd() / ".medllama" / "runs").resolve()
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(work_dir / "kfp-root"))
    started = time.time()
    me_llama(recipe=recipe, overrides=overrides or {}, work_uri=str(work_dir), tracking_uri=tracking_uri)
    return latest_registration(recipe, overrides or {}, tracking_uri or None, since=started)


if __name__ == "__main__":  # same as `medllama pipeline run|compile ...`
    from medllama.cli import main

    sys.exit(main(["pipeline", *sys.argv[1:]]))
