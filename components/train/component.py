"""KFP component: one training stage (cpt or sft) through medllama.launch.run_stage.

`launcher="local"` runs the DeepSpeed workers as subprocesses of this task; `"kubernetes"` submits a
PyTorchJob or a TrainJob (as the `cluster` profile says) running the same `python -m medllama.train`
command and waits for it.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.images import MEDLLAMA_IMAGE


@dsl.component(base_image=MEDLLAMA_IMAGE, install_kfp_package=False)
def train_stage(
    recipe: str,
    overrides: dict,
    stage: str,
    launcher: str,
    work_uri: str,
    run_id: str,
    dataset: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    init_model: Input[Model] = None,
    cluster: str = "",
):
    """Trains `stage` from `init_model` (or the recipe's base) and exports an HF model at a URI."""
    import json

    from medllama.launch import run_stage

    data_uri = dataset.metadata["uri"]
    result = run_stage(
        recipe,
        stage,
        data_dir=f"{data_uri}/{stage}",
        tokenizer_dir=f"{data_uri}/tokenizer",
        init=init_model.metadata["uri"] if init_model is not None else None,
        output_dir=f"{work_uri.rstrip('/')}/{run_id}/{stage}",
        launcher=launcher,
        overrides=overrides,
        cluster=(cluster or None) if launcher == "kubernetes" else None,
    )
    model.metadata.update({"uri": str(result.model_dir), "stage": stage, "recipe": recipe})
    with open(model.path, "w") as f:
        json.dump(result.metrics, f, indent=2)
    for key in ("first_loss", "final_loss", "steps", "tokens_per_s", "tokens_per_s_per_gpu", "mfu", "train_seconds",
                "gpu_hours", "cost"):
        if result.metrics.get(key) is not None:
            metrics.log_metric(f"{stage}/{key}", float(result.metrics[key]))
