"""Scores of predicted labels against references: accuracy and macro-F1 over the task's label set.

An unparseable prediction (None) is wrong for accuracy and a false negative of its reference class
for F1; it is not a class of its own, because macro-F1 averages over the dataset's labels only.
"""

from __future__ import annotations

import logging
import os
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sklearn.metrics import f1_score

log = logging.getLogger(__name__)

UNPARSED = "<unparsed>"
LABEL_SEP = "; "  # how a multi-label reference or prediction is written: sorted labels joined by it
BERTSCORE_MODEL_ENV = "MEDLLAMA_BERTSCORE_MODEL"  # local path of the BERTScore scoring model
BERTSCORE_LAYER_ENV = "MEDLLAMA_BERTSCORE_LAYER"  # which hidden layer's embeddings (default: the library's for the type)


class Metrics(dict):
    """Metric name -> value, plus notes on what could not be computed (shown in the report, never a 0)."""

    def __init__(self, values: dict[str, float] | None = None, notes: Sequence[str] = ()):
        super().__init__(values or {})
        self.notes = list(notes)


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


def macro_f1_only(references: Sequence[str], predictions: Sequence[str | None],
                  labels: Sequence[str]) -> dict[str, float]:
    """Macro-F1 alone, for datasets the paper reports by macro-F1 only (DDI, BioNLI)."""
    return {"macro_f1": macro_f1(references, predictions, labels)}


def macro_f1_dataset_labels(references: Sequence[str], predictions: Sequence[str | None],
                            labels: Sequence[str] = ()) -> dict[str, float]:
    """Macro-F1 over the labels that occur in the references (an open label set: MTSample specialties)."""
    return {"macro_f1": macro_f1(references, predictions, sorted(set(references)))}


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
    from rouge_score import rouge_scorer
    if not references:
        return {"rouge_l": 0.0}
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    scores = [scorer.score(r, p or "")["rougeL"].fmeasure for r, p in zip(references, predictions, strict=True)]
    return {"rouge_l": sum(scores) / len(scores)}


# --- extractive QA (EmrQA): SQuAD v1.1 exact match and token F1, best over the accepted answers ---------------

