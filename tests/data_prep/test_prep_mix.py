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


def test_source_weights_share_a_domain_in_proportion():
    """Two biomedical sources of equal size with weights 3 and 1: the domain keeps its share of the
    ratio, and within it the first source gives three times the tokens of the second."""
    L = lengths(biomedical=2000, clinical=300, general=800)
    origin = {"biomedical": np.repeat([0, 1], 1000), "clinical": np.full(300, 2), "general": np.full(800, 3)}
    plan = plan_mix(L, RATIO, 400_000, seed=1, origin=origin, weights=[3.0, 1.0, 1.0, 1.0])
    sel = plan.selected["biomedical"]
    tokens = [int(L["biomedical"][sel[origin["biomedical"][sel] == s]].sum()) for s in (0, 1)]
    available = [int(L["biomedical"][origin["biomedical"] == s].sum()) for s in (0, 1)]
    assert abs(tokens[0] / tokens[1] - 3 * available[0] / available[1]) < 0.05
    for d, share in plan.target_ratio.items():
        assert abs(plan.achieved_ratio[d] - share) < 0.01


def test_source_weight_counts_in_what_a_domain_offers():
    """Without a budget the limiting domain is used whole; weight 2 on its only source makes it offer
    twice its tokens (every document twice), so the other domains are sampled twice as much."""
    L = lengths(biomedical=3000, clinical=100, general=2000)
    origin = {"biomedical": np.zeros(3000, int), "clinical": np.ones(100, int), "general": np.full(2000, 2)}
    plain = plan_mix(L, RATIO, None, seed=1, origin=origin, weights=[1.0, 1.0, 1.0])
    doubled = plan_mix(L, RATIO, None, seed=1, origin=origin, weights=[1.0, 2.0, 1.0])
    assert np.bincount(doubled.selected["clinical"]).tolist() == [2] * 100
    assert abs(doubled.selected_tokens["biomedical"] / plain.selected_tokens["biomedical"] - 2) < 0.01


def test_equal_weights_draw_the_same_pool_as_no_weights():
    L = lengths(biomedical=500, clinical=40, general=200)
    origin = {d: np.arange(len(v)) % 2 for d, v in L.items()}  # two sources per domain, interleaved
    a = plan_mix(L, RATIO, 100_000, seed=3)
    b = plan_mix(L, RATIO, 100_000, seed=3, origin=origin, weights=[0.5, 0.5])
    assert all((a.selected[d] == b.selected[d]).all() for d in L)


def test_prepare_reports_what_each_weighted_source_gave(tmp_path):
    from .helpers import small_recipe, synthetic_docs, write_jsonl

    a = write_jsonl(tmp_path / "a.jsonl", synthetic_docs("biomedical", 200, seed=1))
    b = write_jsonl(tmp_path / "b.jsonl", synthetic_docs("biomedical", 200, seed=2))
    c = write_jsonl(tmp_path / "c.jsonl", synthetic_docs("clinical", 100))
    recipe = small_recipe([{"path": str(a), "domain": "biomedical", "weight": 2.0},
                           {"path": str(b), "domain": "biomedical"},
                           {"path": str(c), "domain": "clinical"}], token_budget=60_000)
    src = prepare(recipe, tmp_path / "out", progress=False).stats["sources"]
    assert [s["weight"] for s in src] == [2.0, 1.0, 1.0] and [s["docs_kept"] for s in src] == [200, 200, 100]
    ratio = src[0]["tokens_selected"] / src[1]["tokens_selected"]
    assert abs(ratio - 2 * src[0]["tokens_available"] / src[1]["tokens_available"]) < 0.1
    assert src[2]["tokens_selected"] > 0 and src[0]["docs_selected"] > 200  # weight 2 of a small source: repeats
