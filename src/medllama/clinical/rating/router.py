"""The rating pages, mounted on the gate's app and behind its keys: `create_app(config, routers=[rating_router(spec)])`.

Raters (server-rendered HTML forms, no JavaScript): sign in with their gate API key (kept in an HttpOnly,
SameSite=Strict cookie, or sent as `Authorization: Bearer`), see the cases assigned to them, and rate each
model's differential, shown under a blind label (A, B, ...) in a per-case shuffle. The admin (the gate's admin
credential, JSON API): import cases and differentials, assign cases to raters, export the ratings as CSV, read
the report with the inter-rater agreement and the unblinded per-model ratings.
"""

from __future__ import annotations

from importlib import resources
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from medllama.clinical.agreement import agreement_markdown
from medllama.clinical.rating.store import AssignmentIn, CasesIn, NotAssigned, RatingError, RatingStore
from medllama.gate.db import utcnow
from medllama.gate.deps import get_gate, require_admin, require_api_key
from medllama.recipe import RatingSpec

KEY_COOKIE = "medllama_rater_key"
_bearer = HTTPBearer(auto_error=False, description="the rater's gate API key")
templates = Jinja2Templates(directory=str(resources.files("medllama.clinical.rating") / "templates"))


def rating_router(spec: RatingSpec) -> APIRouter:
    """The rating pages and admin API for the criteria of `spec` (a recipe's `rating:` section)."""
    router = APIRouter(prefix="/rating", tags=["rating"])

    def store(request: Request) -> RatingStore:
        if getattr(request.app.state, "ratings", None) is None:
            request.app.state.ratings = RatingStore(get_gate(request).repo.engine, spec)
        return request.app.state.ratings

    async def rater(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> str:
        """The owner of a valid gate key (bearer or cookie); a browser without one is sent to sign in."""
        cookie = request.cookies.get(KEY_COOKIE)
        if credentials is None and cookie:
            credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=cookie)
        try:
            return (await require_api_key(request, get_gate(request), credentials)).owner
        except HTTPException as e:
            if e.status_code == 401 and "text/html" in request.headers.get("accept", ""):
                raise HTTPException(303, headers={"Location": f"/rating/login?reason={quote(str(e.detail))}"}) from None
            raise

    def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        response = templates.TemplateResponse(request, name, {"spec": spec, **context}, status_code=status)
        response.headers["cache-control"] = "no-store"
        return response

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, reason: str = ""):
        return page(request, "login.html", error=reason)

    @router.post("/login", response_class=HTMLResponse)
    async def login(request: Request, key: str = Form("", max_length=512)):
        try:
            await require_api_key(request, get_gate(request), HTTPAuthorizationCredentials(scheme="Bearer",
                                                                                          credentials=key.strip()))
        except HTTPException as e:
            return page(request, "login.html", e.status_code, error=str(e.detail))
        response = RedirectResponse("/rating/", status_code=303)
        response.set_cookie(KEY_COOKIE, key.strip(), httponly=True, samesite="strict", path="/rating")
        return response

    @router.post("/logout")
    def logout():
        response = RedirectResponse("/rating/login", status_code=303)
        response.delete_cookie(KEY_COOKIE, path="/rating")
        return response

    @router.get("/", response_class=HTMLResponse)
    async def my_cases(request: Request, who: str = Depends(rater), ratings: RatingStore = Depends(store)):
        return page(request, "cases.html", rater=who, cases=await run_in_threadpool(ratings.assigned, who))

    @router.get("/cases/{case_id}", response_class=HTMLResponse)
    async def case_page(request: Request, case_id: str, who: str = Depends(rater), ratings: RatingStore = Depends(store)):
        try:
            view = await run_in_threadpool(ratings.case_for, who, case_id)
        except NotAssigned as e:
            return page(request, "message.html", 403, message=str(e))
        return page(request, "case.html", rater=who, case=view, values=view.ratings)

    @router.post("/cases/{case_id}", response_class=HTMLResponse)
    async def rate(request: Request, case_id: str, who: str = Depends(rater), ratings: RatingStore = Depends(store)):
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        try:
            await run_in_threadpool(ratings.rate, who, case_id, form, utcnow())
        except NotAssigned as e:
            return page(request, "message.html", 403, message=str(e))
        except RatingError as e:
            view = await run_in_threadpool(ratings.case_for, who, case_id)
            return page(request, "case.html", 400, rater=who, case=view, values=form, error=str(e))
        return RedirectResponse("/rating/", status_code=303)

    @router.post("/admin/cases", status_code=201)
    async def import_cases(payload: CasesIn, admin: str = Depends(require_admin), ratings: RatingStore = Depends(store)):
        try:
            return {"imported": await run_in_threadpool(ratings.import_cases, payload, utcnow())}
        except RatingError as e:
            raise HTTPException(409, str(e)) from None

    @router.post("/admin/assignments")
    async def assign(payload: AssignmentIn, admin: str = Depends(require_admin), ratings: RatingStore = Depends(store)):
        try:
            return {"assigned": await run_in_threadpool(ratings.assign, payload, admin, utcnow())}
        except RatingError as e:
            raise HTTPException(404, str(e)) from None

    @router.get("/admin/ratings.csv", response_class=PlainTextResponse)
    async def export(admin: str = Depends(require_admin), ratings: RatingStore = Depends(store)):
        return Response(await run_in_threadpool(ratings.csv), media_type="text/csv",
                        headers={"content-disposition": "attachment; filename=ratings.csv"})

    @router.get("/admin/report", response_class=HTMLResponse)
    async def report(request: Request, admin: str = Depends(require_admin), ratings: RatingStore = Depends(store)):
        agreement, by_model = await run_in_threadpool(lambda: (ratings.agreement(), ratings.by_model()))
        if "text/markdown" in request.headers.get("accept", ""):
            return PlainTextResponse(report_markdown(spec, agreement, by_model), media_type="text/markdown")
        return page(request, "report.html", agreement=agreement, by_model=by_model)

    return router


def report_markdown(spec: RatingSpec, agreement: list, by_model: dict) -> str:
    """The human-rating section of a report: agreement per criterion, then each model's mean ratings."""
    head = "| model | " + " | ".join(c.name for c in spec.criteria) + " |\n|---|" + "---|" * len(spec.criteria)
    rows = [f"| {m} | " + " | ".join(f"{v[c.name][0]:.2f} (n={v[c.name][1]})" if c.name in v else "-"
                                      for c in spec.criteria) + " |" for m, v in by_model.items()]
    return ("# Human rating of clinical cases\n\n## Inter-rater agreement\n\n" + agreement_markdown(agreement)
            + "\n## Mean rating per model (unblinded)\n\n" + head + "\n" + "\n".join(rows) + "\n")
