"""Mixing by tokens: the ratio achieved, down- and up-sampling, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from medllama.data import prepare
from medllama.data.mix import plan_mix


RATIO = {"biomedical": 15.0, "clinical": 1.0, "general": 4.0}


def lengths(seed=0, **n):
    rng = np.random.default_rng(seed)
    return {d: rng.integers(20, 400, size=k) for d, k in n.items()}


def test_no_budget_uses_limiting_domain_whole_and_downsamples_others():
    L = lengths(biomedical=3000, clinical=100, general=2000)
    plan = plan_mix(L, RATIO, None, seed=1)
    assert len(plan.selected["clinical"]) == 100  # clinical is the limiting domain: used whole
    for d, share in plan.target_ratio.items():
        assert abs(plan.achieved_ratio[d] - share) < 0.005
    for idx in plan.selected.values():
        assert len(set(idx.tolist())) == len(idx), "no repeats without a budget"


def test_budget_repeats_small_domains():
    L = lengths(biomedical=300, clinical=20, general=100)
    plan = plan_mix(L, RATIO, 200_000, seed=1)
    assert abs(sum(plan.selected_tokens.values()) - 200_000) < 1_000
    assert len(plan.selected["clinical"]) > 20  # repeated passes
    counts = np.bincount(plan.selected["clinical"], minlength=20)
    assert counts.max() - counts.min() <= 1, "whole passes before any document is repeated again"
    for d, share in plan.target_ratio.items():
        assert abs(plan.achieved_ratio[d] - share) < 0.01


def test_zero_weight_and_missing_domains():
    L = lengths(biomedical=100, general=50)
    plan = plan_mix(L, {"biomedical": 3, "clinical": 1, "general": 0}, None, seed=1)
    assert plan.domains_without_data == ["clinical"]
    assert len(plan.selected["general"]) == 0 and plan.achieved_ratio["biomedical"] == 1.0


def test_plan_is_deterministic():
    L = lengths(biomedical=500, clinical=40, general=200)
    a, b = plan_mix(L, RATIO, None, seed=7), plan_mix(L, RATIO, None, seed=7)
    assert all((a.selected[d] == b.selected[d]).all() for d in L) and a.order(7) == b.order(7)
    c = plan_mix(L, RATIO, None, seed=8)
    assert any(len(a.selected[d]) != len(c.selected[d]) or (a.selected[d] != c.selected[d]).any() for d in L)


def test_prepare_achieves_ratio_on_synthetic_corpus(tmp_path, corpus_recipe):
    s = prepare(corpus_recipe, tmp_path / "out", progress=False).stats
    for d, share in s["ratio"]["target_share"].items():
        assert abs(s["ratio"]["achieved_share"][d] - share) < 0.01


@pytest.mark.parametrize("budget", [20_000, 400_000])
def test_prepare_with_token_budget(tmp_path, corpus_recipe, budget):
    corpus_recipe.data.token_budget = budget
    s = prepare(corpus_recipe, tmp_path / "out", progress=False).stats
    selected = sum(v["tokens_selected"] for v in s["domains"].values())
    assert abs(selected - budget) / budget < 0.01
    assert s["cpt"]["rows"] == selected // 64
