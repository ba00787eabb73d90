"""Pipeline steps that compose several stage libraries: the evaluate-and-decide step, registration of an
evaluated model, and the summaries the KFP UI shows. Components and the CLI call these, so a step
behaves the same in a pod, in kfp.local and from a terminal.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from medllama.recipe import Recipe

SUMMARY = "summary.json"


def flat_stats(stats: dict, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested stats dict as `a/b/c` keys (KFP Metrics and MLflow take flat floats)."""
    flat: dict[str, float] = {}
    for key, value in stats.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_stats(value, f"{name}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def stats_markdown(stats: dict) -> str:
    """The prepare stats as a Markdown table for the KFP UI."""
    rows = "\n".join(f"| {k} | {v:g} |" for k, v in flat_stats(stats).items())
    return f"# Data preparation\n\n| statistic | value |\n|---|---|\n{rows}\n"


@dataclass
class EvalOutcome:
    candidate: dict[str, float]
    references: dict[str, dict[str, float]]  # "cpt_parent" / "base_model" -> metrics
    promote: bool
    reasons: list[str]
    markdown: str
    html: str
    contamination: dict[str, dict] = field(default_factory=dict)  # task → its test set's overlap with the corpus
    paper: dict[str, float] = field(default_factory=dict)  # Table 3's figures for the candidate's size and role


def evaluate_step(recipe: Recipe, candidate_dir: str, parent_dir: str, results_dir: str | Path,
                  data_stats: str | Path | None = None) -> EvalOutcome:
    """Scores the candidate, its CPT parent and the recipe's original base model (`model.base`, when it has
    one) on the recipe's tasks, decides promotion by the recipe's rule, writes reports to `results_dir`.
    `data_stats`: the prepare stage's stats.json, whose decontamination counts are reported beside the
    scores (how much of each test set the training corpus contained)."""
    from medllama.evaluate import decide_promotion, evaluate, locate_all, plot_comparison
    from medllama.evaluate.paper import paper_scores

    out = Path(results_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = recipe.eval
    locate_all(spec.tasks)  # every dataset present before the first model loads
    # All models are asked in the recipe's instruction template, the way the candidate was tuned.
    kw = dict(batch_size=spec.batch_size, template=recipe.data.prompt_template)
    models = {"candidate": (candidate_dir, "chat"), "cpt_parent": (parent_dir, "cpt")}
    if recipe.model.base:
        models["base_model"] = (recipe.model.base, "base")
    reports = {name: evaluate(uri, spec.tasks, output=str(out / f"{name}.json"),
                              paper=paper_scores(spec.paper_size, role), **kw)
               for name, (uri, role) in models.items()}
    candidate = reports.pop("candidate")
    references = {name: rep.metrics for name, rep in reports.items()}
    decision = decide_promotion(candidate.metrics, references, spec.tolerance, spec.margin,
                                spec.promotion_metrics or None)
    if not recipe.model.base:
        decision.reasons.append("vs base_model: none, the recipe trains from random init (model.base: null)")
    chart = out / "comparison.png"
    plot_comparison(candidate.metrics, references, str(chart), paper=candidate.paper,
                    title=f"candidate vs references ({spec.paper_size or 'no paper size'})")
    summary = {
        "candidate": candidate.metrics,
        "references": references,
        "paper": {"size": spec.paper_size, "candidate": candidate.paper,
                  **{name: rep.paper for name, rep in reports.items()}},
        "examples": {t.name: t.examples for t in candidate.tasks},
        "promote": decision.promote,
        "rule": decision.rule,
        "reasons": decision.reasons,
        "tolerance": spec.tolerance,
        "margin": spec.margin,
    }
    if data_stats:
        summary["contamination"] = contamination_by_task(json.loads(Path(data_stats).read_text()))
    (out / SUMMARY).write_text(json.dumps(summary, indent=2))
    return EvalOutcome(
        candidate.metrics,
        references,
        decision.promote,
        decision.reasons,
        comparison_markdown(summary),
        _img_html(chart, "candidate (instruction-tuned) vs its CPT parent and the original base model"),
        summary.get("contamination", {}),
        candidate.paper,
    )


def contamination_by_task(stats: dict) -> dict[str, dict]:
    """Per evaluation set of the prepare stats: its examples, how many the training corpus contained
    (shared a 13-word n-gram with a document), that share, and whether those documents were dropped
    (the model never saw them) or only flagged (it trained on them)."""
    dec = stats.get("decontamination") or {}
    out = {}
    for name, st in sorted((dec.get("sets") or {}).items()):
        n, found = st.get("examples", 0), st.get("examples_matched", 0)
        out[name] = {"examples": n, "examples_in_corpus": found, "share": found / n if n else 0.0,
                     "documents": st.get("docs_matched", 0), "documents_were": "dropped" if dec.get("mode") == "drop" else "kept"}
    return out


def comparison_markdown(summary: dict) -> str:
    """The KFP UI report: every score beside each reference and the paper, then the decision and its reasons."""
    refs = summary["references"]
    paper = summary.get("paper", {}).get("candidate", {})
    head = " | ".join(["metric", "examples", *refs, "candidate", *(f"Δ vs {r}" for r in refs), "paper (Table 3)"])
    rows = []
    for key, value in summary["candidate"].items():
        ref_values = [refs[r].get(key, float("nan")) for r in refs]
        cells = [key, str(summary.get("examples", {}).get(key.rpartition("/")[0], "")),
                 *(f"{v:.3f}" for v in ref_values), f"{value:.3f}", *(f"{value - v:+.3f}" for v in ref_values),
                 f"{paper[key]:.3f}" if key in paper else "—"]
        rows.append("| " + " | ".join(cells) + " |")
    verdict = "promoted" if summary["promote"] else "NOT promoted"
    reasons = "\n".join(f"- {r}" for r in summary["reasons"])
    size = summary.get("paper", {}).get("size")
    text = (
        f"# Evaluation\n\n| {head} |\n|{'---|' * (len(refs) * 2 + 4)}\n" + "\n".join(rows) + "\n\n"
        f"**Decision: {verdict}**. Rule: {summary.get('rule', '')}.\n\n{reasons}\n"
        + (f"\nPaper column: Me-LLaMA-{size.upper()}-chat, Table 3 (zero-shot).\n" if size else "")
    )
    if summary.get("contamination"):
        overlap = "\n".join(
            f"| {task} | {c['examples']} | {c['examples_in_corpus']} | {c['share']:.1%} | {c['documents']} ({c['documents_were']}) |"
            for task, c in summary["contamination"].items()
        )
        text += ("\n## Test sets in the training corpus\n\n| task | test examples | found in the corpus | share "
                 "| corpus documents |\n|---|---|---|---|---|\n" + overlap + "\n")
    return text


def _img_html(png: Path, title: str) -> str:
    data = base64.b64encode(png.read_bytes()).decode()
    return f"<html><body><h3>{title}</h3><img src='data:image/png;base64,{data}'/></body></html>"


TRAINING_KEYS = ("gpu_hours", "cost", "train_seconds", "world_size", "tokens_per_s_per_gpu", "mfu", "final_loss")


def training_metrics(training: dict[str, dict]) -> dict[str, float]:
    """`train/<stage>/<key>` of each stage's metrics.json: measured GPU-hours, cost, throughput (model card)."""
    return {f"train/{stage}/{k}": float(m[k]) for stage, m in training.items() for k in TRAINING_KEYS
            if m.get(k) is not None}


def register_step(
    recipe: Recipe,
    model_dir: str,
    results_dir: str | Path,
    stats_path: str | Path | None,
    tracking_uri: str | None = None,
    training: dict[str, dict] | None = None,
):
    """Registers an evaluated model: candidate metrics, each reference's under `<reference>/`, the paper's
    Table 3 figures under `paper/`, reports as artifacts; `training`: each stage's metrics.json (its
    GPU-hours and cost go to MLflow and the model card)."""
    from medllama.registry import register_recipe_model

    summary = json.loads((Path(results_dir) / SUMMARY).read_text())
    paper = summary.get("paper", {}).get("candidate", {})
    metrics = {**summary["candidate"], **{f"paper/{k}": v for k, v in paper.items()},
               **{f"{ref}/{k}": v for ref, values in summary["references"].items() for k, v in values.items()},
               **{f"contamination/{task}/share": c["share"] for task, c in summary.get("contamination", {}).items()},
               **training_metrics(training or {})}
    artifacts: dict[str, str | Path] = {"evaluation": results_dir}
    if stats_path:
        artifacts["data_stats.json"] = stats_path
        phi = json.loads(Path(stats_path).read_text()).get("phi")
        if phi:  # the clinical text's identifiers, on the card beside the scores
            metrics |= {f"phi/{kind}": n for kind, n in phi["by_type"].items()} | {"phi/per_1k_tokens": phi["per_1k_tokens"]}
    rv = register_recipe_model(recipe, model_dir, metrics, artifacts=artifacts, tracking_uri=tracking_uri, alias="candidate")
    _tag_promotion(rv, "\n".join(summary["reasons"]))
    return rv


def _tag_promotion(rv, reasons: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=rv.tracking_uri, registry_uri=rv.tracking_uri).set_model_version_tag(
        rv.name, rv.version, "promotion", reasons[:4900]
    )


def latest_registration(recipe_name: str, overrides: dict, tracking_uri: str | None, since: float) -> dict:
    """The model version a pipeline run registered after `since` (epoch seconds), or why there is none."""
    from mlflow import MlflowClient

    from medllama.recipe import load_recipe
    from medllama.registry.store import resolve_tracking_uri, ui_command

    recipe = load_recipe(recipe_name, overrides)
    uri = resolve_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = recipe.registry.model_name
    versions = [
        v for v in client.search_model_versions(f"name='{name}'") if v.creation_timestamp >= int(since * 1000) - 1000
    ]
    if not versions:
        return {"name": name, "version": None, "reason": "no new version: the candidate was not promoted "
                "(see the evaluate task's report)", "checked_at": time.time()}
    latest = max(versions, key=lambda v: int(v.version))
    metrics = client.get_run(latest.run_id).data.metrics
    return {
        "name": name,
        "version": latest.version,
        "model_uri": f"models:/{name}/{latest.version}",
        "run_id": latest.run_id,
        "tracking_uri": uri,
        "metrics": dict(sorted(metrics.items())),
        "ui_command": ui_command(uri),
    }
