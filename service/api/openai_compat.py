"""An OpenAI-compatible face on /ask, so chat UIs that speak the OpenAI API (Open WebUI,
LibreChat, the openai SDKs) can use citeqa as a "model": `GET /v1/models` and
`POST /v1/chat/completions`, streaming or not.

The citations must survive clients that know nothing about them, so they travel twice: as a
structured `citations` field on the assistant message (the /ask `Citation`s) and as a short
"Sources" list appended to the content, which every chat UI shows.

Keys, rate limits and the LLM queue are those of /ask (the same dependencies); errors use
OpenAI's body shape (service/api/openai_errors.py).

Streaming sends the *checked* answer, not the model's raw tokens: the citation check renumbers
markers, drops unsupported sentences and can turn an answer into a refusal, and an OpenAI client
cannot take back text it has already shown (the widget's /ask/stream can: its `done` event
replaces the tokens). So the deltas come once the check has passed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from service.answer.pipeline import Answerer, Done
from service.api.auth import ClientDep
from service.api.dependencies import AnswererDep, StateDep
from service.api.openai_errors import openai_error_body
from service.api.openai_models import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    Model,
    ModelList,
    OpenAIError,
    Usage,
    completion_id,
    now,
    sources_text,
    to_ask_request,
)
from service.api.routes import _record as record_answer
from service.api.routes import answer_while_connected
from service.api.state import AppState
from service.errors import CiteqaError
from service.schemas import AskRequest

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])
log = logging.getLogger(__name__)

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": OpenAIError} for code in (400, 401, 413, 429, 502, 503, 504)
}


def _usage(done: Done) -> Usage:
    u = done.usage
    return Usage(
        prompt_tokens=u.prompt_tokens,
        completion_tokens=u.completion_tokens,
        total_tokens=u.prompt_tokens + u.completion_tokens,
    )


def completion(done: Done) -> ChatCompletion:
    r = done.response
    message = AssistantMessage(content=r.answer + sources_text(r.citations), citations=r.citations)
    return ChatCompletion(id=completion_id(), created=now(), choices=[Choice(message=message)], usage=_usage(done))


@router.get("/models", response_model=ModelList, responses=ERRORS)
async def models(_client: ClientDep) -> ModelList:
    """One model: the service itself. Behind the key, like OpenAI's; it is not charged twice
    against the rate limit in practice, since UIs list models once per session."""
    return ModelList(data=[Model()])


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "With `stream: true`: `chat.completion.chunk` events, then `data: [DONE]`.",
        },
        **ERRORS,
    },
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, answerer: AnswererDep, state: StateDep, _client: ClientDep
) -> Response:
    ask = to_ask_request(body)
    state.gate.check()  # a full queue is a 503 with Retry-After, before any work or a stream's 200
    if body.stream:
        return StreamingResponse(
            _chunks(answerer, ask, state),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    done = await answer_while_connected(answerer, ask, request)  # as /ask: a client gone cancels it
    if done is None:
        return Response(status_code=499)
    record_answer(state, done)
    return JSONResponse(completion(done).model_dump(mode="json"))


def _data(payload: ChatCompletionChunk | OpenAIError) -> bytes:
    body = payload.model_dump(mode="json")
    for choice in body.get("choices", ()):  # a delta carries only what it adds, as OpenAI's do
        choice["delta"] = {k: v for k, v in choice["delta"].items() if v is not None}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()


async def _chunks(answerer: Answerer, ask: AskRequest, state: AppState) -> AsyncIterator[bytes]:
    """The role at once, then the checked answer, then its Sources with the structured
    citations, then `finish_reason: stop` with the usage, then [DONE]. A failure after the 200 is
    an error chunk (which the openai SDK raises as APIError), then [DONE]."""
    cid, created = completion_id(), now()

    def chunk(delta: Delta, finish: bool = False, usage: Usage | None = None) -> bytes:
        choice = ChunkChoice(delta=delta, finish_reason="stop" if finish else None)
        return _data(ChatCompletionChunk(id=cid, created=created, choices=[choice], usage=usage))

    yield chunk(Delta(role="assistant", content=""))
    try:
        done: Done | None = None
        async for event in answerer.stream(ask):
            if isinstance(event, Done):
                done = event
        if done is None:  # pragma: no cover - the pipeline always ends with Done
            raise RuntimeError("answer stream ended without a result")
        record_answer(state, done)
        r = done.response
        yield chunk(Delta(content=r.answer))
        if r.citations:
            yield chunk(Delta(content=sources_text(r.citations), citations=r.citations))
        yield chunk(Delta(), finish=True, usage=_usage(done))
    except CiteqaError as exc:
        yield _data(openai_error_body(exc.status_code, exc.code, exc.message))
    except Exception:  # the status line is already sent: report in-band, never cut the stream
        log.exception("chat completion stream failed")
        yield _data(openai_error_body(500, "internal_error", "internal error; see the server log"))
    yield b"data: [DONE]\n\n"
