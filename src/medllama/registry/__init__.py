"""MLflow model registry: log a trained HF folder with its metrics and card, register a version, set aliases."""

from medllama.registry.card import DATA_USE_NOTE, model_card
from medllama.registry.download import download_model, model_version
from medllama.registry.from_recipe import recipe_params, register_recipe_model
from medllama.registry.register import (
    RegisteredVersion,
    RegistryError,
    flatten_metrics,
    load_metrics_file,
    register_model,
    registry_cli,
)
from medllama.registry.store import default_tracking_uri, ui_command

__all__ = [
    "DATA_USE_NOTE",
    "RegisteredVersion",
    "RegistryError",
    "default_tracking_uri",
    "download_model",
    "flatten_metrics",
    "load_metrics_file",
    "model_card",
    "model_version",
    "recipe_params",
    "register_recipe_model",
    "register_model",
    "registry_cli",
    "ui_command",
]
