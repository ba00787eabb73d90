"""Inter-rater agreement on clinical-case ratings, computed by the field's libraries: Krippendorff's alpha over
every rater (the `krippendorff` package: missing ratings allowed) and Cohen's kappa for each pair of raters on
the items both rated (scikit-learn; quadratic weights on ordinal scales, none on yes/no)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np


@dataclass
class Agreement:
    criterion: str
    level: str  # "nominal" (yes/no) or "ordinal" (a 1-5 scale)
    raters: int
    items: int  # items rated by at least two raters
    alpha: float | None  # None: not defined here (see notes)
    kappa: dict[str, float | None] = field(default_factory=dict)  # "rater a vs rater b" -> kappa
    notes: list[str] = field(default_factory=list)


def agreement(criterion: str, level: str, ratings: Iterable[tuple[str, str, int]]) -> Agreement:
    """Agreement of (item, rater, value) ratings on one criterion."""
    import krippendorff
    from sklearn.metrics import cohen_kappa_score

    by_rater: dict[str, dict[str, int]] = {}
    for item, rater, value in ratings:
        by_rater.setdefault(rater, {})[item] = value
    raters = sorted(by_rater)
    items = sorted({i for r in by_rater.values() for i in r})
    shared = [i for i in items if sum(i in by_rater[r] for r in raters) >= 2]
    result = Agreement(criterion, level, len(raters), len(shared), None)
    table = np.array([[by_rater[r].get(i, np.nan) for i in items] for r in raters], dtype=float)
    values = {v for r in by_rater.values() for i, v in r.items() if i in shared}
    if len(shared) and len(values) > 1:
        result.alpha = float(krippendorff.alpha(reliability_data=table, level_of_measurement=level))
    else:
        result.notes.append("alpha: needs two raters on the same item and more than one value among them")
    for a, b in combinations(raters, 2):
        both = [i for i in items if i in by_rater[a] and i in by_rater[b]]
        kappa = None
        if both:
            with warnings.catch_warnings():  # one label in common: undefined, reported as n/a below
                warnings.simplefilter("ignore")
                kappa = float(cohen_kappa_score([by_rater[a][i] for i in both], [by_rater[b][i] for i in both],
                                                weights="quadratic" if level == "ordinal" else None))
        result.kappa[f"{a} vs {b}"] = None if kappa is None or math.isnan(kappa) else kappa
    return result


def agreement_markdown(results: list[Agreement]) -> str:
    """The agreement table a report shows."""
    rows = []
    for r in results:
        kappas = "; ".join(f"{pair}: {_fmt(k)}" for pair, k in r.kappa.items()) or "-"
        rows.append(f"| {r.criterion} | {r.level} | {r.raters} | {r.items} | {_fmt(r.alpha)} | {kappas} |")
    notes = [f"- {r.criterion}: {n}" for r in results for n in r.notes]
    return ("| criterion | scale | raters | items rated by ≥ 2 | Krippendorff's alpha | Cohen's kappa (pairs) |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else ""))


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
