"""Training splits in their release formats, the answer a model is taught (which the task's own parser must
read back as the gold label), the train/test overlap check, and the packed rows' loss mask."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from medllama.data.packed import IGNORE_INDEX, PackedDataset
from medllama.evaluate import TaskError, get_task, sample_data
from medllama.evaluate.tasks import task_data
from medllama.recipe import RecipeError, load_recipe
from medllama.storage import local_path
from medllama.supervised import TRAIN_SPLITS, load_train, remove_test_overlap
from medllama.supervised.finetune import pack_examples, task_spec
from medllama.supervised.splits import answer_text
from tests.evaluate.test_eval_more_tasks import I2B2_NOTE

BUNDLED = {"pubmedqa": "pqal_fold0/train_set.json", "medqa": "US/4_options/phrases_no_exclude_train.jsonl",
           "medmcqa": "train.json", "hoc": "", "ddi2013": "Train", "mtsample": "train.csv", "bionli": "train.csv"}


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_training_split_loads_and_its_taught_answers_parse_back(name):
    task = get_task(name)
    examples, path = load_train(task, f"samples://train/{name}")  # the directory: the loader finds the split
    assert path == local_path(f"samples://train/{name}/{BUNDLED[name]}".rstrip("/"))
    assert len(examples) >= 20
    labels = {ex.reference for ex in examples}
    assert len(labels) >= 2, "a training split with one label teaches nothing"
    for ex in examples:
        assert task.read(answer_text(task, ex), ex) == ex.reference, ex.id


def test_credentialed_training_splits_read_their_release_files(tmp_path):
    """i2b2 and MedNLI are never bundled; files written here in their release layouts."""
    notes = tmp_path / "i2b2" / TRAIN_SPLITS["i2b2"].release_file
    notes.mkdir(parents=True)
    (notes / "11.xml").write_text(I2B2_NOTE)
    i2b2 = get_task("i2b2")
    examples, _ = load_train(i2b2, str(tmp_path / "i2b2"))
    assert [answer_text(i2b2, ex) for ex in examples] == ["Admission, occurrence", "chest pain, problem\nfever, problem",
                                                          "A chest x-ray, test"]
    assert all(i2b2.read(answer_text(i2b2, ex), ex) == ex.reference for ex in examples)
    mednli = tmp_path / "mednli" / "mli_train_v1.jsonl"
    mednli.parent.mkdir()
    mednli.write_text(json.dumps({"sentence1": "Afebrile overnight.", "sentence2": "The patient has no fever.",
                                  "gold_label": "entailment", "pairID": "t-1"}) + "\n")
    examples, _ = load_train(get_task("mednli"), str(mednli.parent))
    assert [(e.id, e.reference) for e in examples] == [("t-1", "entailment")]


def test_tasks_without_a_training_split_and_missing_split_files_fail_clearly(tmp_path):
    with pytest.raises(TaskError, match="no training-split loader; task-specific tuning supports"):
        load_train(get_task("pubmedsum"), sample_data("pubmedsum"))
    tree = tmp_path / "hoc"
    shutil.copytree(local_path("samples://eval/hoc"), tree)
    with pytest.raises(TaskError, match="no train_pmid.tsv"):
        load_train(get_task("hoc"), str(tree))


def test_overlap_with_the_test_split_is_dropped_and_counted():
    task = get_task("pubmedqa")
    train, _ = load_train(task, "samples://train/pubmedqa")
    test = task.load(task_data(task, "samples://eval/pubmedqa/ori_pqal.json"), None)
    clean, overlap = remove_test_overlap(train, test, n=13)
    assert clean == train and overlap.dropped == 0 and overlap.test_examples_found == 0

    from dataclasses import replace

    same = replace(test[0], id="copied")  # the very test item, under another id
    long_ctx = replace(train[0], id="quoted", context=train[0].context + " " + test[1].context)  # a test passage inside
    mixed = train + [same, long_ctx, replace(test[0], id="again")]
    kept, overlap = remove_test_overlap(mixed, test, n=13)
    assert [e.id for e in kept] == [e.id for e in train]
    assert (overlap.dropped_same_input, overlap.dropped_shared_ngram) == (2, 1)
    assert overlap.test_examples_found == 2  # test[0] (twice) and test[1]
    assert overlap.as_dict()["kept"] == len(train)


def test_packed_rows_train_on_the_answer_only(tiny_model, tmp_path):
    from transformers import AutoTokenizer

    recipe = load_recipe("tiny", {"data.seq_len": 256})
    task = get_task("medqa")
    examples, _ = load_train(task, "samples://train/medqa")
    packed, stats = pack_examples(recipe, task, examples[:6], tiny_model, tmp_path)
    assert stats["rows"] == 6 and stats["truncated"] == 0
    tok = AutoTokenizer.from_pretrained(tiny_model)
    rows = PackedDataset(packed)
    for i, ex in enumerate(examples[:6]):
        row = rows[i]
        trained = row["labels"][row["labels"] != IGNORE_INDEX]
        assert tok.decode(trained, skip_special_tokens=False) == ex.reference + tok.eos_token
        prompt = tok.decode(row["input_ids"][: np.flatnonzero(row["labels"] != IGNORE_INDEX)[0]])
        assert prompt.endswith("### Response:\n") and task.render_input(ex) in prompt
    records = [json.loads(line) for line in (tmp_path / "train.jsonl").open()]
    assert records[0] == {"instruction": task.instruction, "input": task.render_input(examples[0]),
                          "output": examples[0].reference}


def test_task_spec_and_per_task_hyper_parameters_are_validated():
    recipe = load_recipe("tiny")
    spec = task_spec(recipe, "pubmedqa", test="/elsewhere/ori_pqal.json")
    assert spec.train.startswith("samples://train/") and spec.test == "/elsewhere/ori_pqal.json"
    stage = recipe.task_stage("pubmedqa")
    assert stage.objective == "sft" and stage.lora is not None and stage.lora.r == 8
    assert stage.micro_batch_size == recipe.sft.micro_batch_size  # unchanged fields come from sft
    with pytest.raises(TaskError, match="not in the recipe's supervised.tasks"):
        task_spec(recipe, "bionli")
    with pytest.raises(RecipeError, match=r"supervised\.tasks\.0\.stage\.lr"):
        load_recipe("tiny", {"supervised.tasks": [{"name": "pubmedqa", "train": "a", "test": "b", "stage": {"lr": 0}}]})
