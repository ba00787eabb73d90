"""Log a Hugging Face model folder to MLflow in one run and register it as a new model version.

The folder is logged as plain artifacts at `model` and the version is created with
`MlflowClient.create_model_version(source="runs:/<run>/model")`. That route keeps the folder
byte-identical (no `MLmodel` file added), so `download_artifacts("models:/NAME/VERSION")` hands back
exactly what `from_pretrained` loads. `mlflow.register_model` cannot be used on a plain folder in
MLflow 3: it looks for a logged model, fails, and has already created the registered model.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from medllama.registry.card import AGREEMENT_TAG, DATA_USE_NOTE, DEFAULT_AGREEMENT, fit_description, model_card
from medllama.registry.store import artifact_location, prepare_local_store, resolve_tracking_uri, ui_command
from medllama import storage

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
CARD_ARTIFACT = "model_card.md"
_NAME_OK = re.compile(r"^[\w.\- ]+$")  # MLflow forbids '/' and ':' in model names; keep them path-safe
_ALIAS_OK = re.compile(r"^[\w\-]+$")  # MLflow's alias rule; "latest" and v<digits> are reserved
_KEY_OK = re.compile(r"^[/\w.\- :]+$")  # MLflow's metric/param name rule (slashes allowed)


class RegistryError(ValueError):
    """Inputs a registration cannot use; the message names the input and the fix."""


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    model_uri: str  # models:/NAME/VERSION
    tracking_uri: str
    ui_command: str


def register_model(
    model_dir: str | Path,
    name: str,
    metrics: Mapping[str, float],
    params: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
    artifacts: Mapping[str, str | Path] | None = None,
    description: str = "",
    tracking_uri: str | None = None,
    experiment: str = "medllama",
    alias: str | None = None,
) -> RegisteredVersion:
    """Log `model_dir` (an HF folder, local or `s3://`) with metrics/params/tags/artifacts; register a new version.

    `artifacts` maps a name inside the run (`eval/report.json`, `plots`) to a local file or folder.
    Everything is validated before anything is created in the store.
    """
    model = _check_model_dir(model_dir)
    metrics = _check_metrics(metrics)
    params = {str(k): str(v) for k, v in (params or {}).items()}
    tags = {str(k): str(v) for k, v in (tags or {}).items()}
    extra = _check_inputs(name, metrics, params, tags, artifacts or {}, alias)

    from mlflow import MlflowClient  # heavy import: only when registering

    uri = resolve_tracking_uri(tracking_uri)
    _check_reachable(uri)
    prepare_local_store(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    t0 = time.monotonic()
    card = model_card(name, metrics, params, tags, description)
    version_tags = {AGREEMENT_TAG: DEFAULT_AGREEMENT, **tags, "metrics": json.dumps(metrics, sort_keys=True), "data_use_agreement": DATA_USE_NOTE,
                    "model_sha256": storage.sha256_tree(model)}

    run_id = _log_run(client, _experiment_id(client, experiment, uri), name, model, metrics, params, tags, extra, card)
    _ensure_registered_model(client, name, description)
    mv = client.create_model_version(name, source=f"runs:/{run_id}/{MODEL_ARTIFACT}", run_id=run_id,
                                     tags=version_tags, description=fit_description(card, CARD_ARTIFACT))
    if alias:
        client.set_registered_model_alias(name, alias, mv.version)
    rv = RegisteredVersion(name, str(mv.version), run_id, f"models:/{name}/{mv.version}", uri, ui_command(uri))
    log.info("registered %s (run %s) in %s in %.1f s%s", rv.model_uri, run_id, uri, time.monotonic() - t0,
             f", alias {alias}" if alias else "")
    return rv


def registry_cli(model_dir: str | Path, name: str | None, metrics_json_path: str | Path | None = None,
                 tracking_uri: str | None = None, alias: str | None = None,
                 recipe: str | None = None) -> RegisteredVersion:
    """`medllama register`: metrics from an eval JSON report (also logged under `eval/`), then register.

    With `recipe` (a name or path), its `registry:` section, resolved fields and YAML are recorded too;
    `name` then overrides the recipe's model name only when given.
    """
    metrics, artifacts = load_metrics_file(metrics_json_path)
    if recipe is not None:
        from medllama.recipe import load_recipe
        from medllama.registry.from_recipe import register_recipe_model

        return register_recipe_model(load_recipe(recipe), model_dir, metrics, artifacts=artifacts, name=name,
                                     tracking_uri=tracking_uri, alias=alias)
    if not name:
        raise RegistryError("no model name: pass one, or a recipe whose registry.model_name names it")
    return register_model(model_dir, name, metrics, artifacts=artifacts, tracking_uri=tracking_uri, alias=alias)


def load_metrics_file(path: str | Path | None) -> tuple[dict[str, float], dict[str, str | Path]]:
    """Flat metrics from an eval JSON report, and the report itself as the `eval/<file>` artifact."""
    if path is None:
        return {}, {}
    path = Path(path)
    if not path.is_file():
        raise RegistryError(f"metrics file {path}: no such file; pass the JSON report written by evaluate")
    try:
        return flatten_metrics(json.loads(path.read_text())), {f"eval/{path.name}": path}
    except json.JSONDecodeError as e:
        raise RegistryError(f"metrics file {path}: not valid JSON ({e})") from None


def flatten_metrics(report: object) -> dict[str, float]:
    """Numeric leaves of a JSON report as flat `task/metric` keys; a top-level `metrics` object wins."""
    from medllama.steps import flat_stats  # the one flattener (KFP metrics, MLflow, prepare stats)

    if isinstance(report, dict) and isinstance(report.get("metrics"), dict):
        report = report["metrics"]
    return flat_stats(report) if isinstance(report, dict) else {}


def _check_model_dir(model_dir: str | Path) -> Path:
    """The local HF folder: a path as given, or an `s3://` prefix downloaded once into the storage cache."""
    uri = str(model_dir)
    if storage.is_s3(uri):
        try:
            path = storage.fetch(uri)
        except storage.StorageError as e:
            raise RegistryError(f"model_dir {e}") from None
    else:
        path = storage.local_path(uri)
    if not path.is_dir():
        raise RegistryError(f"model_dir {uri}: no such directory; pass the folder written by save_pretrained")
    if not (path / "config.json").is_file():
        raise RegistryError(f"model_dir {uri}: no config.json; pass a Hugging Face model folder (save_pretrained)")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise RegistryError(f"model_dir {uri}: no weights (*.safetensors or *.bin); was the model saved?")
    return path


def _check_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RegistryError(f"metric {key!r}: value {value!r} is not a finite number")
        out[str(key)] = float(value)
    return out


def _check_inputs(name: str, metrics: dict[str, float], params: dict[str, str], tags: dict[str, str],
                  artifacts: Mapping[str, str | Path], alias: str | None) -> dict[str, Path]:
    if not name or not _NAME_OK.match(name) or name != name.strip():
        raise RegistryError(f"model name {name!r}: use letters, digits, '_', '-', '.' (no '/' or ':')")
    if alias is not None and (not _ALIAS_OK.match(alias) or alias.lower() == "latest"
                              or re.match(r"^[vV]\d+$", alias)):
        raise RegistryError(f"alias {alias!r}: use letters, digits, '_' or '-'; 'latest' and v<N> are reserved")
    for kind, keys in (("metric", metrics), ("param", params), ("tag", tags)):
        for key in keys:
            if not _KEY_OK.match(key) or len(key) > 250:
                raise RegistryError(f"{kind} key {key!r}: use letters, digits, '_', '-', '.', ' ', ':' or '/'")
    extra: dict[str, Path] = {}
    for dest, src in artifacts.items():
        rel = PurePosixPath(dest)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts or rel.parts[0] in (MODEL_ARTIFACT, CARD_ARTIFACT):
            raise RegistryError(f"artifact name {dest!r}: use a relative path other than "
                                f"{MODEL_ARTIFACT!r} or {CARD_ARTIFACT!r}")
        if not Path(src).exists():
            raise RegistryError(f"artifact {dest!r}: {src} does not exist")
        extra[str(rel)] = Path(src)
    return extra


def _check_reachable(uri: str, timeout: float = 10.0) -> None:
    """Fail fast on a tracking server that is down: MLflow's client would retry for minutes."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout).close()
    except urllib.error.HTTPError:
        pass  # it answered (an auth proxy may refuse /health): reachable
    except (urllib.error.URLError, OSError) as e:
        raise RegistryError(f"tracking server {uri}: not reachable ({getattr(e, 'reason', e)}); "
                            "check the URI / MLFLOW_TRACKING_URI and that the server is running") from None


