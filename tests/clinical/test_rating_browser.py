"""Human rating of clinical cases end to end: `medllama gate serve --rating-recipe tiny` (real server, SQLite, the
gate's migrations), two raters holding real gate keys rate every case in real headless Chromium (Playwright,
Debian's chromium), and the admin report shows their agreement, equal to the libraries' figures on the same
ratings; the CSV export holds every rating unblinded."""

from __future__ import annotations

import csv
import io
import json
import os
import random
from pathlib import Path

import httpx
import krippendorff
import pytest
from sklearn.metrics import cohen_kappa_score

from medllama.storage import local_path
from tests.gate.gate_helpers import ADMIN_TOKEN, approved_key, auth, open_repo, running, write_config
from tests.servers import free_port, venv_bin

pytestmark = [pytest.mark.slow, pytest.mark.local]

MODELS = ("model-x", "model-y")
MARK = {"model-x": "Xanthoma", "model-y": "Ypsiloid"}  # how each model's diagnoses can be told apart, name unseen
RATERS = ("rater1@example.org", "rater2@example.org")


def cases() -> list[dict]:
    return [json.loads(line) for line in local_path("samples://eval/clinical-cases/cases.jsonl").open()]


def planned_ratings() -> dict[tuple[str, str, str, str], int]:
    """(rater, case id, model, criterion) -> value: rater 2 mostly agrees with rater 1 (seeded)."""
    rng = random.Random(7)
    plan = {}
    for case in cases():
        for model in MODELS:
            top, quality = rng.randint(0, 1), rng.randint(1, 5)
            plan[(RATERS[0], case["id"], model, "correct_in_top_k")] = top
            plan[(RATERS[0], case["id"], model, "quality")] = quality
            plan[(RATERS[1], case["id"], model, "correct_in_top_k")] = top if rng.random() < 0.8 else 1 - top
            plan[(RATERS[1], case["id"], model, "quality")] = min(5, max(1, quality + rng.choice([-1, 0, 0, 1])))
    return plan


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("rating")
    config_path = write_config(root, f"sqlite:///{root / 'gate.db'}")
    config, repo = open_repo(config_path)
    keys = {email: approved_key(config, repo, email=email)[0] for email in (*RATERS, "outsider@example.org")}
    port = free_port()
    cmd = [venv_bin("medllama") or "medllama", "gate", "--config", str(config_path), "serve", "--port", str(port),
           "--rating-recipe", "tiny"]
    env = {**os.environ, "MEDLLAMA_GATE_ADMIN_TOKEN": ADMIN_TOKEN,
           "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with running(cmd, "/healthz", root / "gate.log", env, port, "medllama gate serve") as server:
        admin = httpx.Client(base_url=server.url, headers=auth(ADMIN_TOKEN))
        differentials = {m: {c["id"]: [f"{MARK[m]} variant {i}" for i in range(1, 8)] for c in cases()} for m in MODELS}
        assert httpx.post(f"{server.url}/rating/admin/cases", json={"cases": cases(), "differentials": differentials}
                          ).status_code == 401  # no admin credential
        r = admin.post("/rating/admin/cases", json={"cases": cases(), "differentials": differentials})
        assert r.status_code == 201 and r.json() == {"imported": 8}
        assert admin.post("/rating/admin/cases", json={"cases": cases()[:1], "differentials": differentials}
                          ).status_code == 409
        for rater in RATERS:
            r = admin.post("/rating/admin/assignments", json={"rater": rater, "case_ids": [c["id"] for c in cases()]})
            assert r.json() == {"assigned": 8}
        assert admin.post("/rating/admin/assignments", json={"rater": RATERS[0], "case_ids": ["nope"]}).status_code == 404
        yield server, keys, admin


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def rated(site, browser):
    """Both raters sign in with their keys and rate every assigned case through the pages."""
    server, keys, _ = site
    plan = planned_ratings()
    seen_labels: dict[str, dict[str, str]] = {}
    for rater in RATERS:
        page = browser.new_context(base_url=server.url).new_page()
        page.goto("/rating/")
        assert "/rating/login" in page.url and "missing API key" in page.inner_text("[role=alert]")
        page.fill("#key", "not-a-key")
        page.click("button[type=submit]")
        assert "malformed API key" in page.inner_text("[role=alert]")
        page.fill("#key", keys[rater])
        page.click("button[type=submit]")
        assert page.url.endswith("/rating/") and rater in page.content()
        assert page.locator("li").count() == 8
        for case in cases():
            page.click(f"text={case['id']}")
            html = page.content()
            assert case["case"] in html and case["diagnosis"] in html
            assert not any(m in html for m in MODELS), "the model's name must stay hidden from raters"
            labels = {}
            for legend in page.locator("legend").all_inner_texts():
                label = legend.removeprefix("Differential ").strip()
                first = page.locator("fieldset", has_text=legend).locator("li").first.inner_text()
                labels[label] = next(m for m, mark in MARK.items() if first.startswith(mark))
            seen_labels.setdefault(case["id"], labels)
            assert seen_labels[case["id"]] == labels, "both raters see the same blinding"
            assert page.locator("fieldset").first.locator("li").count() == 5  # the recipe's top_k
            page.click("button[type=submit]")  # nothing chosen yet: refused with the reason, nothing stored
            assert "answer" in page.inner_text("[role=alert]")
            for label, model in labels.items():
                for criterion in ("correct_in_top_k", "quality"):
                    value = plan[(rater, case["id"], model, criterion)]
                    page.check(f"input[name='{label}.{criterion}'][value='{value}']")
            page.click("button[type=submit]")
            assert page.url.endswith("/rating/")
        assert page.locator("li", has_text="to rate").count() == 0
    return plan, seen_labels


def test_models_are_blinded_and_shuffled(rated):
    _, labels = rated
    assert {frozenset(v.items()) for v in labels.values()} == {frozenset({("A", "model-x"), ("B", "model-y")}),
                                                                 frozenset({("A", "model-y"), ("B", "model-x")})}


def test_report_shows_the_raters_agreement(site, browser, rated):
    server, _, _ = site
    plan, _ = rated
    page = browser.new_context(base_url=server.url, extra_http_headers=auth(ADMIN_TOKEN)).new_page()
    page.goto("/rating/admin/report")
    items = [(c["id"], m) for c in cases() for m in MODELS]
    for criterion, level, weights in (("correct_in_top_k", "nominal", None), ("quality", "ordinal", "quadratic")):
        table = [[plan[(r, c, m, criterion)] for c, m in items] for r in RATERS]
        row = page.locator(f"tr[data-criterion={criterion}]")
        alpha = krippendorff.alpha(reliability_data=table, level_of_measurement=level)
        kappa = cohen_kappa_score(table[0], table[1], weights=weights)
        assert row.locator(".alpha").inner_text() == f"{alpha:.3f}"
        assert row.locator(".kappa").inner_text() == f"{RATERS[0]} vs {RATERS[1]}: {kappa:.3f}"
        assert row.locator("td").nth(3).inner_text() == "16"  # items rated by both
    md = httpx.get(f"{server.url}/rating/admin/report", headers={**auth(ADMIN_TOKEN), "accept": "text/markdown"}).text
    assert md.startswith("# Human rating of clinical cases") and "| model-x |" in md


def test_csv_export_has_every_rating_unblinded(site, rated):
    _, _, admin = site
    plan, labels = rated
    rows = list(csv.DictReader(io.StringIO(admin.get("/rating/admin/ratings.csv").text)))
    assert len(rows) == len(plan) == 2 * 8 * 2 * 2
    for row in rows:
        assert int(row["value"]) == plan[(row["rater"], row["case_id"], row["model"], row["criterion"])]
        assert labels[row["case_id"]][row["label"]] == row["model"]


def test_keys_and_assignments_guard_the_pages(site, rated):
    server, keys, admin = site
    outsider = httpx.Client(base_url=server.url, headers=auth(keys["outsider@example.org"]))
    r = outsider.get("/rating/cases/case-01")
    assert r.status_code == 403 and "not assigned to you" in r.text
    assert outsider.get("/rating/").status_code == 200 and "No case is assigned to you" in outsider.get("/rating/").text
    rater = httpx.Client(base_url=server.url, headers=auth(keys[RATERS[0]]))
    bad = rater.post("/rating/cases/case-01", data={"A.correct_in_top_k": "1", "A.quality": "9",
                                                    "B.correct_in_top_k": "0", "B.quality": "3"})
    assert bad.status_code == 400 and "1–5" in bad.text
    assert httpx.get(f"{server.url}/rating/", headers=auth("mlk-bogus")).status_code == 401
    assert httpx.get(f"{server.url}/rating/admin/ratings.csv", headers=auth(keys[RATERS[0]])).status_code == 401
