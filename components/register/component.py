"""KFP component: log the evaluated model to MLflow and register it as a new model version."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model

from components.images import MEDLLAMA_IMAGE


@dsl.component(base_image=MEDLLAMA_IMAGE, install_kfp_package=False)
def register_model(
    recipe: str,
    overrides: dict,
    tracking_uri: str,
    model: Input[Model],
    results: Input[Artifact],
    dataset: Input[Dataset],
    cpt_model: Input[Model] = None,
) -> NamedTuple("Registered", name=str, version=str, model_uri=str):
    """Registers the model with its evaluation results, data stats, the promotion decision and each
    training stage's measured GPU-hours and cost (the stages' Model artifacts hold their metrics.json)."""
    import json
    from collections import namedtuple

    from medllama.recipe import load_recipe
    from medllama.steps import register_step

    rv = register_step(
        load_recipe(recipe, overrides),
        model_dir=model.metadata["uri"],
        results_dir=results.path,
        stats_path=dataset.path,
        tracking_uri=tracking_uri or None,
        training={stage: json.load(open(m.path)) for stage, m in (("cpt", cpt_model), ("sft", model)) if m is not None},
    )
    return namedtuple("Registered", ["name", "version", "model_uri"])(rv.name, rv.version, rv.model_uri)
