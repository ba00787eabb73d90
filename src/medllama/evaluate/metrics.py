"""Scores of predicted labels against references: accuracy and macro-F1 over the task's label set.

An unparseable prediction (None) is wrong for accuracy and a false negative of its reference class
for F1; it is not a class of its own, because macro-F1 averages over the dataset's labels only.
"""

from __future__ import annotations

from collections.abc import Sequence

from sklearn.metrics import f1_score

UNPARSED = "<unparsed>"
LABEL_SEP = "; "  # how a multi-label reference or prediction is written: sorted labels joined by it


def accuracy(references: Sequence[str], predictions: Sequence[str | None]) -> float:
    if not references:
        return 0.0
    return sum(r == p for r, p in zip(references, predictions, strict=True)) / len(references)


def macro_f1(references: Sequence[str], predictions: Sequence[str | None], labels: Sequence[str]) -> float:
    """sklearn's macro-F1 over `labels` (a label never predicted scores 0, it is not dropped)."""
    if not references:
        return 0.0
    preds = [UNPARSED if p is None else p for p in predictions]
    return float(f1_score(list(references), preds, labels=list(labels), average="macro", zero_division=0))


def classification_metrics(references: Sequence[str], predictions: Sequence[str | None],
                           labels: Sequence[str]) -> dict[str, float]:
    return {"accuracy": accuracy(references, predictions), "macro_f1": macro_f1(references, predictions, labels)}


def join_labels(labels: Sequence[str]) -> str:
    return LABEL_SEP.join(sorted(set(labels)))


def split_labels(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(LABEL_SEP.strip()) if x.strip()]


def multilabel_metrics(references: Sequence[str], predictions: Sequence[str | None],
                       labels: Sequence[str]) -> dict[str, float]:
    """Exact-set accuracy and macro-F1 over `labels` of label sets (sklearn on indicator matrices)."""
    if not references:
        return {"accuracy": 0.0, "macro_f1": 0.0}
    known = set(labels)
    refs = [[x for x in split_labels(r) if x in known] for r in references]
    preds = [[x for x in split_labels(p) if x in known] for p in predictions]
    y_true = [[int(label in r) for label in labels] for r in refs]
    y_pred = [[int(label in p) for label in labels] for p in preds]
    exact = sum(set(r) == set(p) for r, p in zip(refs, preds, strict=True)) / len(refs)
    return {"accuracy": exact, "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0))}


def rouge_l(references: Sequence[str], predictions: Sequence[str | None],
            labels: Sequence[str] = ()) -> dict[str, float]:
    """Mean ROUGE-L F-measure (rouge-score, Porter stemming: the reference implementation's settings)."""
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise ImportError("summarization tasks need the rouge-score package: pip install rouge-score") from None
    if not references:
        return {"rouge_l": 0.0}
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    scores = [scorer.score(r, p or "")["rougeL"].fmeasure for r, p in zip(references, predictions, strict=True)]
    return {"rouge_l": sum(scores) / len(scores)}
