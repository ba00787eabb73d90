"""Metrics equal sklearn's, including a label that is never predicted and unparseable predictions."""

from __future__ import annotations

import pytest
from sklearn.metrics import accuracy_score, f1_score

from medllama.evaluate.metrics import UNPARSED, accuracy, classification_metrics, macro_f1

LABELS = ("yes", "no", "maybe")


def test_macro_f1_equals_sklearn_with_a_label_never_predicted():
    refs = ["yes", "no", "maybe", "yes", "no", "maybe", "yes"]
    preds = ["yes", "no", "no", "yes", "yes", "no", "yes"]  # "maybe" never predicted
    expected = f1_score(refs, preds, labels=list(LABELS), average="macro", zero_division=0)
    assert macro_f1(refs, preds, LABELS) == pytest.approx(expected)
    # "maybe" counts as a class with F1 0, so macro-F1 is the mean over 3 classes, not 2
    assert macro_f1(refs, preds, LABELS) == pytest.approx((6 / 7 + 2 / 5 + 0) / 3)
    assert accuracy(refs, preds) == pytest.approx(accuracy_score(refs, preds))


def test_unparsed_prediction_is_wrong_but_not_a_class():
    refs = ["A", "B", "C", "D"]
    preds = ["A", None, "C", "C"]
    m = classification_metrics(refs, preds, ("A", "B", "C", "D"))
    filled = [UNPARSED if p is None else p for p in preds]
    assert m["accuracy"] == 0.5
    assert m["macro_f1"] == pytest.approx(f1_score(refs, filled, labels=list("ABCD"), average="macro", zero_division=0))


def test_perfect_and_empty():
    assert classification_metrics(["A", "B"], ["A", "B"], ("A", "B", "C", "D")) == {"accuracy": 1.0, "macro_f1": 0.5}
    assert classification_metrics([], [], LABELS) == {"accuracy": 0.0, "macro_f1": 0.0}
