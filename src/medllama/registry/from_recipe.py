"""Register a model the way its recipe says: name, description and tags from `registry:`, the resolved
recipe as flat params (so the card shows the data mix) and as `recipe.yaml` beside the model."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medllama.recipe import Recipe
from medllama.registry.register import RegisteredVersion, register_model


def recipe_params(recipe: Recipe) -> dict[str, str]:
    """The resolved recipe as MLflow params: dotted keys (`cpt.lr`, `data.ratio.clinical`), lists as JSON."""
    out: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        elif prefix:
            out[prefix] = node if isinstance(node, str) else json.dumps(node)

    walk(recipe.model_dump(mode="json"), "")
    return out


def register_recipe_model(recipe: Recipe, model_dir: str | Path, metrics: Mapping[str, float],
                          artifacts: Mapping[str, str | Path] | None = None, name: str | None = None,
                          tracking_uri: str | None = None, alias: str | None = None,
                          experiment: str = "medllama", tags: Mapping[str, str] | None = None,
                          description: str | None = None) -> RegisteredVersion:
    """`register_model` with the name (unless `name` is given), description, tags and params of the recipe;
    `tags` are added to the recipe's, `description` replaces its description."""
    with tempfile.TemporaryDirectory(prefix="medllama-recipe-") as tmp:
        resolved = Path(tmp) / "recipe.yaml"
        resolved.write_text(recipe.to_yaml())
        return register_model(
            model_dir, name or recipe.registry.model_name, metrics,
            params=recipe_params(recipe),
            tags={"recipe": recipe.name, **recipe.registry.tags, **(tags or {})},
            artifacts={"recipe.yaml": resolved, **(artifacts or {})},
            description=recipe.registry.description if description is None else description, tracking_uri=tracking_uri, experiment=experiment, alias=alias,
        )
