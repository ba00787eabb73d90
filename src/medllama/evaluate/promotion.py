"""Whether the instruction-tuned candidate may replace the base: no gated metric may fall too far behind."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class PromotionDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.promote


def decide_promotion(candidate: dict[str, float], base: dict[str, float], tolerance: float,
                     keys: list[str] | None = None) -> PromotionDecision:
    """Promote iff candidate >= base - tolerance for every key (all shared keys when `keys` is empty).

    A gated key missing from either side, or a NaN, blocks promotion: an absent number proves nothing.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance {tolerance} must be >= 0")
    considered = list(keys) if keys else sorted(set(candidate) & set(base))
    if not considered:
        return PromotionDecision(False, ["no metric is shared by candidate and base: nothing to compare"])
    reasons, ok = [], True
    for key in considered:
        c, b = candidate.get(key), base.get(key)
        if c is None or b is None:
            ok = False
            missing = " and ".join(side for side, v in (("candidate", c), ("base", b)) if v is None)
            reasons.append(f"{key}: missing from {missing} -> block")
            continue
        passed = not (math.isnan(c) or math.isnan(b)) and c >= b - tolerance
        ok &= passed
        reasons.append(f"{key}: candidate {c:.4f} vs base {b:.4f} (delta {c - b:+.4f}, tolerance {tolerance:.4f}) "
                       f"-> {'pass' if passed else 'block'}")
    return PromotionDecision(ok, reasons)


def plot_comparison(candidate: dict[str, float], base: dict[str, float], path_png: str | Path,
                    title: str = "candidate vs base") -> Path:
    """A grouped bar chart of every metric the two share, written as PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display in pods and CI
    import matplotlib.pyplot as plt

    keys = sorted(set(candidate) & set(base))
    x = range(len(keys))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(keys) + 2), 4))
    ax.bar([i - 0.2 for i in x], [base[k] for k in keys], width=0.4, label="base")
    ax.bar([i + 0.2 for i in x], [candidate[k] for k in keys], width=0.4, label="candidate")
    ax.set_xticks(list(x), keys, rotation=30, ha="right")
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path = Path(path_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
