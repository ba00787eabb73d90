"""Task-specific tuning, the paper's supervised setting: tune a model on one dataset's training split with the
project's trainer (objective sft: loss on the answer only, LoRA where the task's stage says so), then score
the base (zero-shot) and the tuned model on the test split with the same prompts.

    result = finetune_task("tiny", "pubmedqa", model="runs/x/cpt/model", output="runs/x/supervised/pubmedqa")

`output` holds data/ (the kept training examples as Alpaca JSONL and packed rows), train/ (the trainer's
checkpoints, model/ and metrics.json), eval/ (both evaluation reports) and result.json + result.md.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medllama import storage
from medllama.evaluate.tasks import Example, Task, TaskError, get_task, task_data
from medllama.recipe import EvalTask, Recipe, SupervisedTask, load_recipe
from medllama.supervised.splits import answer_text, load_train, remove_test_overlap

log = logging.getLogger(__name__)
RESULT = "result.json"


@dataclass
class SupervisedResult:
    task: str
    base_model: str  # as given: a path, s3:// or models:/ URI
    base_version: str | None  # models:/NAME/VERSION when the base is a registered version
    model_dir: str  # the tuned model (LoRA folded in at export: a plain HF folder)
    zero_shot: dict[str, float]  # the base on the test split, "task/metric"
    supervised: dict[str, float]  # the tuned model on the same examples
    overlap: dict[str, int]  # the train/test overlap check's counts
    training: dict[str, Any]  # examples packed, steps, losses
    stage: dict[str, Any]  # the task's hyper-parameters (the recipe's sft stage with its changes)
    registered: str | None = None  # models:/NAME/VERSION of the tuned model
    notes: list[str] = field(default_factory=list)

    def save(self, directory: Path) -> Path:
        from medllama.supervised.report import side_by_side

        (directory / "result.md").write_text(side_by_side([self]), encoding="utf-8")
        return storage.write_json_atomic(directory / RESULT, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> "SupervisedResult":
        path = Path(path)
        return cls(**json.loads((path / RESULT if path.is_dir() else path).read_text()))


def task_spec(recipe: Recipe, name: str, train: str | None = None, test: str | None = None) -> SupervisedTask:
    """The recipe's `supervised.tasks` entry for `name`, with `train`/`test` given here taking precedence."""
    configured = [t for t in recipe.supervised.tasks if t.name == name.lower()]
    if configured:
        spec = configured[0]
        return spec.model_copy(update={k: v for k, v in (("train", train), ("test", test)) if v})
    if not (train and test):
        raise TaskError(f"{name}: not in the recipe's supervised.tasks {[t.name for t in recipe.supervised.tasks]}; "
                        f"add it there or give its training and test data (--train, --test)")
    return SupervisedTask(name=name.lower(), train=train, test=test)


