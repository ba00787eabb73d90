"""The results of one evaluation run: metrics, everything needed to reproduce them, and every sample.

The JSON records the model's content hash, each data file's sha256, the prompt template, mode,
decoding settings, seed and library versions, then per sample: id, prompt, output or option scores,
parsed prediction, reference and whether it was correct. `<stem>.predictions/<task>.jsonl` beside it
holds the {"prediction", "reference"} lines that `score_predictions` re-scores without a model.
"""

from __future__ import annotations

import json
import platform
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medllama import storage


@dataclass
class Sample:
    id: str
    prompt: str
    reference: str
    prediction: str | None
    correct: bool | None  # None for free-text tasks (summaries)
    output: str | None = None  # generate mode: the raw generation
    scores: dict[str, float] | None = None  # loglikelihood mode: label -> summed log-prob


@dataclass
class TaskResult:
    name: str
    data: str  # the URI as given
    data_sha256: dict[str, str]  # file name -> sha256
    mode: str
    template: str
    instruction: str
    decoding: dict[str, Any]
    metrics: dict[str, float]
    wall_s: float
    truncated: int = 0  # prompts whose middle was cut to fit the model's context
    examples: int = 0  # examples scored (the split's count, or `limit`)
    split: str = ""  # which split of the release is scored
    paper: dict[str, float] = field(default_factory=dict)  # the paper's Table 3 value of each metric, if any
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # metrics not computed and why (e.g. BERTScore without a model)


@dataclass
class EvalReport:
    model_dir: str
    model_sha256: str
    seed: int
    versions: dict[str, str]
    tasks: list[TaskResult] = field(default_factory=list)
    device: str = ""
    wall_s: float = 0.0

    @property
    def notes(self) -> dict[str, list[str]]:
        """Task -> what could not be computed and how to enable it."""
        return {t.name: t.notes for t in self.tasks if t.notes}

    @property
    def paper(self) -> dict[str, float]:
        """The paper's figures for the metrics this run has, same keys as `metrics`."""
        return {f"{t.name}/{k}": v for t in self.tasks for k, v in t.paper.items()}

    @property
    def metrics(self) -> dict[str, float]:
        """Flat "task/metric" keys, e.g. "pubmedqa/accuracy"."""
        return {f"{t.name}/{k}": v for t in self.tasks for k, v in t.metrics.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "paper": self.paper, **asdict(self)}

    def to_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> "EvalReport":
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        raw.pop("metrics", None)
        raw.pop("paper", None)
        tasks = [TaskResult(**{**t, "samples": [Sample(**s) for s in t["samples"]]}) for t in raw.pop("tasks")]
        return cls(**raw, tasks=tasks)

    def table(self) -> str:
        """A markdown table per dataset: its metrics, sample count and mode."""
        parts = []
        for t in self.tasks:
            lines = [f"### {t.name} ({t.examples} examples, {t.mode}; {t.split or 'split not stated'})", "",
                     "| metric | value | paper (Table 3) |", "|---|---|---|"]
            lines += [f"| {k} | {v:.4f} | {_cell(t.paper.get(k))} |" for k, v in t.metrics.items()]
            lines += [f"\n> {note}" for note in t.notes]
            parts.append("\n".join(lines))
        return "\n\n".join(parts) + "\n"

    def save(self, output: str) -> str:
        """Write the results JSON at `output` (a .json path, else `output`/results.json; local or s3://), the
        markdown table beside it (.md) and `<stem>.predictions/<task>.jsonl` for `score_predictions`."""
        name = Path(output).name if output.endswith(".json") else "results.json"
        if storage.is_s3(output):
            prefix = output.rsplit("/", 1)[0] if output.endswith(".json") else output
            with tempfile.TemporaryDirectory() as tmp:
                self.save(str(Path(tmp) / name))
                storage.publish(tmp, prefix)
            return output
        json_path = storage.local_path(output)
        json_path = json_path if output.endswith(".json") else json_path / name
        self.to_json(json_path)
        json_path.with_suffix(".md").write_text(self.table(), encoding="utf-8")
        predictions = json_path.with_suffix(".predictions")
        predictions.mkdir(exist_ok=True)
        for t in self.tasks:
            lines = [json.dumps({"id": s.id, "prediction": s.prediction, "reference": s.reference}) for s in t.samples]
            (predictions / f"{t.name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return output


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def library_versions() -> dict[str, str]:
    import tokenizers
    import torch
    import transformers

    import medllama

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__, "medllama": medllama.__version__}
