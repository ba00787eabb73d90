"""The gate on PostgreSQL (a real cluster): migrations, the whole decision matrix, and 100 concurrent sign-ups."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from gate_helpers import FORM, authorization_matrix, gate_server, open_repo, write_config
from medllama.gate.decide import Gate

pytestmark = pytest.mark.local


def test_decision_matrix_on_postgres(tmp_path: Path, pg_database: str) -> None:
    bare = pg_database.replace("postgresql+psycopg2://", "postgresql://")  # as operators write it: psycopg2 is used
    config, repo = open_repo(write_config(tmp_path, bare))
    gate = Gate(config, repo)
    got, want = {}, {}
    for case in authorization_matrix(config, repo):
        if case.allowed_first:
            assert gate.check(case.key, case.model, "POST /openai/v1/chat/completions", "proxy")[0].status == 200
        decision, _ = gate.check(case.key, case.model, "POST /openai/v1/chat/completions", "proxy")
        got[case.name], want[case.name] = decision.status, case.status
    assert got == want
    gate.ledger.flush()
    assert len(repo.audit_events(limit=1000)) == len(want) + 1


def test_100_concurrent_sign_ups_leave_exactly_100_requests(tmp_path: Path, pg_database: str) -> None:
    config_path = write_config(tmp_path, pg_database)
    with gate_server(config_path, tmp_path / "gate.log") as gate:
        async def sign_up(client: httpx.AsyncClient, i: int) -> int:
            form = {**FORM, "email": f"user{i}@example.org", "accept": "yes", "version": "2"}
            return (await client.post(f"{gate.url}/agreements/me-llama-dua", data=form)).status_code

        async def all_at_once() -> list[int]:
            limits = httpx.Limits(max_connections=100)
            async with httpx.AsyncClient(limits=limits, timeout=60) as client:
                return await asyncio.gather(*(sign_up(client, i) for i in range(100)))

        statuses = asyncio.run(all_at_once())
    assert statuses == [201] * 100
    _, repo = open_repo(config_path)
    requests = repo.list_requests()
    assert len(requests) == 100 and len({r.id for r in requests}) == 100
    assert sorted(r.email for r in requests) == sorted(f"user{i}@example.org" for i in range(100))
    assert {r.status for r in requests} == {"pending"}
