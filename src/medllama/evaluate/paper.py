"""The paper's zero-shot figures (Me-LLaMA, npj Digital Medicine 2025, s41746-025-01533-1, Table 3), keyed
like our metrics, so a run's scores can be read beside the published ones for the same model size.

Three columns per size: the LLaMA-2 backbone ("base"), Me-LLaMA after continued pre-training only
("cpt") and Me-LLaMA-chat after pre-training and instruction tuning ("chat"): the original base model,
the CPT parent and the candidate of our pipeline. The paper's "LLaMA2 instruct" column has no model here.
"""

from __future__ import annotations

# metric key -> (13B: base, cpt, chat), (70B: base, cpt, chat)
_TABLE3: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "pubmedqa/accuracy": ((0.216, 0.266, 0.700), (0.132, 0.682, 0.768)),
    "pubmedqa/macro_f1": ((0.177, 0.250, 0.504), (0.152, 0.520, 0.557)),
    "medqa/accuracy": ((0.000, 0.000, 0.427), (0.005, 0.281, 0.523)),
    "medqa/macro_f1": ((0.000, 0.000, 0.422), (0.009, 0.350, 0.521)),
    "medmcqa/accuracy": ((0.003, 0.003, 0.449), (0.012, 0.447, 0.539)),
    "medmcqa/macro_f1": ((0.006, 0.005, 0.440), (0.024, 0.396, 0.538)),
    "emrqa/accuracy": ((0.000, 0.005, 0.048), (0.000, 0.021, 0.119)),
    "emrqa/f1": ((0.038, 0.122, 0.307), (0.000, 0.172, 0.346)),
    "i2b2/macro_f1": ((0.008, 0.030, 0.263), (0.181, 0.224, 0.329)),
    "ddi2013/macro_f1": ((0.035, 0.036, 0.214), (0.034, 0.118, 0.283)),
    "hoc/macro_f1": ((0.253, 0.210, 0.335), (0.255, 0.252, 0.544)),
    "mtsample/macro_f1": ((0.042, 0.072, 0.229), (0.066, 0.226, 0.384)),
    "pubmedsum/rouge_l": ((0.170, 0.168, 0.116), (0.167, 0.119, 0.169)),
    "pubmedsum/bertscore": ((0.654, 0.654, 0.445), (0.654, 0.654, 0.678)),
    "mimic-cxr/rouge_l": ((0.051, 0.172, 0.400), (0.059, 0.137, 0.418)),
    "mimic-cxr/bertscore": ((0.566, 0.697, 0.797), (0.577, 0.649, 0.787)),
    "bionli/macro_f1": ((0.109, 0.060, 0.195), (0.285, 0.499, 0.436)),
    "mednli/macro_f1": ((0.172, 0.206, 0.472), (0.265, 0.256, 0.675)),
}
SIZES = ("13b", "70b")
ROLES = ("base", "cpt", "chat")  # original base model, CPT parent, instruction-tuned candidate
SOURCE = "Me-LLaMA, npj Digit. Med. 2025 (s41746-025-01533-1), Table 3, zero-shot"


def paper_scores(size: str | None, role: str) -> dict[str, float]:
    """Table 3's column for a model size ("13b"/"70b") and role; empty when the recipe names no size."""
    if size is None:
        return {}
    if size not in SIZES or role not in ROLES:
        raise ValueError(f"paper column {size!r}/{role!r}: sizes {SIZES}, roles {ROLES}")
    return {key: cols[SIZES.index(size)][ROLES.index(role)] for key, cols in _TABLE3.items()}
