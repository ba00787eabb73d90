"""nginx config (an `upstream` and a `server` block, for `http {}`) putting the gate's check in front of model servers.

One location per model: it names the model for the check (nginx cannot read the JSON body), passes
the gate's identity headers upstream and drops the key. nginx turns any auth status other than
401/403 into a 500, so the check answers 401/403 and `error_page` asks the gate's `/check/nginx/denied`
to answer with the real status (429, 503) and reason. This is what ingress-nginx's `auth-url` does too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"^[\w.\-:/]+$")  # nothing that could break out of an nginx directive


@dataclass(frozen=True)
class Route:
    prefix: str  # "/" or "/name/" (stripped before proxying)
    model: str
    upstream: str  # http://host:port


def server_block(listen: str, gate_url: str, routes: list[Route]) -> str:
    """The config text; every value is checked to be a plain token (no directive injection)."""
    for value in [listen, gate_url, *(v for r in routes for v in (r.prefix, r.model, r.upstream))]:
        if not _TOKEN.match(value):
            raise ValueError(f"{value!r}: not usable in an nginx config")
    scheme, host, path = re.match(r"^(\w+)://([^/]+)(.*)$", gate_url.rstrip("/")).groups()
    # an upstream block keeps connections to the gate open (a plain proxy_pass URL opens one per check)
    out = [f"upstream medllama_gate {{\n    server {host};\n    keepalive 32;\n}}\n",
           f"server {{\n    listen {listen};\n",
           "    location = /_gate_check {\n        internal;\n"
           f"        proxy_pass {scheme}://medllama_gate{path}/check/nginx;\n"
           "        proxy_http_version 1.1;\n        proxy_set_header Connection \"\";\n"
           "        proxy_pass_request_body off;\n        proxy_set_header Content-Length \"\";\n"
           "        proxy_set_header X-Original-URI $request_uri;\n"
           "        proxy_set_header X-Original-Method $request_method;\n"
           "        proxy_set_header X-Gate-Model $gate_model;\n    }\n",
           "    location @gate_denied {\n"
           f"        rewrite ^ {path}/check/nginx/denied break;\n"  # a named location's proxy_pass takes no URI
           f"        proxy_pass {scheme}://medllama_gate;\n"
           "        proxy_http_version 1.1;\n        proxy_set_header Connection \"\";\n"
           "        proxy_pass_request_body off;\n        proxy_set_header Content-Length \"\";\n"
           "        proxy_set_header X-Gate-Status $gate_status;\n"
           "        proxy_set_header X-Gate-Reason $gate_reason;\n    }\n"]
    for r in routes:
        target = r.upstream.rstrip("/") + ("/" if r.prefix != "/" else "")
        out.append(
            f"    location {r.prefix} {{\n        set $gate_model {r.model};\n        auth_request /_gate_check;\n"
            "        auth_request_set $gate_status $upstream_http_x_gate_status;\n"
            "        auth_request_set $gate_reason $upstream_http_x_gate_reason;\n"
            "        auth_request_set $gate_user $upstream_http_x_gate_user;\n"
            "        auth_request_set $gate_key $upstream_http_x_gate_key;\n"
            "        auth_request_set $gate_agreement $upstream_http_x_gate_agreement;\n"
            "        error_page 401 403 = @gate_denied;\n"
            "        proxy_set_header Authorization \"\";\n"
            "        proxy_set_header X-Gate-User $gate_user;\n"
            "        proxy_set_header X-Gate-Key $gate_key;\n"
            "        proxy_set_header X-Gate-Agreement $gate_agreement;\n"
            "        proxy_http_version 1.1;\n        proxy_buffering off;\n"
            f"        proxy_pass {target};\n    }}\n")
    out.append("}\n")
    return "".join(out)


def parse_route(text: str) -> Route:
    """`PREFIX=MODEL@UPSTREAM`, e.g. `/=me-llama-tiny@http://127.0.0.1:8080`."""
    prefix, sep, rest = text.partition("=")
    model, sep2, upstream = rest.partition("@")
    if not (sep and sep2 and prefix.startswith("/") and prefix.endswith("/") and model and upstream):
        raise ValueError(f"--route {text!r}: expected /PREFIX/=MODEL@http://HOST:PORT")
    return Route(prefix, model, upstream)
