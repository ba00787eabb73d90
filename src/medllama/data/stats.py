"""What the prepare stage did, as numbers (stats.json) and a picture (length_hist.png)."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medllama.storage import write_json_atomic


@dataclass
class DomainStats:
    docs_read: int = 0  # documents with usable text, before cleaning
    docs_kept: int = 0  # after min_chars and dedup
    drops: Counter = field(default_factory=Counter)  # reason → count, reading errors included
    tokens_available: int = 0  # kept documents, EOS included
    docs_selected: int = 0  # by the mix (repeats counted)
    tokens_selected: int = 0

    def to_dict(self) -> dict:
        return {
            "docs_read": self.docs_read,
            "docs_kept": self.docs_kept,
            "drops": dict(sorted(self.drops.items())),
            "tokens_available": self.tokens_available,
            "docs_selected": self.docs_selected,
            "tokens_selected": self.tokens_selected,
        }


def round_ratio(r: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in sorted(r.items())}


def as_parts(r: dict[str, float], like: dict[str, float]) -> dict[str, float]:
    """A normalised ratio in the recipe's own units (15:1:4 stays comparable with 15:1:4)."""
    scale = sum(v for k, v in like.items() if k in r)
    return {k: round(v * scale, 3) for k, v in sorted(r.items())}


def source_counts(resolved, origin: dict[str, np.ndarray], lengths: dict[str, np.ndarray], plan) -> list[dict]:
    """Per source (recipe order): documents kept, tokens available, and what the mix selected from it
    (repeats counted), so a source weight's effect can be read off."""
    out = []
    for s, rs in enumerate(resolved):
        d = rs.source.domain
        mine = origin[d] == s
        picked = plan.selected[d][mine[plan.selected[d]]]
        out.append({"docs_kept": int(mine.sum()), "tokens_available": int(lengths[d][mine].sum()),
                    "docs_selected": len(picked), "tokens_selected": int(lengths[d][picked].sum())})
    return out


def summarize(recipe, tok, resolved, domains: dict[str, DomainStats], plan, cpt: dict, sft: dict,
              per_source: list[dict] | None = None) -> dict:
    """The stage's stats.json: inputs, drops by reason, tokens per domain, ratio, rows (deterministic: no timings)."""
    spec = recipe.data
    per_source = per_source or [{} for _ in resolved]
    return {
        "recipe": recipe.name,
        "seed": spec.seed,
        "seq_len": spec.seq_len,
        "tokenizer": {
            "trained": not recipe.model.tokenizer, "source": recipe.model.tokenizer, "vocab_size": len(tok),
            "bos_id": tok.bos_token_id, "eos_id": tok.eos_token_id, "pad_id": tok.pad_token_id, "unk_id": tok.unk_token_id,
        },
        "sources": [{"path": rs.source.path, "domain": rs.source.domain, "weight": rs.source.weight, "files": len(rs.files),
                     "unsupported_files": len(rs.skipped), **counts} for rs, counts in zip(resolved, per_source)],
        "domains": {d: s.to_dict() for d, s in domains.items()},
        "drops": dict(sorted(sum((s.drops for s in domains.values()), Counter()).items())),
        "ratio": {
            "target": as_parts(plan.target_ratio, spec.ratio),
            "achieved": as_parts(plan.achieved_ratio, spec.ratio),
            "target_share": round_ratio(plan.target_ratio),
            "achieved_share": round_ratio(plan.achieved_ratio),
            "domains_without_data": plan.domains_without_data,
            "token_budget": spec.token_budget,
        },
        "cpt": cpt,
        "sft": sft,
    }


def write_stats(stats: dict, out_dir: Path) -> Path:
    return write_json_atomic(out_dir / "stats.json", stats)


def plot_lengths(doc_lengths: dict[str, np.ndarray], sft_lengths: list[int], seq_len: int, path: Path) -> Path:
    """Histograms of document lengths per domain and of instruction example lengths (tokens)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_doc, ax_sft) = plt.subplots(1, 2, figsize=(11, 4))
    nonempty = {d: v for d, v in sorted(doc_lengths.items()) if len(v)}
    if nonempty:
        top = max(int(v.max()) for v in nonempty.values())
        bins = np.linspace(0, max(top, 1), 40)
        for d, v in nonempty.items():  # outlines: domains stay readable where they overlap, one artist each
            ax_doc.hist(v, bins=bins, histtype="step", linewidth=1.5, label=f"{d} ({len(v)} docs)")
        ax_doc.legend()
    ax_doc.set(title="CPT documents", xlabel="tokens per document (EOS included)", ylabel="documents")
    if sft_lengths:
        ax_sft.hist(sft_lengths, bins=40, color="tab:purple", histtype="stepfilled", alpha=0.7)
    ax_sft.axvline(seq_len, color="k", linestyle="--", label=f"seq_len {seq_len}")
    ax_sft.legend()
    ax_sft.set(title="Instruction examples", xlabel="prompt + response + EOS tokens (before truncation)", ylabel="examples")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def log_stats_to_mlflow(stats: dict, run_id: str | None = None, histogram: str | Path | None = None) -> str | None:
    """Log the prepare stats to MLflow as flat metrics (`domains/clinical/docs_kept`, ...) and the length
    histogram as an artifact, when MLFLOW_TRACKING_URI is set; returns the run id (None: not logged).

    `run_id`: an existing run (the pipeline's); else the active run, else a new run named
    "prepare-<recipe>" in the experiment MLFLOW_EXPERIMENT_NAME (default "medllama").
    """
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    import mlflow

    from medllama.steps import flat_stats

    metrics = flat_stats(stats)
    active = mlflow.active_run()
    if run_id is None and active is not None:
        run_id = active.info.run_id
    if run_id is None:
        mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", "medllama"))
        run_id = mlflow.start_run(run_name=f"prepare-{stats.get('recipe', 'data')}").info.run_id
        mlflow.end_run()
    client = mlflow.MlflowClient()
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(key, value, now, 0) for key, value in metrics.items()]
    client.log_batch(run_id, metrics=items)  # the client splits it into requests the server accepts
    if histogram is not None and Path(histogram).is_file():
        client.log_artifact(run_id, str(histogram), artifact_path="prepare")
    return run_id
