"""Who may ask: API keys (`CITEQA_API_KEYS`) or short-lived widget tokens, then the rate limit.

Widget tokens exist so an embedding page never carries a long-lived key: the widget asks
`POST /widget/token` from an allowed origin and gets an HMAC-signed token bound to that origin,
valid for `CITEQA_TOKEN_TTL_SECONDS`, good for asking questions only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Annotated

from fastapi import Depends, Request

from service.api.dependencies import StateDep
from service.api.shared_rate_limit import charge
from service.api.state import AppState
from service.errors import RateLimited, Unauthorized
from service.settings import Settings

SCOPE = "ask"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_secret(settings: Settings) -> bytes:
    if settings.token_secret is not None:
        return settings.token_secret.get_secret_value().encode()
    # Derived from the API keys, so every replica sharing the keys accepts the same tokens.
    material = "\n".join(sorted(k.get_secret_value() for k in settings.api_keys))
    return hashlib.sha256(b"citeqa-widget-token\n" + material.encode()).digest()


def issue_token(settings: Settings, origin: str, now: float | None = None) -> str:
    now = time.time() if now is None else now
    claims = {
        "o": origin,
        "s": SCOPE,
        "exp": int(now) + settings.token_ttl_seconds,
        "n": secrets.token_hex(4),
    }
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = _b64(hmac.new(token_secret(settings), body.encode(), hashlib.sha256).digest())
    return f"{body}.{sig}"


def verify_token(settings: Settings, token: str, origin: str | None, now: float | None = None) -> bool:
    try:
        body, sig = token.split(".", 1)
        expected = _b64(hmac.new(token_secret(settings), body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(sig, expected):
            return False
        claims = json.loads(_unb64(body))
    except (ValueError, json.JSONDecodeError):
        return False
    now = time.time() if now is None else now
    return bool(claims.get("s") == SCOPE and claims.get("exp", 0) > now and origin and claims.get("o") == origin)


def key_matches(settings: Settings, presented: str) -> bool:
    found = False
    for key in settings.api_keys:  # compare against every key so timing does not reveal which matched
        found |= hmac.compare_digest(presented.encode(), key.get_secret_value().encode())
    return found


def authenticate(request: Request, settings: Settings) -> str:
    """Who the caller is, by its API key or widget token (`Unauthorized` when keys are configured
    and neither is valid): the key's fingerprint, the token's origin, or the address. Shared by
    /ask and the MCP endpoint (service/api/mcp_mount.py), so both accept exactly the same keys."""
    identity = f"ip:{request.client.host if request.client else 'unknown'}"
    if settings.api_keys:
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        if key_matches(settings, credential):
            identity = "key:" + hashlib.sha256(credential.encode()).hexdigest()[:12]
        elif verify_token(settings, credential, request.headers.get("origin")):
            # Per visitor, not per page: one busy partner page must not exhaust everyone's limit.
            identity = f"origin:{request.headers.get('origin')}|{identity}"
        else:
            raise Unauthorized("invalid, expired or foreign-origin API key or token")
    return identity


async def charge_rate_limit(state: AppState, identity: str) -> None:
    """Count one question against `identity`'s rate limit; `RateLimited` when it is spent."""
    if state.rate_limiter is not None:
        wait = await charge(state.rate_limiter, identity)
        if wait is not None:
            raise RateLimited(f"rate limit {state.settings.rate_limit} exceeded", retry_after=wait)


async def client_identity(request: Request, state: StateDep) -> str:
    """Authenticate the caller of /ask and /ask/stream and charge its rate limit. Returns the
    identity the limit is kept under: the key's fingerprint, the token's origin, or the address.
    `async` so that FastAPI runs it on the event loop, not in a thread; the shared (Redis) limiter
    awaits its round trip there, and the in-memory one never awaits."""
    identity = authenticate(request, state.settings)
    await charge_rate_limit(state, identity)
    return identity


ClientDep = Annotated[str, Depends(client_identity)]