def finetune_task(recipe_path: str, task_name: str, model: str, output: str | Path, *,
                  overrides: dict[str, Any] | None = None, train: str | None = None, test: str | None = None,
                  launcher: str = "local", cluster: str | None = None, base_version: str | None = None,
                  register: bool = False, tracking_uri: str | None = None) -> SupervisedResult:
    """Tune `model` on the task's training split and score it beside its base on the test split.

    `model`: HF folder, s3:// or models:/NAME/VERSION (then the tuned version is linked to it; `base_version`
    names that link for a folder). `register`: add the tuned model to the registry as its own version.
    `launcher`/`cluster`: where training runs, as for `medllama train` (kubernetes: the cluster profile's job).
    """
    from medllama.evaluate import evaluate
    from medllama.launch import run_stage

    recipe = load_recipe(recipe_path, overrides)
    spec = task_spec(recipe, task_name, train, test)
    task = get_task(spec.name)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    base_dir, base_uri, base_version = resolve_base(model, out / "base", tracking_uri, base_version)

    examples, _ = load_train(task, spec.train)
    test_examples = task.load(task_data(task, spec.test), None)  # all of them: none may reach training
    kept, overlap = remove_test_overlap(examples, test_examples, recipe.data.decontaminate_ngram)
    log.info("%s: %d training examples, %d dropped for overlap with the %d test examples", task.name,
             len(examples), overlap.dropped, len(test_examples))
    if not kept:
        raise TaskError(f"{task.name}: every training example overlaps the test split ({overlap.as_dict()})")
    packed, pack_stats = pack_examples(recipe, task, kept, base_dir, out / "data")

    stage_overrides = {**(overrides or {}), **{f"sft.{k}": v for k, v in spec.stage.items()}}
    trained = run_stage(str(recipe_path), "sft", data_dir=packed, tokenizer_dir=base_uri, init=base_uri,
                        output_dir=out / "train", launcher=launcher, overrides=stage_overrides,
                        cluster=cluster if launcher == "kubernetes" else None)

    tests = [EvalTask(name=task.name, data=spec.test, limit=spec.limit, mode=spec.mode)]
    kw = dict(batch_size=recipe.eval.batch_size, template=recipe.data.prompt_template)
    zero = evaluate(str(base_dir), tests, output=str(out / "eval" / "zero-shot.json"), **kw)
    tuned = evaluate(str(trained.model_dir), tests, output=str(out / "eval" / "supervised.json"), **kw)
    metrics = trained.metrics
    result = SupervisedResult(
        task=task.name, base_model=model, base_version=base_version, model_dir=str(trained.model_dir),
        zero_shot=zero.metrics, supervised=tuned.metrics, overlap=overlap.as_dict(),
        training={"examples": len(kept), **pack_stats,
                  **{k: metrics[k] for k in ("steps", "first_loss", "final_loss", "train_seconds") if k in metrics}},
        stage=load_recipe(recipe_path, stage_overrides).sft.model_dump(mode="json"),  # as the trainer ran it
        notes=[n for t in (zero, tuned) for notes in t.notes.values() for n in notes])
    if register:
        from medllama.supervised.report import register_tuned

        result.registered = register_tuned(recipe, result, out, tracking_uri).model_uri
    result.save(out)
    return result


def resolve_base(model: str, dst: Path, tracking_uri: str | None,
                 base_version: str | None) -> tuple[Path, str, str | None]:
    """(local folder, what the trainer reads, registered version) of the model to tune."""
    if model.startswith("models:/"):
        from medllama.registry import download_model
        from medllama.supervised.report import version_uri

        local = download_model(model, dst, tracking_uri)
        return local, str(local), version_uri(model, tracking_uri)
    return storage.fetch(model), model, base_version  # the trainer fetches s3:// itself (pods see the URI)


def pack_examples(recipe: Recipe, task: Task, examples: list[Example], tokenizer_dir: Path,
                  dest: Path) -> tuple[Path, dict]:
    """The examples as instruction records in the task's own prompt (written to train.jsonl), packed for the
    sft objective with the base model's tokenizer: prompt tokens masked, loss on the answer only."""
    from transformers import AutoTokenizer

    from medllama.data.packed import token_dtype
    from medllama.data.prepare import _pack_sft  # the packing `medllama prepare` does for instruction data
    from medllama.data.shard import ShardOptions

    dest.mkdir(parents=True, exist_ok=True)
    jsonl = dest / "train.jsonl"
    with open(jsonl, "w", encoding="utf-8") as f:
        for ex in examples:
            record = {"instruction": task.instruction, "input": task.render_input(ex), "output": answer_text(task, ex)}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    only_these = recipe.model_copy(update={"data": recipe.data.model_copy(update={"instructions": [str(jsonl)]})})
    # remove_test_overlap already dropped what shares an n-gram with the test split: no second pass here
    stats, _ = _pack_sft(tok, only_these, dest / "sft", token_dtype(len(tok)), True, ShardOptions(decontaminate="off"))
    return dest / "sft", stats