def _experiment_id(client, experiment: str, uri: str) -> str:
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(experiment, artifact_location=artifact_location(uri))
    except MlflowException as e:  # created meanwhile by a concurrent registration
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(experiment).experiment_id


def _log_run(client, experiment_id: str, name: str, model: Path, metrics: dict[str, float],
             params: dict[str, str], tags: dict[str, str], extra: dict[str, Path], card: str) -> str:
    from mlflow.entities import Metric, Param

    run = client.create_run(experiment_id, run_name=f"register-{name}", tags={**tags, "medllama.registers": name})
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        ms = [Metric(k, v, now, 0) for k, v in metrics.items()]
        ps = [Param(k, v) for k, v in params.items()]
        client.log_batch(run_id, metrics=ms, params=ps)  # the client splits it into requests the server accepts
        client.log_artifacts(run_id, str(model), artifact_path=MODEL_ARTIFACT)
        _log_extra(client, run_id, extra, card)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return run_id


def _log_extra(client, run_id: str, extra: dict[str, Path], card: str) -> None:
    with tempfile.TemporaryDirectory(prefix="medllama-register-") as tmp:
        (Path(tmp) / CARD_ARTIFACT).write_text(card)
        client.log_artifact(run_id, str(Path(tmp) / CARD_ARTIFACT))
        for dest, src in extra.items():
            parent = str(PurePosixPath(dest).parent)
            if src.is_dir():
                client.log_artifacts(run_id, str(src), artifact_path=dest)
            else:  # copy so the artifact carries the name the caller chose, not the source's
                staged = Path(tmp) / "staged" / dest
                staged.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, staged)
                client.log_artifact(run_id, str(staged), artifact_path=None if parent == "." else parent)


def _ensure_registered_model(client, name: str, description: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name, description=description[:5000] or None)
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
