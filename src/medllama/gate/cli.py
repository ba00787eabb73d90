"""`medllama gate …`: run the gate, and administer it straight on its database (same config as the server)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    gate = sub.add_parser("gate", help="the data-use-agreement gate in front of the model servers",
                          description="Serve the gate, or administer it (requests, keys, quotas, usage, audit).")
    gate.set_defaults(fn=run)
    gate.add_argument("--config", default=None, help="gate YAML (default: $MEDLLAMA_GATE_CONFIG, else built-in)")
    verbs = gate.add_subparsers(dest="gate_verb", required=True)
    p = verbs.add_parser("serve", help="run the gate (pages, admin API, ext_authz/nginx checks, proxy)")
    p.add_argument("--upstream", default=None, help="model server base URL: turns the reverse proxy on")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--access-log", action="store_true",
                   help="also log every HTTP request (off: the audit already records every decision, and the "
                        "log line costs about as much CPU as the decision)")
    p.add_argument("--rating-recipe", default=None,
                   help="also serve the clinical-case rating pages (/rating) with this recipe's rating criteria")
    verbs.add_parser("migrate", help="create or upgrade the gate's tables")
    p = verbs.add_parser("nginx-conf", help="print an nginx server block with auth_request to this gate")
    p.add_argument("--listen", default="8080")
    p.add_argument("--gate", default="http://127.0.0.1:8000", help="the gate's URL as nginx reaches it")
    p.add_argument("--route", action="append", required=True, metavar="/PREFIX/=MODEL@UPSTREAM")
    p = verbs.add_parser("list", help="access requests")
    p.add_argument("--status", choices=["pending", "approved", "rejected"], default=None)
    for name in ("approve", "reject"):
        p = verbs.add_parser(name, help=f"{name} a pending access request")
        p.add_argument("request_id", type=int)
        p.add_argument("--reason", default="")
    verbs.add_parser("keys", help="issued keys (prefixes only)")
    p = verbs.add_parser("revoke", help="revoke a key; effective on its next request")
    p.add_argument("prefix")
    p = verbs.add_parser("quota", help="set a key's limits")
    p.add_argument("prefix")
    p.add_argument("--requests-per-minute", type=int, default=None)
    p.add_argument("--tokens-per-day", type=int, default=None)
    p = verbs.add_parser("usage", help="tokens per key, model and day")
    p.add_argument("--key", default=None, help="key prefix")
    p.add_argument("--day", default=None, help="YYYY-MM-DD")
    p = verbs.add_parser("audit", help="the newest decisions")
    p.add_argument("--key", default=None, help="key prefix")
    p.add_argument("--limit", type=int, default=50)


def run(args: argparse.Namespace) -> None:
    from medllama.gate.config import load_config

    if args.gate_verb == "nginx-conf":
        from medllama.gate.nginx import parse_route, server_block

        print(server_block(args.listen, args.gate, [parse_route(r) for r in args.route]), end="")
        return
    config = load_config(args.config)
    if args.gate_verb == "serve":
        _serve(config, args)
        return
    from medllama.gate.db import make_engine, utcnow
    from medllama.gate.repository import Repository, migrate

    engine = make_engine(config.database_url)
    migrate(engine)
    repo = Repository(engine)
    verb = args.gate_verb
    if verb == "migrate":
        out: Any = {"database": engine.url.render_as_string(hide_password=True), "migrated": True}
    elif verb == "list":
        out = [_row(r, "id agreement_id agreement_version email status created_at decided_by reason")
               for r in repo.list_requests(args.status)]
    elif verb in ("approve", "reject"):
        out = _row(repo.decide_request(args.request_id, verb == "approve", "cli", utcnow(), args.reason),
                   "id email status decided_at")
    elif verb == "keys":
        out = [_row(k, _KEY_FIELDS) for k in repo.list_keys()]
    elif verb == "revoke":
        out = _row(repo.revoke(args.prefix, utcnow()), _KEY_FIELDS)
    elif verb == "quota":
        out = _row(repo.set_quota(args.prefix, args.requests_per_minute, args.tokens_per_day), _KEY_FIELDS)
    elif verb == "usage":
        out = repo.usage(args.key, args.day)
    else:
        out = repo.audit_events(args.key, args.limit)
    print(json.dumps(out, indent=2, default=str))


_KEY_FIELDS = "prefix owner agreement_id agreement_version expires_at revoked_at requests_per_minute tokens_per_day"


def _row(obj: object, fields: str) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in fields.split()}


def _serve(config, args: argparse.Namespace) -> None:
    import uvicorn

    from medllama.gate.app import create_app

    if args.upstream:
        config.upstream = args.upstream
    routers = []
    if args.rating_recipe:  # human rating of clinical cases, behind the same keys (medllama.clinical.rating)
        from medllama.clinical.rating.router import rating_router
        from medllama.recipe import load_recipe

        routers.append(rating_router(load_recipe(args.rating_recipe).rating))
    uvicorn.run(create_app(config, routers), host=args.host, port=args.port, log_level="info", proxy_headers=False,
                access_log=args.access_log)
