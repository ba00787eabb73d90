"""schemathesis over the rating routes mounted on the gate's app, as the admin and as a rater: no input gives a 5xx."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from medllama.clinical.rating.router import rating_router
from medllama.gate.app import create_app
from medllama.gate.config import load_config
from medllama.recipe import RatingSpec
from tests.gate.gate_helpers import ADMIN_TOKEN, approved_key, auth, open_repo, write_config

pytestmark = pytest.mark.local


@pytest.fixture(scope="module")
def rating_app():
    root = Path(tempfile.mkdtemp(prefix="rating-schemathesis-"))
    path = write_config(root, f"sqlite:///{root / 'gate.db'}")
    config, repo = open_repo(path)
    key, _ = approved_key(config, repo)
    app = create_app(load_config(path, environ={"MEDLLAMA_GATE_ADMIN_TOKEN": ADMIN_TOKEN}), [rating_router(RatingSpec())])
    return app, key


@pytest.fixture(scope="module")
def rating_schema(rating_app):
    return schemathesis.openapi.from_asgi("/openapi.json", rating_app[0]).include(path_regex="^/rating")


schema = schemathesis.pytest.from_fixture("rating_schema")


@schema.parametrize()
@settings(max_examples=int(os.environ.get("RATING_FUZZ_EXAMPLES", "10")), deadline=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, rating_app) -> None:
    for who in (ADMIN_TOKEN, rating_app[1]):
        case.call_and_validate(headers=auth(who), checks=[not_a_server_error])
