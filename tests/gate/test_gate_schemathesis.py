"""schemathesis over the gate's OpenAPI (pages and admin API, with the admin credential): no input gives a 5xx."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from gate_helpers import ADMIN_TOKEN, approved_key, auth, open_repo, write_config
from medllama.gate.app import create_app
from medllama.gate.config import load_config


@pytest.fixture(scope="module")
def gate_app():
    root = Path(tempfile.mkdtemp(prefix="gate-schemathesis-"))
    path = write_config(root, f"sqlite:///{root / 'gate.db'}")
    config, repo = open_repo(path)
    approved_key(config, repo)  # something for the list/usage/audit endpoints to return
    return create_app(load_config(path, environ={"MEDLLAMA_GATE_ADMIN_TOKEN": ADMIN_TOKEN}))


schema = schemathesis.pytest.from_fixture("gate_app_schema")


@pytest.fixture(scope="module")
def gate_app_schema(gate_app):
    return schemathesis.openapi.from_asgi("/openapi.json", gate_app)


@schema.parametrize()
@settings(max_examples=int(os.environ.get("GATE_FUZZ_EXAMPLES", "30")), deadline=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case) -> None:
    case.call_and_validate(headers=auth(ADMIN_TOKEN), checks=[not_a_server_error])
