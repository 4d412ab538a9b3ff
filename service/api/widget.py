"""The embeddable chat widget: its script, the internal demo page, and short-lived widget tokens."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from service.api.auth import issue_token
from service.api.dependencies import StateDep
from service.errors import Unauthorized
from service.schemas import TokenResponse

STATIC = Path(__file__).resolve().parent.parent / "static"
router = APIRouter()


@router.get("/widget.js", include_in_schema=False)
async def widget_js() -> FileResponse:
    return FileResponse(
        STATIC / "widget.js",
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=300"},
    )


@router.get("/", include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))


@router.post("/widget/token", response_model=TokenResponse, responses={401: {}})
async def widget_token(request: Request, state: StateDep) -> TokenResponse:
    """A token for the widget on an allowed origin (or this service's own page), so that the page
    never carries a long-lived API key. Only issued when API keys are on."""
    settings = state.settings
    origin = (request.headers.get("origin") or "").rstrip("/")
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if not origin or (origin not in settings.cors_origins and origin != own):
        raise Unauthorized("widget tokens are only issued to allowed origins")
    if not settings.api_keys:
        return TokenResponse(token="", expires_in=0)
    return TokenResponse(token=issue_token(settings, origin), expires_in=settings.token_ttl_seconds)
