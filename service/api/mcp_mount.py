"""The MCP server (service/mcp_server.py) over streamable HTTP at `/mcp` of the HTTP API.

A request is authenticated exactly like /ask (`CITEQA_API_KEYS`, widget tokens), before the MCP
SDK sees it: a missing or wrong key is the same 401 `ErrorResponse`. Each tool call is then
charged to the caller's rate limit and refused when the LLM queue is full, as an /ask would be.
The SDK's session manager needs a task group for the app's whole life: `running()` is entered by
the app's lifespan, and builds a fresh server each time, since a manager runs only once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from mcp.server.fastmcp import Context
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from service.answer.pipeline import Answerer
from service.api.auth import authenticate, charge_rate_limit
from service.api.dependencies import get_answerer
from service.api.error_responses import error_response
from service.api.state import AppState
from service.errors import CiteqaError
from service.mcp_server import build_server

PATH = "/mcp"
_IDENTITY = "citeqa_identity"  # where the authenticated caller is kept in the request's scope state


class MCPEndpoint:
    """The ASGI app behind `/mcp`: authentication, then the SDK's streamable HTTP handler."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.manager: StreamableHTTPSessionManager | None = None

    def _state(self) -> AppState:
        return self.app.state.citeqa  # type: ignore[no-any-return]

    async def _answerer(self) -> Answerer:
        return await get_answerer(self._state())  # NotReady while loading, like /ask

    async def _admit(self, ctx: Context[Any, Any, Any]) -> None:
        state = self._state()
        request = ctx.request_context.request
        identity = getattr(getattr(request, "state", None), _IDENTITY, None) or "mcp:unknown"
        await charge_rate_limit(state, identity)
        state.gate.check()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        server = build_server(self._answerer, self._admit, http=True)
        server.streamable_http_app()  # creates the session manager
        async with server.session_manager.run():
            self.manager = server.session_manager
            try:
                yield
            finally:
                self.manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            identity = authenticate(request, self._state().settings)
            if self.manager is None:
                raise CiteqaError("the MCP endpoint is not running")
        except CiteqaError as exc:
            await error_response(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})[_IDENTITY] = identity
        await self.manager.handle_request(scope, receive, send)


def mount_mcp(app: FastAPI) -> MCPEndpoint:
    """Route `/mcp` to a new `MCPEndpoint`; the caller's lifespan must enter its `running()`."""
    endpoint = MCPEndpoint(app)
    # A Route whose endpoint is an ASGI app (not a function) hands it the raw request.
    app.router.routes.append(Route(PATH, endpoint, methods=["GET", "POST", "DELETE"], include_in_schema=False))
    return endpoint
