"""What a run reports: per-step logging, optional MLflow (rank 0, only when MLFLOW_TRACKING_URI is set),
`metrics.json` and the loss-curve PNG."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class MlflowLogger:
    """Logs params and step metrics to MLflow; a server that fails never stops training (it is switched off)."""

    def __init__(self, params: dict[str, Any], run_name: str, recipe_yaml: str | None = None):
        self.mlflow = None
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            return
        # a tracking server that is down must cost seconds, not the client's default minutes of retries
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        try:
            import mlflow

            run_id = os.environ.get("MEDLLAMA_MLFLOW_RUN_ID")
            if run_id:
                mlflow.start_run(run_id=run_id)
            else:
                mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", "medllama"))
                mlflow.start_run(run_name=run_name)
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            if recipe_yaml:
                mlflow.log_text(recipe_yaml, "recipe.yaml")  # the resolved recipe, overrides applied
            self.mlflow = mlflow
        except Exception as e:  # noqa: BLE001 - any server/client error means "no MLflow"
            log.warning("MLflow disabled: %s", e)

    def log_step(self, step: int, values: dict[str, float]) -> None:
        if self.mlflow is None:
            return
        try:
            self.mlflow.log_metrics(values, step=step)
        except Exception as e:  # noqa: BLE001
            log.warning("MLflow disabled after a failed log: %s", e)
            self.mlflow = None

    def close(self, status: str = "FINISHED") -> None:
        if self.mlflow is not None:
            try:
                self.mlflow.end_run(status=status)
            except Exception as e:  # noqa: BLE001
                log.warning("MLflow end_run failed: %s", e)


@dataclass
class RunMetrics:
    stage: str
    start_step: int
    steps: int
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    tokens: int = 0  # tokens this run trained on (all ranks)
    train_seconds: float = 0.0
    world_size: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "steps": self.steps,
            "start_step": self.start_step,
            "losses": self.losses,
            "first_loss": self.losses[0] if self.losses else None,
            "final_loss": self.losses[-1] if self.losses else None,
            "tokens_per_s": self.tokens / self.train_seconds if self.train_seconds > 0 else 0.0,
            "train_seconds": self.train_seconds,
            "world_size": self.world_size,
        }


def write_metrics(metrics: RunMetrics, out: str | Path) -> Path:
    path = Path(out) / "metrics.json"
    tmp = path.with_name(".metrics.json.tmp")
    tmp.write_text(json.dumps(metrics.as_dict(), indent=2))
    os.replace(tmp, path)
    return path


def plot_loss(losses: list[float], path: str | Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(range(1, len(losses) + 1), losses, lw=1)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
