"""Server-rendered pages (plain HTML forms, no JavaScript): read an agreement, accept it, follow the request, get the key.

The requester proves who they are with the claim code handed out on submission (kept in an HttpOnly
cookie, or typed in again); the API key appears once, on the page that issues it.
"""

from __future__ import annotations

import re
from importlib import resources

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt

from medllama.gate import keys
from medllama.gate.config import Agreement
from medllama.gate.db import AccessRequest, utcnow
from medllama.gate.decide import Gate
from medllama.gate.deps import RequestId, get_gate
from medllama.gate.repository import Conflict, NotFound

router = APIRouter(tags=["pages"])
templates = Jinja2Templates(directory=str(resources.files("medllama.gate") / "templates"))
_markdown = MarkdownIt("commonmark", {"html": False})  # agreement text is the operator's, still no raw HTML
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CLAIM_COOKIE = "gate_claim_{}"
_MAX_FIELD = 4000


def _page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers["cache-control"] = "no-store"
    return response


def _agreement_or_404(gate: Gate, agreement_id: str) -> Agreement:
    agreement = gate.config.agreement(agreement_id)
    if agreement is None:
        raise NotFound(f"no agreement {agreement_id!r}")
    return agreement


@router.get("/", response_class=HTMLResponse)
def index(request: Request, gate: Gate = Depends(get_gate)):
    latest = {a.id: gate.config.agreement(a.id) for a in gate.config.agreements}
    return _page(request, "index.html", agreements=list(latest.values()), models=gate.config.models)


@router.get("/agreements/{agreement_id}", response_class=HTMLResponse)
def agreement_page(agreement_id: str, request: Request, gate: Gate = Depends(get_gate)):
    agreement = _agreement_or_404(gate, agreement_id)
    return _page(request, "agreement.html", agreement=agreement, text=_markdown.render(agreement.text),
                 values={}, errors=[])


@router.post("/agreements/{agreement_id}", response_class=HTMLResponse)
async def accept(agreement_id: str, request: Request, gate: Gate = Depends(get_gate)):
    """Accepting = the form with every required field, the acceptance box, and the version that was read."""
    agreement = _agreement_or_404(gate, agreement_id)
    form = await request.form()
    values = {f.name: str(form.get(f.name, "")).strip()[:_MAX_FIELD] for f in agreement.fields}
    errors = [f"{f.label} is required" for f in agreement.fields if f.required and not values[f.name]]
    errors += [f"{f.label} is not an email address" for f in agreement.fields
               if f.kind == "email" and values[f.name] and not _EMAIL.match(values[f.name])]
    if form.get("accept") != "yes":
        errors.append("tick the box to accept the agreement")
    if str(form.get("version", "")) != str(agreement.version):
        errors.append(f"the agreement changed while you read it: this is version {agreement.version}; read it again")
    if errors:
        return _page(request, "agreement.html", 422, agreement=agreement, text=_markdown.render(agreement.text),
                     values=values, errors=errors)
    req, claim = await gate.run(gate.repo.create_request, agreement, values, utcnow())
    response = _page(request, "submitted.html", 201, req=req, claim=claim, agreement=agreement)
    _remember_claim(response, req.id, claim)
    return response


@router.get("/requests/{request_id}", response_class=HTMLResponse)
def status_page(request_id: RequestId, request: Request, gate: Gate = Depends(get_gate)):
    req = _request_of_this_browser(request_id, request, gate)
    if req is None:
        return _page(request, "claim.html", 401, request_id=request_id, error="")
    return _status(request, gate, req)


@router.post("/requests/{request_id}", response_class=HTMLResponse)
def claim(request_id: RequestId, request: Request, claim_code: str = Form("", max_length=200),
          gate: Gate = Depends(get_gate)):
    """The status page in another browser: type the claim code in."""
    req = gate.repo.get_request(request_id)
    if not _claimed(req, claim_code):
        return _page(request, "claim.html", 403, request_id=request_id, error="that claim code does not match")
    response = _status(request, gate, req)
    _remember_claim(response, req.id, claim_code)
    return response


@router.post("/requests/{request_id}/key", response_class=HTMLResponse)
def issue_key(request_id: RequestId, request: Request, gate: Gate = Depends(get_gate)):
    if _request_of_this_browser(request_id, request, gate) is None:
        return _page(request, "claim.html", 401, request_id=request_id, error="")
    try:
        new, row = gate.repo.issue_key(request_id, gate.config.keys, utcnow())
    except Conflict as e:
        return _page(request, "message.html", 409, title="No key issued", message=str(e))
    base = (gate.config.public_url or str(request.base_url)).rstrip("/")
    return _page(request, "key.html", key=new.key, row=row, base_url=f"{base}/openai/v1", models=gate.config.models)


def _status(request: Request, gate: Gate, req: AccessRequest) -> HTMLResponse:
    return _page(request, "status.html", req=req, key=gate.repo.key_for_request(req.id))


def _request_of_this_browser(request_id: int, request: Request, gate: Gate) -> AccessRequest | None:
    """The access request, when this browser holds its claim cookie."""
    req = gate.repo.get_request(request_id)
    return req if _claimed(req, request.cookies.get(_CLAIM_COOKIE.format(request_id))) else None


def _claimed(req: AccessRequest, code: str | None) -> bool:
    return bool(code) and keys.matches(code, req.claim_hash)


def _remember_claim(response: HTMLResponse, request_id: int, claim: str) -> None:
    response.set_cookie(_CLAIM_COOKIE.format(request_id), claim, httponly=True, samesite="strict",
                        path=f"/requests/{request_id}", max_age=90 * 86400)
