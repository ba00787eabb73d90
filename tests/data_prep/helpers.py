"""Builders of small synthetic inputs for the data-preparation tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

from medllama.recipe import Recipe, load_recipe

WORDS = ("patient tumor insulin cells protein pressure blood study results cardiac renal hepatic dose therapy "
         "trial cohort receptor kinase infection fever cough liver kidney heart brain lung").split()


def synthetic_docs(domain: str, n: int, seed: int = 0, lo: int = 12, hi: int = 60) -> list[str]:
    rng = random.Random(f"{seed}-{domain}")
    return [f"{domain} document {i}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))) for i in range(n)]


def write_jsonl(path: Path, texts: list[str], field: str = "text") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({field: t}) + "\n" for t in texts))
    return path


def write_instructions(path: Path, n: int = 12) -> Path:
    records = []
    for i in range(n):
        if i % 3 == 0:
            records.append({"instruction": f"What is finding {i}?", "output": f"Finding {i} is a sign of fever."})
        else:
            records.append({"instruction": "Answer with yes, no, or maybe.", "input": f"Context: study {i} of the heart.",
                            "output": ["yes", "no", "maybe"][i % 3]})
    records.append({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a kidney test."},
                                 {"role": "assistant", "content": "Serum creatinine."}]})
    return write_jsonl_records(path, records)


def write_jsonl_records(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def small_recipe(sources: list[dict], instructions: list[str] | None = None, **data: object) -> Recipe:
    """The tiny recipe pointed at `sources`, with a 300-token vocabulary and 64-token rows (fast)."""
    overrides = {"data.sources": sources, "data.instructions": instructions or [], "model.vocab_size": 300, "data.seq_len": 64}
    overrides.update({f"data.{k}": v for k, v in data.items()})
    return load_recipe("tiny", overrides=overrides)


def packed_examples(ds) -> list[tuple]:
    """The (input_ids, labels) of every instruction example in a packed SFT directory, row by row, split at
    the document-boundary index; the padding after a row's last example is dropped (and checked)."""
    import numpy as np

    from medllama.data.packed import IGNORE_INDEX

    out = []
    for i in range(len(ds)):
        row = ds[i]
        ids, labels, pos = row["input_ids"], row["labels"], row["position_ids"]
        bounds = [0, *ds.doc_starts(i).tolist(), len(ids)]
        for a, b in zip(bounds, bounds[1:]):
            assert (pos[a:b] == np.arange(b - a)).all(), "positions restart at each example"
            out.append((ids[a:b], labels[a:b]))
        last_ids, last_labels = out[-1]
        trained = np.flatnonzero(last_labels != IGNORE_INDEX)
        end = trained[-1] + 1 if len(trained) else len(last_ids)
        assert (last_ids[end:] == ds.manifest.pad_id).all() and (last_labels[end:] == IGNORE_INDEX).all()
        out[-1] = (last_ids[:end], last_labels[:end])
    return out
