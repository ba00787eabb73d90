"""What a run reports: per-step logging, optional MLflow (rank 0, only when MLFLOW_TRACKING_URI is set),
`metrics.json`, the loss-curve PNG, and model FLOPs utilisation (MFU).

MFU = achieved FLOP/s / (world size x one device's peak), where achieved FLOP/s = tokens/s of all ranks
x FLOPs per token. FLOPs per token follow the PaLM appendix-B count: 6N + 12·L·d·S (N parameters, L
layers, d hidden size, S sequence length; 12·L·d·S is attention's quadratic term). A stage with frozen
weights (LoRA) does no weight-gradient matmuls for them: 2N forward + 2N for the activation gradients
+ 2N_trainable for the weight gradients. The peak is MEDLLAMA_PEAK_FLOPS when set, else the dense bf16
tensor-core peak of a known GPU; on a CPU without MEDLLAMA_PEAK_FLOPS there is no meaningful peak and
MFU is null. GPU-hours = ranks x wall seconds / 3600; cost = GPU-hours x MEDLLAMA_GPU_HOUR_PRICE when set.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medllama.storage import write_json_atomic

log = logging.getLogger(__name__)

PEAK_FLOPS_ENV = "MEDLLAMA_PEAK_FLOPS"
H100_BF16_DENSE = 989e12  # NVIDIA H100 SXM datasheet, bf16 dense (no sparsity); H200 has the same compute
# matched as substrings of torch.cuda.get_device_name(); first match wins
KNOWN_PEAKS = (("H100", H100_BF16_DENSE), ("H200", H100_BF16_DENSE), ("A100", 312e12))


def peak_flops(device_name: str | None = None) -> float | None:
    """Peak FLOP/s to measure MFU against: $MEDLLAMA_PEAK_FLOPS, else the GPU's bf16 dense peak
    (an unknown GPU counts as an H100), else None (CPU)."""
    configured = os.environ.get(PEAK_FLOPS_ENV)
    if configured:
        try:
            value = float(configured)
        except ValueError:
            raise ValueError(f"{PEAK_FLOPS_ENV}={configured!r}: give FLOP/s as a number, e.g. 989e12") from None
        if value <= 0:
            raise ValueError(f"{PEAK_FLOPS_ENV}={configured!r}: must be > 0")
        return value
    if device_name is None:
        import torch

        if not torch.cuda.is_available():
            return None
        device_name = torch.cuda.get_device_name()
    if device_name == "cpu":
        return None
    return next((peak for key, peak in KNOWN_PEAKS if key in device_name), H100_BF16_DENSE)


def flops_per_token(n_params: int, n_layers: int, hidden: int, seq_len: int, n_trainable: int | None = None) -> float:
    """Training FLOPs per token: 2N forward + 2N activation gradients + 2·N_trainable weight gradients
    (6N when everything trains), + 12·L·d·S for attention (which has no weights to freeze)."""
    trainable = n_params if n_trainable is None else n_trainable
    return 4.0 * n_params + 2.0 * trainable + 12.0 * n_layers * hidden * seq_len


def _numel(p) -> int:
    return p.ds_numel if hasattr(p, "ds_numel") else p.numel()  # a ZeRO-3 partitioned parameter is empty here


def model_flops_per_token(model, seq_len: int) -> tuple[float, int]:
    """(flops_per_token, N) of a HF causal LM (peft-wrapped too); N counts every parameter once."""
    config = model.config
    n_params = sum(_numel(p) for p in model.parameters())
    n_trainable = sum(_numel(p) for p in model.parameters() if p.requires_grad)
    return flops_per_token(n_params, config.num_hidden_layers, config.hidden_size, seq_len, n_trainable), n_params


def mfu(tokens_per_s: float, flops_per_tok: float, peak: float | None, world_size: int = 1) -> float | None:
    """Model FLOPs utilisation in [0, 1] of `world_size` devices whose tokens/s (all ranks) is given;
    None without a peak."""
    if not peak or tokens_per_s <= 0:
        return None
    return tokens_per_s * flops_per_tok / (world_size * peak)


PRICE_ENV = "MEDLLAMA_GPU_HOUR_PRICE"


def gpu_hour_price() -> float | None:
    """Price of one GPU-hour from $MEDLLAMA_GPU_HOUR_PRICE (any currency), None when unset."""
    configured = os.environ.get(PRICE_ENV)
    if not configured:
        return None
    try:
        value = float(configured)
    except ValueError:
        raise ValueError(f"{PRICE_ENV}={configured!r}: give the price of one GPU-hour as a number, e.g. 2.5") from None
    if value < 0:
        raise ValueError(f"{PRICE_ENV}={configured!r}: must be >= 0")
    return value


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

    def log_artifact(self, path: str | Path) -> None:
        if self.mlflow is None or not Path(path).is_file():
            return
        try:
            self.mlflow.log_artifact(str(path))
        except Exception as e:  # noqa: BLE001
            log.warning("MLflow could not store %s: %s", path, e)

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
    step_seconds: list[float] = field(default_factory=list)  # wall time of each optimizer step this run
    flops_per_token: float = 0.0
    n_params: int = 0
    peak_flops: float | None = None
    price_per_gpu_hour: float | None = None

    @property
    def tokens_per_s(self) -> float:
        """Tokens per second of all ranks together."""
        return self.tokens / self.train_seconds if self.train_seconds > 0 else 0.0

    @property
    def gpu_hours(self) -> float:
        """Devices x wall time of this run (ranks are CPU processes on a CPU run)."""
        return self.world_size * self.train_seconds / 3600

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "steps": self.steps,
            "start_step": self.start_step,
            "losses": self.losses,
            "first_loss": self.losses[0] if self.losses else None,
            "final_loss": self.losses[-1] if self.losses else None,
            "tokens_per_s": self.tokens_per_s,
            "tokens_per_s_per_gpu": self.tokens_per_s / self.world_size,
            "mfu": mfu(self.tokens_per_s, self.flops_per_token, self.peak_flops, self.world_size),
            "train_seconds": self.train_seconds,
            "gpu_hours": self.gpu_hours,
            "price_per_gpu_hour": self.price_per_gpu_hour,
            "cost": None if self.price_per_gpu_hour is None else self.gpu_hours * self.price_per_gpu_hour,
            "world_size": self.world_size,
            "step_seconds": self.step_seconds,
            "flops_per_token": self.flops_per_token,
            "n_params": self.n_params,
            "peak_flops": self.peak_flops,
        }


def write_metrics(metrics: RunMetrics, out: str | Path) -> Path:
    return write_json_atomic(Path(out) / "metrics.json", metrics.as_dict())


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