def normalize_answer(text: str) -> str:
    """SQuAD's normalization: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def token_f1(gold: str, prediction: str) -> float:
    gold_toks, pred_toks = normalize_answer(gold).split(), normalize_answer(prediction).split()
    common = sum((Counter(gold_toks) & Counter(pred_toks)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_toks), common / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def answer_lines(text: str | None) -> list[str]:
    """Accepted answers (or a ranked list) written one a line."""
    return [x.strip() for x in (text or "").split("\n") if x.strip()]


def extractive_qa_metrics(references: Sequence[str], predictions: Sequence[str | None],
                          labels: Sequence[str] = ()) -> dict[str, float]:
    """accuracy = exact match, f1 = token F1 (the paper's EmrQA "acc / F1"); each the best over the golds."""
    if not references:
        return {"accuracy": 0.0, "f1": 0.0}
    em = f1 = 0.0
    for ref, pred in zip(references, predictions, strict=True):
        golds = answer_lines(ref) or [""]
        em += max(float(normalize_answer(g) == normalize_answer(pred or "")) for g in golds)
        f1 += max(token_f1(g, pred or "") for g in golds)
    return {"accuracy": em / len(references), "f1": f1 / len(references)}


# --- NER (i2b2): entity-level macro-F1 over word-level BIO tags (seqeval, conlleval mode) ---------------------

def ner_metrics(references: Sequence[str], predictions: Sequence[str | None],
                labels: Sequence[str] = ()) -> dict[str, float]:
    """seqeval's entity-level macro-F1; references and predictions are space-joined BIO tags, one per word."""
    from seqeval.metrics import f1_score as seq_f1
    if not references:
        return {"macro_f1": 0.0}
    y_true = [r.split() for r in references]
    y_pred = []
    for ref, pred in zip(y_true, predictions, strict=True):
        tags = (pred or "").split() or ["O"] * len(ref)
        if len(tags) != len(ref):
            raise ValueError(f"prediction has {len(tags)} tags for a reference of {len(ref)} words")
        y_pred.append(tags)
    return {"macro_f1": float(seq_f1(y_true, y_pred, average="macro", zero_division=0))}


# --- summaries: ROUGE-L and BERTScore ----------------------------------------------------------------------
# BERTScore follows the library's conventions (Zhang et al. 2020, bert-score README): the layer is the one
# `bert_score.utils.model2layers` recommends for the model type (tuned on WMT16 correlation), and scores are
# rescaled with the library's baseline file for that type and language when it ships one (`rescale_baseline/
# en/<type>.tsv`), which spreads them over a readable range. A local model directory is named by its type
# (".../roberta-large") or MEDLLAMA_BERTSCORE_MODEL_TYPE; an unknown type uses the last layer, unrescaled,
# and the report says so.
BERTSCORE_TYPE_ENV = "MEDLLAMA_BERTSCORE_MODEL_TYPE"


@dataclass(frozen=True)
class BertScoreSettings:
    model_path: str
    model_type: str
    layer: int
    baseline: str | None  # the rescale baseline file, when the library has one for this type

    def describe(self) -> str:
        how = "rescaled with the library's baseline" if self.baseline else "not rescaled (no baseline file for it)"
        return f"BERTScore: {self.model_type}, layer {self.layer}, {how}"


def bertscore_settings(model_path: str, layer: int | None = None, model_type: str | None = None) -> BertScoreSettings:
    """The layer and rescale baseline bert-score would use for `model_path`'s model type."""
    from importlib.resources import files

    from bert_score.utils import model2layers
    from transformers import AutoConfig

    kind = model_type or os.environ.get(BERTSCORE_TYPE_ENV) or os.path.basename(os.path.normpath(model_path))
    if layer is None:
        layer = model2layers.get(kind) or AutoConfig.from_pretrained(model_path).num_hidden_layers
    baseline = files("bert_score") / "rescale_baseline" / "en" / f"{kind}.tsv"
    return BertScoreSettings(model_path, kind, layer, str(baseline) if baseline.is_file() else None)


def bertscore(references: Sequence[str], predictions: Sequence[str | None], model_path: str,
              layer: int | None = None, batch_size: int = 16,
              settings: BertScoreSettings | None = None) -> float:
    """Mean BERTScore F1 (bert-score library) with a local model: its tokenizer and the embeddings of its
    layer (`bertscore_settings`: the library's default for the type unless `layer` is given)."""
    from bert_score import score

    settings = settings or bertscore_settings(model_path, layer)
    # An empty candidate scores 0, as bert-score documents; it is not passed to it because bert-score 0.3.13
    # encodes "" with a tokenizer method transformers 5 no longer has.
    kept = [i for i, p in enumerate(predictions) if (p or "").strip()]
    if not kept:
        return 0.0
    _, _, f1 = score([predictions[i] for i in kept], [references[i] for i in kept], model_type=model_path,
                     num_layers=settings.layer, batch_size=batch_size, device="cpu", lang="en",
                     rescale_with_baseline=settings.baseline is not None, baseline_path=settings.baseline)
    return float(f1.sum()) / len(predictions)


def summary_metrics(references: Sequence[str], predictions: Sequence[str | None],
                    labels: Sequence[str] = (), bertscore_model: str | None = None) -> Metrics:
    """ROUGE-L, and BERTScore when a local scoring model is set (else a note in the report says how to set it)."""
    values = rouge_l(references, predictions)
    model = bertscore_model or os.environ.get(BERTSCORE_MODEL_ENV, "")
    if not model:
        note = (f"BERTScore not computed: set {BERTSCORE_MODEL_ENV} to a local model path "
                f"(e.g. a roberta-large or PubMedBERT directory; {BERTSCORE_LAYER_ENV} picks the layer)")
        log.warning(note)
        return Metrics(values, [note])
    if not os.path.isdir(model):
        raise FileNotFoundError(f"{BERTSCORE_MODEL_ENV}={model}: not a local model directory; set it to a "
                                f"directory holding config.json and the tokenizer")
    layer = os.environ.get(BERTSCORE_LAYER_ENV)
    settings = bertscore_settings(model, int(layer) if layer else None)
    values["bertscore"] = bertscore(references, predictions, model, settings=settings) if references else 0.0
    return Metrics(values, [settings.describe()])
