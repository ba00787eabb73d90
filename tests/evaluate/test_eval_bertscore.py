"""BERTScore for the summaries: equal to bert_score.score with a local model; a clear note without one."""

from __future__ import annotations

import json

import bert_score
import pytest

from medllama.evaluate import evaluate, score_cli
from medllama.evaluate.metrics import BERTSCORE_MODEL_ENV, summary_metrics
from medllama.recipe import EvalTask

WORDS = "the lungs are clear no acute process heart size is normal effusion pleural study found effect".split()


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A tiny random BertModel and a word-piece tokenizer over a handful of words, saved locally."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny-bert")
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt"), model_max_length=64).save_pretrained(path)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(path)
    return path


REFS = ["the lungs are clear", "no acute process", "heart size is normal"]
PREDS = ["lungs are clear", "no effusion", None]


def test_bertscore_equals_bert_score_library(tiny_bert, monkeypatch):
    monkeypatch.setenv(BERTSCORE_MODEL_ENV, str(tiny_bert))
    got = summary_metrics(REFS, PREDS)
    # bert-score itself scores an empty candidate 0 (it cannot encode one under transformers 5)
    _, _, f1 = bert_score.score(PREDS[:2], REFS[:2], model_type=str(tiny_bert), num_layers=2)
    assert got["bertscore"] == pytest.approx(float(f1.sum()) / 3, abs=1e-6)
    # an unknown model type (the directory's name): its last layer, not rescaled, and the report says so
    assert got.notes == ["BERTScore: tiny-bert0, layer 2, not rescaled (no baseline file for it)"]
    assert 0.0 < got["bertscore"] <= 1.0
    monkeypatch.setenv("MEDLLAMA_BERTSCORE_LAYER", "1")
    _, _, f1_layer1 = bert_score.score(PREDS[:2], REFS[:2], model_type=str(tiny_bert), num_layers=1)
    assert summary_metrics(REFS, PREDS)["bertscore"] == pytest.approx(float(f1_layer1.sum()) / 3, abs=1e-6)
    assert summary_metrics(REFS[:1], [REFS[0]])["bertscore"] == pytest.approx(1.0, abs=1e-5)


def test_without_a_model_the_report_says_how_to_set_it(monkeypatch, tmp_path, tiny_model):
    monkeypatch.delenv(BERTSCORE_MODEL_ENV, raising=False)
    got = summary_metrics(REFS, PREDS)
    assert set(got) == {"rouge_l"} and "BERTScore not computed: set MEDLLAMA_BERTSCORE_MODEL" in got.notes[0]
    (tmp_path / "p.jsonl").write_text(json.dumps({"prediction": "lungs clear", "reference": "the lungs are clear"}))
    printed = score_cli("pubmedsum", str(tmp_path / "p.jsonl"))
    assert "BERTScore not computed" in printed["notes"][0] and "pubmedsum/bertscore" not in printed
    rep = evaluate(str(tiny_model), [EvalTask(name="pubmedsum", data="samples://eval/pubmedsum/test.txt", limit=1,
                                              mode="generate")], output=str(tmp_path / "out.json"))
    assert "BERTScore not computed" in rep.tasks[0].notes[0]
    assert "BERTScore not computed" in (tmp_path / "out.md").read_text()
    monkeypatch.setenv(BERTSCORE_MODEL_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="not a local model directory"):
        summary_metrics(REFS, PREDS)


def test_bertscore_uses_the_library_default_layer_and_baseline_for_a_known_type(tiny_bert, tmp_path, monkeypatch):
    """Named roberta-large, the model gets bert-score's recommended layer (17) and its shipped rescale baseline,
    exactly as bert_score.score(model_type="roberta-large", rescale_with_baseline=True) would use them."""
    from bert_score.utils import model2layers

    from medllama.evaluate.metrics import bertscore_settings

    settings = bertscore_settings(str(tiny_bert), model_type="roberta-large")
    assert settings.layer == model2layers["roberta-large"] == 17
    assert settings.baseline.endswith("rescale_baseline/en/roberta-large.tsv")
    assert "rescaled with the library's baseline" in settings.describe()
    # rescaling on the tiny model (its layer 2, with the roberta-large baseline row 2): the library's own result
    monkeypatch.setenv("MEDLLAMA_BERTSCORE_MODEL_TYPE", "roberta-large")
    monkeypatch.setenv(BERTSCORE_MODEL_ENV, str(tiny_bert))
    monkeypatch.setenv("MEDLLAMA_BERTSCORE_LAYER", "2")
    got = summary_metrics(REFS[:2], PREDS[:2])
    _, _, f1 = bert_score.score(PREDS[:2], REFS[:2], model_type=str(tiny_bert), num_layers=2, lang="en",
                                rescale_with_baseline=True, baseline_path=settings.baseline)
    assert got["bertscore"] == pytest.approx(float(f1.mean()), abs=1e-6)
