"""Which model folder a `--model` reference names, and what the registry says about it.

REF is `models:/NAME@ALIAS` or `models:/NAME/VERSION` (the MLflow registry at the tracking URI), an
`s3://` prefix or a local Hugging Face folder. A registered model is served under its registered name
and carries its version and the `data_use_agreement` tag the gate reads.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from medllama import storage


@dataclass(frozen=True)
class ServedModel:
    path: Path  # the local HF folder
    name: str  # the name clients send as `model`
    ref: str  # what the user passed
    version: str | None = None  # registry version, None outside the registry
    tags: dict[str, str] = field(default_factory=dict)  # the registry version's tags


def resolve(ref: str, tracking_uri: str | None = None, name: str | None = None) -> ServedModel:
    """The local folder and identity of `ref`; `name` overrides the served name."""
    if ref.startswith("models:/"):
        from mlflow.exceptions import MlflowException

        from medllama.registry import download_model, model_version

        try:
            mv = model_version(ref, tracking_uri)
        except MlflowException as e:  # no such model, version or alias: say so in one line
            raise ValueError(f"--model {ref}: {e.message}") from None
        dest = Path(tempfile.mkdtemp(prefix="medllama-serve-"))
        path = download_model(f"models:/{mv.name}/{mv.version}", dest, tracking_uri)
        return ServedModel(_check_folder(path, ref), name or mv.name, ref, str(mv.version), dict(mv.tags))
    path = _check_folder(storage.fetch(ref), ref)
    return ServedModel(path, name or _name_of(ref), ref)


def _check_folder(path: Path, ref: str) -> Path:
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"--model {ref}: no config.json in {path}; pass a Hugging Face model folder "
                                "(the `model` folder a training stage exports), s3://… or models:/NAME@ALIAS")
    return path


def _name_of(ref: str) -> str:
    """A folder's served name: its last path part that is not the generic `model`."""
    parts = [p for p in re.split(r"[/\\]", ref.rstrip("/")) if p and p != "model" and not p.endswith(":")]
    return parts[-1] if parts else "model"
