"""The gate's core on SQLite: config rules, migrations = models, key lifetime, re-acceptance, the
registry tag as the source of a model's agreement (real MLflow store), admin credential, CLI."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gate_helpers import ADMIN_TOKEN, FORM, MODEL, approved_key, auth, open_repo, write_config
from medllama.gate.decide import Allow, Deny, Gate
from medllama.gate.app import create_app
from medllama.gate.config import GateConfigError, load_config
from medllama.gate.db import Base, make_engine, utcnow
from medllama.gate.repository import Conflict, migrate
from medllama.registry.card import AGREEMENT_TAG


@pytest.fixture
def setup(tmp_path: Path):
    path = write_config(tmp_path, f"sqlite:///{tmp_path / 'gate.db'}")
    config, repo = open_repo(path)
    return path, config, repo


def test_secrets_come_from_the_environment_only(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text("admin_token: hunter2\n")
    with pytest.raises(GateConfigError, match="MEDLLAMA_GATE_ADMIN_TOKEN"):
        load_config(path, environ={})
    path.write_text("database_url: sqlite:///x.db\n")
    config = load_config(path, environ={"MEDLLAMA_GATE_ADMIN_TOKEN": "s3cret-token",
                                        "MEDLLAMA_GATE_DATABASE_URL": "sqlite:///y.db"})
    assert config.database_url == "sqlite:///y.db" and config.admin_token.get_secret_value() == "s3cret-token"
    assert "s3cret-token" not in repr(config) and "s3cret-token" not in str(config.model_dump())
    assert config.agreement("me-llama-dua").approval == "manual"  # the bundled agreement when none is configured


def test_bad_config_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text("models: {m: no-version}\n")
    with pytest.raises(GateConfigError, match="models.m"):
        load_config(path, environ={})
    path.write_text("models: {m: 'unknown-dua@1'}\n")
    with pytest.raises(GateConfigError, match="not configured"):
        load_config(path, environ={})


def test_migrations_build_exactly_the_models(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import medllama.clinical.rating.tables  # noqa: F401 - the rating pages' tables share the gate's metadata and migrations

    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    migrate(engine)  # idempotent
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_key_lifetime_is_capped_and_shown_once(setup) -> None:
    _, config, repo = setup
    key, row = approved_key(config, repo, days=10_000)
    assert row.expires_at - row.created_at == timedelta(days=config.keys.max_days)
    assert key.startswith(f"mlk_{row.prefix}_") and row.key_hash != key and len(key) > 50
    with pytest.raises(Conflict, match="shown only once"):
        repo.issue_key(row.request_id, config.keys, utcnow())


def test_a_new_agreement_version_needs_re_acceptance(setup) -> None:
    _, config, repo = setup
    gate = Gate(config, repo)
    old, _ = approved_key(config, repo, version=1)
    decision = gate.decide(old, MODEL, "/openai/v1/chat/completions", utcnow())
    assert isinstance(decision, Deny) and decision.status == 403 and "/agreements/me-llama-dua" in decision.reason
    new, _ = approved_key(config, repo, version=2)  # the same person accepts version 2
    assert isinstance(gate.decide(new, MODEL, "/openai/v1/chat/completions", utcnow()), Allow)


def test_pending_and_rejected_requests_get_no_key(setup) -> None:
    _, config, repo = setup
    req, _ = repo.create_request(config.agreement("me-llama-dua"), FORM, utcnow())
    with pytest.raises(Conflict, match="pending"):
        repo.issue_key(req.id, config.keys, utcnow())
    repo.decide_request(req.id, False, "test", utcnow(), "no certificate")
    with pytest.raises(Conflict, match="already rejected"):
        repo.decide_request(req.id, True, "test", utcnow())


def test_model_agreement_from_registry_tag(tmp_path: Path, setup) -> None:
    """A real MLflow store: the tag on a model version (or the registered model) decides; no tag = not offered."""
    from mlflow import MlflowClient

    _, config, repo = setup
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("by-version")
    client.create_model_version("by-version", source=str(tmp_path), tags={AGREEMENT_TAG: "me-llama-dua@2"})
    client.create_registered_model("by-model", tags={AGREEMENT_TAG: "me-llama-dua@1"})
    client.create_registered_model("untagged")
    config.models = {}
    config.registry.tracking_uri = uri
    gate = Gate(config, repo)
    v1, _ = approved_key(config, repo, version=1)
    now = utcnow()
    assert gate.requirements("by-version") == ("me-llama-dua", 2)
    assert gate.decide(v1, "by-version", "/x", now).status == 403
    assert isinstance(gate.decide(v1, "by-model", "/x", now), Allow)
    assert "not offered" in gate.decide(v1, "untagged", "/x", now).reason
    assert "not offered" in gate.decide(v1, "no-such-model", "/x", now).reason


def test_admin_api_needs_the_admin_credential(setup) -> None:
    path, config, _ = setup
    config.admin_token = None
    with TestClient(create_app(config)) as c:
        assert c.get("/admin/api/requests", headers=auth(ADMIN_TOKEN)).status_code == 403  # off without a token
    config = load_config(path, environ={"MEDLLAMA_GATE_ADMIN_TOKEN": ADMIN_TOKEN})
    with TestClient(create_app(config)) as c:
        assert c.get("/admin/api/requests").status_code == 401
        assert c.get("/admin/api/requests", headers=auth("wrong")).status_code == 401
        r = c.post("/agreements/other-dua", data={**FORM, "accept": "yes", "version": "1"})
        assert r.status_code == 201  # automatic approval
        [req] = c.get("/admin/api/requests", headers=auth(ADMIN_TOKEN)).json()
        assert req["status"] == "approved" and req["decided_by"] == "auto"
        assert c.post("/admin/api/requests/99/approve", headers=auth(ADMIN_TOKEN)).status_code == 404


def test_cli_lists_and_decides_requests(setup, capsys: pytest.CaptureFixture) -> None:
    """The `medllama gate` verbs, in-process (a subprocess run of the CLI is in test_gate_doors)."""
    from medllama.cli import main

    path, config, repo = setup
    a, _ = repo.create_request(config.agreement("me-llama-dua"), FORM, utcnow())
    b, _ = repo.create_request(config.agreement("me-llama-dua"), FORM, utcnow())

    def gate(*args: str) -> tuple[int, str, str]:
        rc = main(["gate", "--config", str(path), *args])
        out = capsys.readouterr()
        return rc, out.out, out.err

    rc, out, _ = gate("list", "--status", "pending")
    assert rc == 0 and [r["id"] for r in json.loads(out)] == [a.id, b.id]
    assert json.loads(gate("approve", str(a.id))[1])["status"] == "approved"
    assert json.loads(gate("reject", str(b.id), "--reason", "no certificate")[1])["status"] == "rejected"
    rc, _, err = gate("approve", str(b.id))
    assert rc == 2 and "already rejected" in err
    key, row = approved_key(config, repo)
    assert json.loads(gate("quota", row.prefix, "--tokens-per-day", "5")[1])["tokens_per_day"] == 5
    assert [k["prefix"] for k in json.loads(gate("keys")[1])] == [row.prefix]
    assert key not in gate("keys")[1]


def test_the_form_refuses_incomplete_or_stale_acceptance(setup) -> None:
    _, config, repo = setup
    with TestClient(create_app(config)) as c:
        r = c.post("/agreements/me-llama-dua", data={**FORM, "email": "not-an-email", "version": "2"})
        assert r.status_code == 422 and "tick the box" in r.text and "not an email address" in r.text
        r = c.post("/agreements/me-llama-dua", data={**FORM, "accept": "yes", "version": "1"})
        assert r.status_code == 422 and "this is version 2" in r.text
        assert c.post("/agreements/nope", data={}).status_code == 404
    assert repo.list_requests() == []


def test_other_routers_mount_and_reuse_the_key_and_admin_dependencies(setup) -> None:
    """The contract the rating pages rely on: create_app(routers=[...]) with require_api_key / require_admin."""
    from fastapi import APIRouter, Depends

    from medllama.gate.deps import require_admin, require_api_key

    path, config, repo = setup
    router = APIRouter()

    @router.get("/ratings/me")
    def me(who: Allow = Depends(require_api_key)) -> dict:
        return {"owner": who.owner, "agreement": who.agreement}

    @router.get("/ratings/admin")
    def admin(actor: str = Depends(require_admin)) -> dict:
        return {"actor": actor}

    key, row = approved_key(config, repo)
    config = load_config(path, environ={"MEDLLAMA_GATE_ADMIN_TOKEN": ADMIN_TOKEN})
    with TestClient(create_app(config, routers=[router])) as c:
        assert c.get("/ratings/me").status_code == 401
        assert c.get("/ratings/me", headers={"Authorization": "Basic abc"}).json()["detail"] == "malformed API key"
        assert c.get("/ratings/me", headers=auth(key)).json() == {"owner": "ada@example.org",
                                                                  "agreement": "me-llama-dua@2"}
        assert c.get("/ratings/admin", headers=auth(key)).status_code == 401
        assert c.get("/ratings/admin", headers=auth(ADMIN_TOKEN)).json() == {"actor": "admin"}
        repo.revoke(row.prefix, utcnow())
        assert c.get("/ratings/me", headers=auth(key)).json()["detail"] == "API key revoked"
