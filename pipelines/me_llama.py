"""The Me-LLaMA pipeline: prepare → continued pre-training → instruction tuning → evaluate → register → deploy,
and task-specific tuning of the registered model on each supervised task (ParallelFor), scored beside zero-shot.

One pipeline object serves both places it runs:
  medllama pipeline compile [--cluster gpu]  writes pipelines/me_llama.yaml for the Kubeflow UI
  medllama pipeline run                      runs it here through kfp.local (SubprocessRunner)
(`python -m pipelines.me_llama compile|run` is the same.)
Large data (packed tokens, checkpoints, models) lives under `work_uri`, a path on the `work_pvc` volume
that every task and every training pod mounts; artifacts carry those URIs in their metadata.
Where tasks run on the cluster (image, volume, Secrets and env, resources, GPUs, node placement,
retries) comes from the cluster profile the pipeline is compiled for (medllama.cluster); kfp.local
ignores that Kubernetes configuration.
"""

# No `from __future__ import annotations`: KFP reads the pipeline's annotations as real types.
import sys
import time
from pathlib import Path

from kfp import compiler, dsl, kubernetes

from medllama.cluster import RUN_AS_USER, ClusterProfile, load_profile

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python pipelines/me_llama.py` from anywhere
    sys.path.insert(0, str(ROOT))

from components.deploy.component import deploy_model  # noqa: E402
from components.evaluate.component import evaluate_models  # noqa: E402
from components.prepare.component import merge_shards, prepare_shard, shard_indices  # noqa: E402
from components.register.component import register_model  # noqa: E402
from components.supervised.component import supervised_report, supervised_tasks, tune_on_task  # noqa: E402
from components.train.component import train_stage  # noqa: E402

COMPILED = Path(__file__).with_suffix(".yaml")


def on_cluster(task: dsl.PipelineTask, profile: ClusterProfile, work_pvc, gpus: int = 0,
               retry: bool = True) -> dsl.PipelineTask:
    """Run `task` where the profile says: its image, work volume, env and Secrets, resources, GPUs, retries."""
    task.set_container_image(profile.images.trainer)
    kubernetes.set_image_pull_policy(task, profile.images.pull_policy)
    kubernetes.mount_pvc(task, pvc_name=work_pvc, mount_path=profile.work.mount_path)
    kubernetes.use_config_map_as_env(task, profile.env_config_map, {k: k for k in profile.pod_env()})
    for secret in profile.secrets:
        kubernetes.use_secret_as_env(task, secret.name, {k: k for k in secret.keys})
    kubernetes.set_security_context(task, run_as_user=RUN_AS_USER, run_as_group=RUN_AS_USER, run_as_non_root=True)
    kubernetes.add_pod_label(task, "app.kubernetes.io/component", "medllama-pipeline")  # k8s NetworkPolicies
    r = profile.tasks.resources
    task.set_cpu_request(r.cpu).set_cpu_limit(r.cpu).set_memory_request(r.memory).set_memory_limit(r.memory)
    if gpus:
        task.set_accelerator_type(profile.gpu_resource).set_accelerator_limit(gpus)
        for key, value in profile.node_selector.items():
            kubernetes.add_node_selector(task, label_key=key, label_value=value)
        for t in profile.tolerations:
            kubernetes.add_toleration(task, key=t.key, operator=t.operator, value=t.value, effect=t.effect)
    if retry and profile.tasks.retries:
        task.set_retry(num_retries=profile.tasks.retries, backoff_duration="60s")
    return task


def build_pipeline(profile: ClusterProfile):
    """The pipeline, its tasks placed as `profile` says; the `cluster` parameter names the profile the
    training launchers load in their pods (cluster/NAME.yaml in the image, or a path on the work volume)."""

    @dsl.pipeline(
        name="me-llama",
        description="Continued pre-training and instruction tuning of a LLaMA on biomedical, clinical and "
        "general text (Me-LLaMA), evaluated on the medical benchmark and registered in MLflow.",
    )
    def me_llama(
        recipe: str = "tiny",
        overrides: dict = {},
        launcher: str = "local",
        cluster: str = profile.name,
        work_uri: str = f"{profile.work.mount_path}/runs",
        work_pvc: str = profile.work.pvc,
        tracking_uri: str = profile.mlflow_uri,
        prepare_shards: int = 2,
        serving_gpus: int = 0,
        serving_namespace: str = profile.namespace,
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
            work_uri=work_uri, run_id=run_id, shards=dsl.Collected(shard.outputs["shard"]), tracking_uri=tracking_uri,
            **common
        ).set_display_name("prepare data")
        train = dict(launcher=launcher, cluster=cluster, work_uri=work_uri, run_id=run_id,
                     dataset=data.outputs["dataset"], **common)
        cpt = train_stage(stage="cpt", **train).set_display_name("continued pre-training")
        sft = train_stage(stage="sft", init_model=cpt.outputs["model"], **train).set_display_name("instruction tuning")
        evaluation = evaluate_models(
            candidate=sft.outputs["model"], parent=cpt.outputs["model"], dataset=data.outputs["dataset"], **common
        ).set_display_name("evaluate vs CPT parent and base")
        # A refused candidate stops the run here; the evaluate task's Markdown report says why.
        with dsl.If(evaluation.outputs["Output"] == True, name="candidate-passes-the-gate"):  # noqa: E712 (KFP condition)
            registered = register_model(
                tracking_uri=tracking_uri,
                model=sft.outputs["model"],
                cpt_model=cpt.outputs["model"],
                results=evaluation.outputs["results"],
                dataset=data.outputs["dataset"],
                **common,
            ).set_display_name("register in MLflow")
            # The paper's supervised setting: the registered model tuned on each task's training split, in
            # parallel, each tuned model registered as its own version linked to this one.
            tasks = supervised_tasks(base_version=registered.outputs["model_uri"], **common).set_display_name(
                "list supervised tasks"
            )
            with dsl.ParallelFor(tasks.output, name="supervised-tasks") as item:
                tuned = tune_on_task(
                    task=item.dataset,
                    base=sft.outputs["model"],
                    base_version=item.base_version,
                    tracking_uri=tracking_uri,
                    **{k: v for k, v in train.items() if k != "dataset"},
                ).set_display_name("task-specific tuning")
            report = supervised_report(results=dsl.Collected(tuned.outputs["result"])).set_display_name(
                "zero-shot vs supervised"
            )
            # Serves the new version: vLLM on `serving_gpus` GPUs, else `medllama serve` on CPU (kfp.local: YAML only)
            deployed = deploy_model(
                model_name=registered.outputs["name"],
                version=registered.outputs["version"],
                cluster=cluster,
                tracking_uri=tracking_uri,
                model=sft.outputs["model"],
                work_pvc=work_pvc,
                gpus=serving_gpus,
                namespace=serving_namespace,
            ).set_display_name("deploy on KServe")
        on_cluster(plan, profile, work_pvc)
        for task in (shard, data, registered, tasks, report, deployed):
            on_cluster(task, profile, work_pvc)
        for task in (cpt, sft):  # a retried launcher would submit a second job; the jobs retry their pods
            on_cluster(task, profile, work_pvc, retry=False)
        # tuning runs as a job too; the task itself then scores the base and the tuned model, as evaluate does
        on_cluster(tuned, profile, work_pvc, gpus=profile.tasks.evaluate_gpus, retry=False)
        on_cluster(evaluation, profile, work_pvc, gpus=profile.tasks.evaluate_gpus)

    return me_llama


me_llama = build_pipeline(load_profile())


def compile_pipeline(path: Path = COMPILED, cluster: str | None = None) -> Path:
    """Compile for the cluster profile `cluster` (default medllama.cluster.DEFAULT_PROFILE)."""
    pipeline = build_pipeline(load_profile(cluster)) if cluster else me_llama
    compiler.Compiler().compile(pipeline, str(path))
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
