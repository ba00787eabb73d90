"""Training checkpoints in `{OUT}/checkpoints/step-XXXXXXX/`: save, find the latest complete one, resume, prune.

DeepSpeed writes the model, optimizer and scheduler state; next to it each rank writes its RNG state
and rank 0 writes `trainer_state.json` (step, epoch, loss history) and, last, the `COMPLETE` marker,
so a checkpoint cut short by a killed pod is never resumed from.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

COMPLETE = "COMPLETE"
STATE = "trainer_state.json"


@dataclass
class TrainerState:
    step: int = 0  # optimizer steps done
    epoch: int = 0  # epoch of the next micro-batch
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    world_size: int = 0  # ranks that wrote the checkpoint (0 = not recorded)


def checkpoints_dir(out: str | Path) -> Path:
    return Path(out) / "checkpoints"


def tag(step: int) -> str:
    return f"step-{step:07d}"


def complete_checkpoints(out: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = checkpoints_dir(out)
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step-*") if (p / COMPLETE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest(out: str | Path) -> Path | None:
    found = complete_checkpoints(out)
    return found[-1] if found else None


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():  # this rank's GPU: LoRA dropout draws from it
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


UNIVERSAL = "universal"  # a checkpoint's DeepSpeed universal conversion, made for another number of ranks


def needs_universal(out: str | Path, world: int) -> bool:
    """Whether resuming the latest checkpoint on `world` ranks must load its universal conversion.
    Raises ValueError (with the command to convert) when it was written by another number of ranks
    and is not converted: its optimizer partitions and RNG states are per rank."""
    path = latest(out)
    if path is None:
        return False
    saved = json.loads((path / STATE).read_text()).get("world_size", 0)
    if not saved or saved == world:
        return False
    if (path / UNIVERSAL).is_dir():
        return True
    raise ValueError(
        f"checkpoint {path} was written by {saved} ranks and this run has {world}: relaunch with {saved} ranks, or "
        f"convert it with `python -m deepspeed.checkpoint.ds_to_universal --input_folder {path} "
        f"--output_folder {path / UNIVERSAL}` and relaunch")


def save(engine, out: str | Path, state: TrainerState, keep_last: int) -> Path:
    """Save a checkpoint of `engine` at `state.step` (every rank calls this) and prune older ones."""
    root = checkpoints_dir(out)
    path = root / tag(state.step)
    rank = dist.get_rank()
    if rank == 0 and path.exists():  # a partial save of this step from a killed run
        shutil.rmtree(path)
    dist.barrier()
    from deepspeed.checkpoint.constants import UNIVERSAL_CHECKPOINT_INFO

    # the (empty) universal-checkpoint info DeepSpeed's ds_to_universal asks of a client (no tensor/pipeline parallelism)
    engine.save_checkpoint(str(root), tag=tag(state.step), client_state={
        "step": state.step, "epoch": state.epoch, UNIVERSAL_CHECKPOINT_INFO: {}})
    torch.save(_rng_state(), path / f"rng-rank{rank}.pt")
    dist.barrier()
    if rank == 0:
        (path / STATE).write_text(json.dumps(asdict(state)))
        (path / COMPLETE).write_text(tag(state.step) + "\n")
        _prune(out, keep_last)
        log.info("checkpoint %s saved", path)
    dist.barrier()
    return path


def _prune(out: str | Path, keep_last: int) -> None:
    done = complete_checkpoints(out)
    for old in done[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    keep = {p.name for p in done[-keep_last:]}
    for stale in checkpoints_dir(out).glob("step-*"):  # incomplete ones older than the newest complete
        if stale.name not in keep and done and int(stale.name.split("-")[1]) < int(done[-1].name.split("-")[1]):
            shutil.rmtree(stale, ignore_errors=True)


def resume(engine, out: str | Path, universal: bool = False) -> TrainerState:
    """Restore the latest complete checkpoint in `out` into `engine`; a fresh state when there is none.
    `universal`: load its universal conversion (another rank count; the engine was configured with
    `checkpoint.load_universal`); the RNG streams then start afresh from the seed and this rank."""
    path = latest(out)
    if path is None:
        return TrainerState()
    load_dir, tag = (path, UNIVERSAL) if universal else (path.parent, path.name)
    load_path, _ = engine.load_checkpoint(str(load_dir), tag=tag)
    if load_path is None:
        raise RuntimeError(f"checkpoint {path}: DeepSpeed could not load it; delete the directory to start over")
    if universal:
        log.warning("resumed %s on another number of ranks: optimizer state converted, the order of the "
                    "remaining rows and the RNG streams differ from an uninterrupted run", path)
    else:
        _set_rng_state(torch.load(path / f"rng-rank{dist.get_rank()}.pt", weights_only=False))
    state = TrainerState(**json.loads((path / STATE).read_text()))
    log.info("resumed from %s (step %d, epoch %d)", path, state.step, state.epoch)
    return state
