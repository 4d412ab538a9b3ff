"""HTTP routes for asking questions and for liveness/readiness."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.answer.pipeline import Answerer, Done, Token
from service.api.auth import ClientDep
from service.api.dependencies import AnswererDep, StateDep
from service.api.error_responses import error_body
from service.api.state import AppState
from service.errors import CiteqaError
from service.schemas import AskRequest, AskResponse, ErrorResponse, Health

router = APIRouter()
DISCONNECT_POLL_SECONDS = 0.25  # how often a waiting /ask looks whether its client is still there
log = logging.getLogger(__name__)

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 413, 422, 429, 502, 503, 504)
}


async def answer_while_connected(answerer: Answerer, body: AskRequest, request: Request) -> Done | None:
    """The answer, or None when the client hung up first. A client that hangs up must not keep
    the model busy: the connection is watched while the answer is written, and the answer (its
    LLM call, its queue slot) is cancelled when the client is gone."""
    task = asyncio.create_task(answerer.ask(body))
    while not task.done():
        await asyncio.wait({task}, timeout=DISCONNECT_POLL_SECONDS)
        if not task.done() and await request.is_disconnected():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            log.info("client left before the answer; its LLM call was cancelled")
            return None
    return task.result()


def _record(state: AppState, done: Done) -> None:
    r = done.response
    state.metrics.record_answer(
        r.timings_ms.model_dump(),
        r.refused,
        done.usage.prompt_tokens,
        done.usage.completion_tokens,
        done.second_look.outcome if done.second_look else None,
    )


@router.post("/ask", response_model=AskResponse, responses=ERRORS)
async def ask(
    body: AskRequest, request: Request, answerer: AnswererDep, state: StateDep, _client: ClientDep
) -> Response:
    state.gate.check()  # a full queue is refused before any work is done
    done = await answer_while_connected(answerer, body, request)
    if done is None:
        return Response(status_code=499)  # nobody reads it; nginx's code for the access log
    _record(state, done)
    return JSONResponse(done.response.model_dump(mode="json"))


def _sse(event: str, data: object) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


@router.post(
    "/ask/stream",
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`token` events, then one `done` (the /ask body) or `error` event.",
        },
        **ERRORS,
    },
)
async def ask_stream(body: AskRequest, answerer: AnswererDep, state: StateDep, _client: ClientDep) -> Response:
    state.gate.check()  # a full queue is a 503 with Retry-After, before the stream's 200 is sent

    async def events(answerer: Answerer) -> AsyncIterator[bytes]:
        try:
            async for event in answerer.stream(body):
                if isinstance(event, Token):
                    yield _sse("token", {"text": event.text})
                elif isinstance(event, Done):
                    _record(state, event)
                    yield _sse("done", event.response.model_dump())
        except CiteqaError as exc:
            yield _sse("error", error_body(exc.code, exc.message).model_dump())
        except Exception:  # the status line is already sent: report in-band, never cut the stream
            log.exception("answer stream failed")
            yield _sse("error", error_body("internal_error", "internal error; see the server log").model_dump())

    return StreamingResponse(
        events(answerer),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _health(state: AppState, status: str) -> Health:
    answerer = state.answerer
    return Health(
        status=status,
        detail=state.detail,
        index_version=(answerer.retriever.version or None) if answerer is not None else None,
        reload_error=state.reload_error,
    )


@router.api_route("/health", methods=["GET", "HEAD"], response_model=Health)
async def health(state: StateDep) -> Health:
    return _health(state, "ok" if state.status != "failed" else "failed")


@router.api_route("/ready", methods=["GET", "HEAD"], response_model=Health, responses={503: {"model": Health}})
async def ready(state: StateDep) -> Response:
    body = _health(state, state.status)
    return JSONResponse(body.model_dump(), status_code=200 if state.answerer is not None else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(state: StateDep) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
