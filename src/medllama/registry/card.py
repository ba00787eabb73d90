"""The model card: a markdown page describing a registered model version.

The full card is logged beside the model as `model_card.md`; a copy that fits MLflow's description
column (5,000 characters, enforced by PostgreSQL, silently not by SQLite) becomes the version's
description, so the registry UI shows it.
"""

from __future__ import annotations

from collections.abc import Mapping

DATA_USE_NOTE = "PhysioNet Credentialed Health Data License 1.5.0 — not for clinical decision-making"
# The gate reads this version tag: the data use agreement (id@minimum version) a caller must have accepted
AGREEMENT_TAG = "medllama.agreement"
DEFAULT_AGREEMENT = "me-llama-dua@1"
DESCRIPTION_LIMIT = 5000  # model_versions.description is VARCHAR(5000) in MLflow's SQL schema

# Me-LLaMA continued pre-training mix (paper, Methods): biomedical : clinical : general = 15 : 1 : 4
_DOMAIN_SOURCES = {
    "biomedical": "PubMed Central full texts and PubMed abstracts",
    "clinical": "de-identified clinical notes (MIMIC-IV, MIMIC-CXR; credentialed PhysioNet data)",
    "general": "general-domain text (a RedPajama subset) replayed against forgetting",
}


def model_card(name: str, metrics: Mapping[str, float], params: Mapping[str, str], tags: Mapping[str, str],
               description: str = "") -> str:
    """The card as markdown: what the model is, its data mix, its eval metrics, intended use and terms."""
    sections = [
        f"# {name}",
        description.strip() or "A medical LLaMA-family causal language model trained by medllama-ops "
        "(continued pre-training on a biomedical/clinical/general mix, then instruction tuning).",
        _provenance(tags),
        "## Training data mix",
        _data_mix(params),
        "## Evaluation",
        _metrics_table({k: v for k, v in metrics.items() if not k.startswith((PHI_PREFIX, "train/"))}),
        _phi_section(metrics),
        "## Training compute",
        _training_compute(metrics),
        "## Intended use and limits",
        "For research on biomedical and clinical language processing by credentialed users. "
        "**Not for clinical decision-making**: outputs can be wrong, incomplete or biased and must not "
        "inform diagnosis or treatment. Do not share or redistribute model outputs without permission.",
        "## License and data use agreement",
        f"{DATA_USE_NOTE}. Access requires a PhysioNet account, completed human-subjects training and "
        "a signed data use agreement, because the clinical training data come from credentialed "
        "PhysioNet datasets.",
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def fit_description(card: str, full_card_path: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """`card` if it fits the description column, else its head and a pointer to the full card."""
    if len(card) <= limit:
        return card
    note = f"\n\n… (card truncated; the full card is the run artifact `{full_card_path}`)\n"
    head = card[: limit - len(note)]
    return head[: head.rfind("\n") + 1 or len(head)].rstrip() + note


def _provenance(tags: Mapping[str, str]) -> str:
    shown = {k: v for k, v in tags.items() if k in ("recipe", "stage", "base_model", "git_commit")}
    return "\n".join(f"- **{k}**: `{v}`" for k, v in sorted(shown.items()))


def _data_mix(params: Mapping[str, str]) -> str:
    ratio = {k.removeprefix("data.ratio."): v for k, v in params.items() if k.startswith("data.ratio.")}
    if not ratio:
        return ("Not recorded for this version (log `data.ratio.<domain>` params to show it). "
                "The Me-LLaMA recipe mixes biomedical : clinical : general text at 15 : 1 : 4.")
    total = sum(_as_float(v) for v in ratio.values()) or 1.0
    rows = ["| domain | weight | share | sources |", "|---|---|---|---|"]
    for domain, weight in sorted(ratio.items()):
        share = _as_float(weight) / total
        rows.append(f"| {domain} | {weight} | {share:.1%} | {_DOMAIN_SOURCES.get(domain, '')} |")
    extra = [f"- **{k}**: {params[k]}" for k in ("data.token_budget", "data.seq_len") if k in params]
    return "\n".join(rows + ([""] + extra if extra else []))


# metrics registered beside the candidate's, as "<column>/<task>/<metric>" (steps.register_step)
BESIDE = {"cpt_parent": "CPT parent", "base_model": "original base", "paper": "paper (Table 3)"}


def _metrics_table(metrics: Mapping[str, float]) -> str:
    if not metrics:
        return "No evaluation metrics were recorded for this version."
    own = {k: v for k, v in metrics.items() if k.split("/", 1)[0] not in BESIDE}
    columns = [c for c in BESIDE if any(k.startswith(f"{c}/") for k in metrics)]
    rows = ["| task | metric | value |" + "".join(f" {BESIDE[c]} |" for c in columns),
            "|---|---|---|" + "---|" * len(columns)]
    for key, value in sorted(own.items()):
        task, _, metric = key.rpartition("/")
        beside = "".join(f" {metrics[f'{c}/{key}']:.4f} |" if f"{c}/{key}" in metrics else " — |" for c in columns)
        rows.append(f"| {task or '—'} | {metric} | {value:.4f} |{beside}")
    return "\n".join(rows)


PHI_PREFIX = "phi/"  # the prepare stage's PHI scan of the clinical sources, as registered (steps.register_step)


def _phi_section(metrics: Mapping[str, float]) -> str:
    phi = {k.removeprefix(PHI_PREFIX): v for k, v in metrics.items() if k.startswith(PHI_PREFIX)}
    if not phi:
        return ""
    rate = phi.pop("per_1k_tokens", None)
    rows = ["## PHI scan of the clinical training text", "",
            "Likely identifiers the scan found (presidio-analyzer; MIMIC placeholders are already removed):", "",
            "| identifier | count |", "|---|---|", *(f"| {k} | {int(v)} |" for k, v in sorted(phi.items()))]
    if rate is not None:
        rows.append(f"\n{rate:.3f} per 1,000 tokens of the scanned sources.")
    return "\n".join(rows)


def _training_compute(metrics: Mapping[str, float]) -> str:
    """Measured per stage (`train/<stage>/<key>` metrics): devices x wall time and its cost."""
    stages = sorted({k.split("/")[1] for k in metrics if k.startswith("train/") and k.count("/") == 2})
    if not stages:
        return "Not recorded for this version."
    rows = ["| stage | devices | wall time | GPU-hours | cost | tokens/s per GPU | MFU |", "|---|---|---|---|---|---|---|"]
    for st in stages:
        m = {k.rsplit("/", 1)[1]: v for k, v in metrics.items() if k.startswith(f"train/{st}/")}

        def show(key: str, fmt: str) -> str:
            return format(m[key], fmt) if key in m else "—"

        rows.append(f"| {st} | {show('world_size', '.0f')} | {show('train_seconds', ',.0f')} s | {show('gpu_hours', '.4g')} "
                    f"| {show('cost', ',.2f')} | {show('tokens_per_s_per_gpu', ',.0f')} | {show('mfu', '.1%')} |")
    return "\n".join(rows)


def _as_float(v: str) -> float:
    try:
        return float(v)
    except ValueError:
        return 0.0
