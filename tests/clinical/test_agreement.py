"""Agreement figures on hand-made tables: equal to the figures computed by hand and to the libraries' own
(`krippendorff.alpha`, scikit-learn's `cohen_kappa_score`) called directly."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from medllama.clinical.agreement import agreement, agreement_markdown

# two raters, ten items, yes(1)/no(0): they disagree on items 2 and 9
A = [1, 1, 0, 0, 1, 0, 1, 1, 0, 1]
B = [1, 0, 0, 0, 1, 0, 1, 1, 1, 1]


def ratings(table: dict[str, list]) -> list[tuple[str, str, int]]:
    return [(f"item{i}", rater, v) for rater, values in table.items() for i, v in enumerate(values) if v is not None]


def test_two_raters_yes_no_by_hand_and_by_the_libraries():
    result = agreement("correct_in_top_k", "nominal", ratings({"a": A, "b": B}))
    # Cohen: observed 8/10, chance 0.6*0.6 + 0.4*0.4 = 0.52 -> (0.8 - 0.52) / 0.48
    assert result.kappa == {"a vs b": pytest.approx(0.28 / 0.48)}
    assert result.kappa["a vs b"] == pytest.approx(cohen_kappa_score(A, B))
    # Krippendorff (nominal): coincidences o_01 = o_10 = 2 of n = 20 values (n_0 = 8, n_1 = 12):
    # alpha = 1 - (n - 1) * (o_01 + o_10) / (2 * n_0 * n_1)
    assert result.alpha == pytest.approx(1 - 19 * 4 / (2 * 8 * 12))
    assert result.alpha == pytest.approx(krippendorff.alpha(reliability_data=[A, B], level_of_measurement="nominal"))
    assert (result.raters, result.items) == (2, 10)


def test_krippendorffs_own_example_with_missing_values():
    """Krippendorff (2011), 'Computing Krippendorff's alpha-reliability': 4 observers, 12 units, gaps; nominal 0.743."""
    nan = None
    table = {"A": [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
             "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
             "C": [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
             "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan]}
    result = agreement("x", "nominal", ratings(table))
    matrix = np.array([[np.nan if v is None else v for v in row] for row in table.values()], dtype=float)
    assert result.alpha == pytest.approx(0.743, abs=5e-4)
    assert result.alpha == pytest.approx(krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"))
    assert result.items == 11  # unit 12 has one value only
    both = [i for i in range(12) if table["A"][i] is not None and table["C"][i] is not None]
    assert result.kappa["A vs C"] == pytest.approx(cohen_kappa_score([table["A"][i] for i in both],
                                                                    [table["C"][i] for i in both]))
    assert len(result.kappa) == 6


def test_ordinal_scale_uses_ordinal_alpha_and_quadratic_kappa():
    a, b = [1, 2, 3, 4, 5, 3, 2], [2, 2, 3, 5, 5, 2, 1]
    result = agreement("quality", "ordinal", ratings({"r1": a, "r2": b}))
    assert result.alpha == pytest.approx(krippendorff.alpha(reliability_data=[a, b], level_of_measurement="ordinal"))
    assert result.kappa["r1 vs r2"] == pytest.approx(cohen_kappa_score(a, b, weights="quadratic"))
    assert result.alpha != pytest.approx(krippendorff.alpha(reliability_data=[a, b], level_of_measurement="nominal"))


def test_undefined_agreement_is_said_not_invented():
    one_value = agreement("x", "nominal", ratings({"a": [1, 1], "b": [1, 1]}))
    assert one_value.alpha is None and one_value.kappa == {"a vs b": None}
    assert "more than one value" in one_value.notes[0]
    alone = agreement("x", "nominal", ratings({"a": [1, 0]}))
    assert alone.alpha is None and alone.items == 0
    table = agreement_markdown([one_value, agreement("y", "nominal", ratings({"a": A, "b": B}))])
    assert "| y | nominal | 2 | 10 | 0.604 | a vs b: 0.583 |" in table and "n/a" in table
