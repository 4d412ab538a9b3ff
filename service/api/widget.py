"""The embeddable chat widget: its script, the internal demo page, and short-lived widget tokens."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from service.api.auth import issue_token
from service.api.dependencies import StateDep
from service.api.shared_rate_limit import charge
from service.errors import RateLimited, Unauthorized
from service.schemas import ErrorResponse, TokenResponse

STATIC = Path(__file__).resolve().parent.parent / "static"
router = APIRouter()


@router.api_route("/widget.js", methods=["GET", "HEAD"], include_in_schema=False)
async def widget_js() -> FileResponse:
    return FileResponse(
        STATIC / "widget.js",
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=300"},
    )


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))


@router.post(
    "/widget/token",
    response_model=TokenResponse,
    responses={code: {"model": ErrorResponse} for code in (401, 413, 429, 503)},
)
async def widget_token(request: Request, state: StateDep) -> TokenResponse:
    """A token for the widget on an origin the operator listed (`CITEQA_CORS_ORIGINS`, or this
    service's own page at `CITEQA_PUBLIC_URL`), so that the page never carries a long-lived API key.

    What a token proves is only what a browser promises: a browser sends the page's true `Origin`,
    but any other client can send any `Origin` it likes. A token keeps keys out of pages and binds
    what is asked to one listed origin and a short lifetime; it does not stop a script that
    pretends to be that page. Operators who need that switch tokens off (`CITEQA_WIDGET_TOKENS=false`)."""
    settings = state.settings
    if state.token_limiter is not None:
        address = request.client.host if request.client else "unknown"
        wait = await charge(state.token_limiter, f"token:{address}")
        if wait is not None:
            raise RateLimited(f"widget token rate limit {settings.token_rate_limit} exceeded", retry_after=wait)
    if not settings.api_keys:  # nothing to protect: /ask needs no credential
        return TokenResponse(token="", expires_in=0)
    origin = (request.headers.get("origin") or "").rstrip("/")
    if not origin or origin not in settings.token_origins:
        raise Unauthorized(
            "widget tokens are only issued to the origins listed in CITEQA_CORS_ORIGINS or CITEQA_PUBLIC_URL"
        )
    if not settings.widget_tokens:
        raise Unauthorized("widget tokens are switched off on this service (CITEQA_WIDGET_TOKENS=false)")
    return TokenResponse(token=issue_token(settings, origin), expires_in=settings.token_ttl_seconds)
