"""Which MLflow store a registration goes to, where its artifacts land, and how to open its UI."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

LOCAL_DIR = ".medllama"


def default_tracking_uri(cwd: str | Path | None = None) -> str:
    """The local store: `sqlite:///<abs cwd>/.medllama/mlflow.db` (artifacts in `.medllama/mlartifacts`)."""
    root = Path(cwd or Path.cwd()).resolve() / LOCAL_DIR
    return f"sqlite:///{root / 'mlflow.db'}"


def resolve_tracking_uri(tracking_uri: str | None) -> str:
    """The explicit URI, else $MLFLOW_TRACKING_URI, else the local default store — but never a store inside
    a Kubernetes pod, which vanishes with it: there the cluster profile's MLflow server must be set."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        raise ValueError("no MLflow tracking URI in this pod: set MLFLOW_TRACKING_URI (the cluster profile's "
                         "mlflow_uri, from its env ConfigMap) or pass tracking_uri")
    return default_tracking_uri()


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///…` URI, None for any other store."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri[len("sqlite:///"):])


def artifact_location(tracking_uri: str) -> str | None:
    """Artifact root for new experiments: beside the SQLite file, else the server's own choice.

    Without it MLflow puts a SQLite store's artifacts in `./mlruns` of whatever directory the
    process happens to run in.
    """
    db = sqlite_path(tracking_uri)
    return (db.resolve().parent / "mlartifacts").as_uri() if db else None


def prepare_local_store(tracking_uri: str) -> None:
    """Create the directory of a SQLite store so MLflow can create the database in it."""
    db = sqlite_path(tracking_uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)


def ui_command(tracking_uri: str) -> str:
    """The shell command that opens the MLflow UI on this store."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"python3 -m webbrowser {shlex.quote(tracking_uri)}"  # `open` is macOS-only
    cmd = ["mlflow", "ui", "--backend-store-uri", tracking_uri]
    root = artifact_location(tracking_uri)
    if root:
        cmd += ["--default-artifact-root", root]
    return shlex.join(cmd)
