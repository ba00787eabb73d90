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


def download_model(model_uri: str, dst: str | Path, tracking_uri: str | None = None) -> Path:
    """`models:/NAME/VERSION` or `models:/NAME@ALIAS` → the model folder under `dst` (byte-identical)."""
    m = _MODELS_URI.match(model_uri)
    if not m:
        raise RegistryError(f"model URI {model_uri!r}: expected models:/NAME/VERSION or models:/NAME@ALIAS")
    import mlflow
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    name, version = m["name"], m["version"]
    if version is None:
        version = str(client.get_model_version_by_alias(name, m["alias"]).version)  # SQLite store: int
    source = client.get_model_version_download_uri(name, version)
    Path(dst).mkdir(parents=True, exist_ok=True)
    return Path(mlflow.artifacts.download_artifacts(source, dst_path=str(dst), tracking_uri=uri))
