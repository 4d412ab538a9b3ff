"""Typed request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_QUESTION_CHARS = 2000


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(min_length=1, max_length=8000)


class AskRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"question": "What breed of dog did Kim give Putin?"}]},
    )

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    top_k: int | None = Field(default=None, ge=1, le=20)
    history: list[Turn] = Field(default_factory=list, max_length=20)

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question must not be blank")
        if "\x00" in value:
            raise ValueError("question must not contain NUL characters")
        return value.strip()


class Citation(BaseModel):
    id: int = Field(description="The n of the [n] marker in the answer.")
    source: str = Field(description="Source file, relative to the corpus folder's parent.")
    start_line: int
    end_line: int
    text: str = Field(description="The quoted passage.")
    score: float = Field(description="Retrieval relevance of the passage (cosine, -1..1).")
    heading: str = Field("", description="The section's heading path in the source, 'A › B' (Markdown, HTML).")
    anchor: str = Field("", description="The nearest element id in an HTML source, for a link: source#anchor.")
    page: int | None = Field(
        None,
        description="The 1-based page of a PDF source (None for other files); start_line and end_line "
        "then count lines of that page's extracted text.",
    )


class Timings(BaseModel):
    rewrite: float = 0.0
    retrieve: float
    generate: float
    confirm: float = 0.0
    total: float


# Stages that run only for some questions (a follow-up's rewrite, the second look at an answer):
# 0 means the stage did not run, not that it took no time.
OPTIONAL_STAGES = frozenset({"rewrite", "confirm"})


def ran(stage: str, timings_ms: dict[str, float]) -> bool:
    """True when `timings_ms` holds a latency for `stage`."""
    return stage in timings_ms and (stage not in OPTIONAL_STAGES or timings_ms[stage] > 0)


class AskResponse(BaseModel):
    answer: str
    refused: bool
    citations: list[Citation]
    model: str
    timings_ms: Timings
    rewritten_question: str | None = Field(
        default=None, description="The standalone question used for retrieval, when history was given."
    )


class ErrorDetail(BaseModel):
    loc: list[str | int] = Field(default_factory=list)
    msg: str
    type: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)
    request_id: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: Literal["ok", "loading", "failed"]
    detail: str | None = None
    index_version: str | None = Field(
        default=None,
        description=(
            "The index version being served, once loaded: the `v-...` folder for FAISS; for Milvus and "
            "pgvector the collection or table and a digest of its stored files (`pgvector:citeqa_chunks@...`)."
        ),
    )
    reload_error: str | None = Field(
        default=None,
        description=(
            "Why the newest index version (FAISS) or the changed store's statistics (Milvus, pgvector) could "
            "not be loaded; what was loaded before still serves."
        ),
    )


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenResponse(BaseModel):
    token: str
    expires_in: int


MAX_COMMENT_CHARS = 2000


class FeedbackRequest(BaseModel):
    """A rating of one answer, sent back with what was answered so that a thumbs-down can become
    an eval case later without the service having kept the answer itself."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "question": "What breed of dog did Kim give Putin?",
                    "answer": "A pair of Pungsan dogs [1].",
                    "citations": [],
                    "model": "citeqa/qwen2.5-coder-1.5b",
                    "rating": "down",
                    "comment": "It missed that they were hunting dogs.",
                }
            ]
        },
    )

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    answer: str = Field(max_length=20_000, description="The answer as /ask returned it.")
    citations: list[Citation] = Field(default_factory=list, max_length=50)
    model: str = Field(max_length=200)
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)
    request_id: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    refused: bool = Field(default=False, description="Whether /ask refused; a wrong refusal is worth an eval too.")

    @field_validator("question")
    @classmethod
    def _question_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question must not be blank")
        return value.strip()

    @field_validator("question", "answer", "model", "comment")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:  # PostgreSQL text cannot hold NUL
            raise ValueError("must not contain NUL characters")
        return value


class FeedbackResponse(BaseModel):
    id: int = Field(description="The stored feedback's id.")
