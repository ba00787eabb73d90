"""Fetch a registered model version's HF folder from a given store.

`mlflow.artifacts.download_artifacts("models:/…", tracking_uri=X, registry_uri=X)` still looks the
model up in MLflow's *global* registry URI (MLflow 3.17 `ModelsArtifactRepository`), so a caller that
names its store explicitly gets "Registered Model … not found". Resolving the version with a client
bound to the store and downloading its `runs:/` source avoids that global.
"""

from __future__ import annotations

import re
from pathlib import Path

from medllama.registry.register import RegistryError
from medllama.registry.store import resolve_tracking_uri

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w\-]+))/?$")


def model_version(model_uri: str, tracking_uri: str | None = None):
    """The MLflow `ModelVersion` (name, version, tags) that `models:/NAME/VERSION` or `models:/NAME@ALIAS` names."""
    m = _MODELS_URI.match(model_uri)
    if not m:
        raise RegistryError(f"model URI {model_uri!r}: expected models:/NAME/VERSION or models:/NAME@ALIAS")
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    if m["version"] is None:
        return client.get_model_version_by_alias(m["name"], m["alias"])
    return client.get_model_version(m["name"], m["version"])


def download_model(model_uri: str, dst: str | Path, tracking_uri: str | None = None) -> Path:
    """`models:/NAME/VERSION` or `models:/NAME@ALIAS` → the model folder under `dst` (byte-identical)."""
    import mlflow
    from mlflow import MlflowClient

    mv = model_version(model_uri, tracking_uri)
    uri = resolve_tracking_uri(tracking_uri)
    source = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_download_uri(mv.name, str(mv.version))
    Path(dst).mkdir(parents=True, exist_ok=True)
    return Path(mlflow.artifacts.download_artifacts(source, dst_path=str(dst), tracking_uri=uri))
