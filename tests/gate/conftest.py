"""Gate test fixtures: a throw-away PostgreSQL cluster (skips only when PostgreSQL is not installed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gate_helpers.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # servers.py
from servers import Postgres, ServerUnavailable, postgres_server  # noqa: E402


@pytest.fixture(scope="session")
def gate_postgres():
    try:
        with postgres_server() as pg:
            yield pg
    except ServerUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture
def pg_database(gate_postgres: Postgres, request: pytest.FixtureRequest) -> str:
    """A fresh database for one test; returns its SQLAlchemy URL."""
    name = "gate_" + "".join(c if c.isalnum() else "_" for c in request.node.name).lower()[:50]
    return gate_postgres.create_database(name)
