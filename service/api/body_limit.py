"""The request body size limit (`CITEQA_MAX_BODY_BYTES`), as pure ASGI.

A declared `Content-Length` over the limit is refused before a byte is read; a chunked body with
no length is read up to the limit (it is small by definition), then replayed to the app, so both
are held to the same bound and the app never sees a body over it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.error_responses import error_response
from service.errors import PayloadTooLarge


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        try:
            length = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            length = 0
        too_large = length > self.max_body_bytes
        replay: list[Message] = []
        if not too_large and scope.get("method") in {"POST", "PUT", "PATCH"}:
            received = 0
            while True:
                message = await receive()
                replay.append(message)
                if message["type"] != "http.request":
                    break
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    too_large = True
                    break
                if not message.get("more_body", False):
                    break
        if too_large:
            response = error_response(
                PayloadTooLarge(f"request body over {self.max_body_bytes} bytes"),
                openai=str(scope.get("path", "")).startswith("/v1/"),  # the OpenAI-compatible routes' shape
            )
            await response(scope, receive, send)
            return

        async def replaying_receive() -> Message:
            if replay:
                return replay.pop(0)
            return await receive()

        await self.app(scope, replaying_receive, send)
