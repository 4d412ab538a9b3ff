"""The typed bodies of the OpenAI-compatible routes (service/api/openai_compat.py), and the two
translations they need: a chat request into an `AskRequest`, and cited answers into chat text.

Requests are lenient on purpose: chat UIs (Open WebUI, LibreChat) send fields citeqa has no use
for (temperature, max_tokens, user, tools...), and refusing them would break those clients. So
unknown fields are accepted and ignored; only what citeqa reads is validated.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.errors import BadRequest
from service.schemas import MAX_QUESTION_CHARS, AskRequest, Citation, Turn

MODEL_ID = "citeqa"
SOURCES_HEADER = "Sources:"
MAX_HISTORY_TURNS = 20  # AskRequest.history's bound
MAX_TURN_CHARS = 8000  # Turn.content's bound
# The Sources block we append, as it comes back in the history a chat UI resends.
_SOURCES_TAIL = re.compile(r"\n+" + re.escape(SOURCES_HEADER) + r"\n(?:\[\d+\][^\n]*(?:\n|$))+\s*\Z")


class ContentPart(BaseModel):
    """One part of a list-form message content. Only text parts are read; images and files are
    ignored, since the answer comes from the indexed documents only."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(p.text for p in self.content if p.type == "text" and p.text)
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [{"model": MODEL_ID, "messages": [{"role": "user", "content": "Who gave Putin dogs?"}]}]
        },
    )

    model: str = Field(MODEL_ID, description="Any value; citeqa serves one model.")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


def strip_sources(text: str) -> str:
    """An earlier answer without the Sources block we appended, so a follow-up's rewrite reads the
    answer, not a list of file names."""
    return _SOURCES_TAIL.sub("", text).rstrip()


def to_ask_request(body: ChatCompletionRequest) -> AskRequest:
    """The last user message is the question; earlier user and assistant messages are the history.
    System messages are dropped: citeqa's own prompt governs how it answers."""
    last = body.messages[-1]
    if last.role != "user" or not last.text().strip():
        raise BadRequest("the last message must be a user message with text: it is the question")
    question = last.text().strip()
    if len(question) > MAX_QUESTION_CHARS:
        raise BadRequest(f"the question (the last user message) is over {MAX_QUESTION_CHARS} characters")
    history: list[Turn] = []
    for message in body.messages[:-1]:
        text = message.text().strip()
        if message.role == "assistant":
            text = strip_sources(text)
        if message.role in ("user", "assistant") and text:
            history.append(Turn(role=message.role, content=text[:MAX_TURN_CHARS]))
    try:
        return AskRequest(question=question, history=history[-MAX_HISTORY_TURNS:])
    except ValidationError as exc:
        raise BadRequest("; ".join(str(e["msg"]) for e in exc.errors())) from exc


def sources_text(citations: list[Citation]) -> str:
    """The citations as text after the answer, for chat UIs that show only `content`:
    `[1] seeds/a.md, lines 3–5 (Heading › Path)`. Empty for a refusal."""
    if not citations:
        return ""
    lines = []
    for c in citations:
        where = f"line {c.start_line}" if c.start_line == c.end_line else f"lines {c.start_line}–{c.end_line}"
        source = f"{c.source}#{c.anchor}" if c.anchor else c.source
        lines.append(f"[{c.id}] {source}, {where}" + (f" ({c.heading})" if c.heading else ""))
    return f"\n\n{SOURCES_HEADER}\n" + "\n".join(lines)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    citations: list[Citation] = Field(
        default_factory=list, description="citeqa's citations; each `[n]` in `content` is the `id` of one."
    )


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str = MODEL_ID
    choices: list[Choice]
    usage: Usage


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    citations: list[Citation] | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: Literal["stop"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str = MODEL_ID
    choices: list[ChunkChoice]
    usage: Usage | None = None


class Model(BaseModel):
    id: str = MODEL_ID
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "citeqa"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class OpenAIError(BaseModel):
    error: OpenAIErrorBody


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())
