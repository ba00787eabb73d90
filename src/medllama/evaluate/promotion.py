"""The promotion gate: the candidate must beat every reference model (its CPT parent and the original base)
on the configured tasks, by the recipe's rule.

Rule, against each reference: no task worse than `tolerance` (a task's score is the mean of its gated
metrics), and the mean over tasks at least `margin` better. A gated metric missing from either side, or a
NaN, blocks promotion: an absent number proves nothing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class PromotionDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    rule: str = ""

    def __bool__(self) -> bool:
        return self.promote


def rule_text(tolerance: float, margin: float) -> str:
    return (f"against each reference: no task more than {tolerance:g} worse, and the mean over tasks at least "
            f"{margin:+g} better")


def decide_promotion(candidate: dict[str, float], references: dict[str, dict[str, float]], tolerance: float,
                     margin: float = 0.0, keys: list[str] | None = None) -> PromotionDecision:
    """Promote iff the candidate passes the rule against every reference (name -> its metrics)."""
    if tolerance < 0:
        raise ValueError(f"tolerance {tolerance} must be >= 0")
    if not references:
        raise ValueError("no reference model to compare the candidate with")
    rule = rule_text(tolerance, margin)
    reasons, ok = [], True
    for name, ref in references.items():
        passed, lines = _against(candidate, ref, name, tolerance, margin, keys)
        ok &= passed
        reasons += lines
    return PromotionDecision(ok, reasons, rule)


def _against(candidate: dict[str, float], ref: dict[str, float], name: str, tolerance: float, margin: float,
             keys: list[str] | None) -> tuple[bool, list[str]]:
    considered = list(keys) if keys else sorted(set(candidate) & set(ref))
    if not considered:
        return False, [f"vs {name}: no metric shared with the candidate: nothing to compare -> block"]
    by_task: dict[str, list[tuple[float, float]]] = defaultdict(list)
    reasons, ok = [], True
    for key in considered:
        c, r = candidate.get(key), ref.get(key)
        if c is None or r is None or math.isnan(c) or math.isnan(r):
            ok = False
            side = " and ".join(s for s, v in (("candidate", c), (name, r)) if v is None) or "a NaN value"
            reasons.append(f"vs {name}: {key} missing from {side} -> block")
            continue
        by_task[key.rpartition("/")[0] or key].append((c, r))
    deltas = {}
    for task, pairs in by_task.items():
        c = sum(p[0] for p in pairs) / len(pairs)
        r = sum(p[1] for p in pairs) / len(pairs)
        deltas[task] = c - r
        passed = c - r >= -tolerance
        ok &= passed
        reasons.append(f"vs {name}: {task} {c:.4f} vs {r:.4f} (delta {c - r:+.4f}, tolerance {tolerance:g}) "
                       f"-> {'pass' if passed else 'block: worse than tolerance'}")
    if deltas:
        mean = sum(deltas.values()) / len(deltas)
        passed = mean >= margin
        ok &= passed
        reasons.append(f"vs {name}: mean delta over {len(deltas)} task(s) {mean:+.4f}, margin {margin:+g} "
                       f"-> {'pass' if passed else 'block: below the margin'}")
    return ok, reasons


def plot_comparison(candidate: dict[str, float], references: dict[str, dict[str, float]], path_png: str | Path,
                    title: str = "candidate vs references", paper: dict[str, float] | None = None) -> Path:
    """A grouped bar chart of every metric the candidate has, beside each reference's and, when given, the
    paper's figure for the candidate's size (hatched), written as PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display in pods and CI
    import matplotlib.pyplot as plt

    keys = sorted(candidate)
    series = [*((name, ref) for name, ref in references.items()), ("candidate", candidate)]
    if paper:
        series.append(("paper (Table 3)", paper))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(keys) * len(series) / 2 + 2), 4.5))
    for n, (name, values) in enumerate(series):
        xs = [i - 0.4 + width * (n + 0.5) for i in range(len(keys))]
        heights = [values.get(k, math.nan) for k in keys]
        ax.bar(xs, heights, width=width, label=name, hatch="//" if name.startswith("paper") else None)
    ax.set_xticks(list(range(len(keys))), keys, rotation=30, ha="right")
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(path_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
