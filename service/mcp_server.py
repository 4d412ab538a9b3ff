"""citeqa as an MCP server (the official `mcp` SDK's FastMCP): two tools, `ask` (a cited answer)
and `search` (the passages a question would be answered from, without an LLM call).

The same server runs over stdio (`citeqa mcp`, for Claude Desktop and IDEs; see `run_stdio`) and
over streamable HTTP at `/mcp` of the HTTP API (service/api/mcp_mount.py). Each transport supplies
how to get the answerer (loaded here, or from the app's state) and how to admit a call (the app's
rate limit and LLM queue); the tools themselves do not know which one they run under.

Every failure becomes an MCP tool error (`isError`) with a message a user can act on; nothing the
tools do may end the session or the process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, Field, ValidationError

from service.answer.loading import Loader
from service.answer.pipeline import Answerer
from service.answer.question import Question
from service.errors import CiteqaError
from service.llm.queue import LLMGate
from service.schemas import AskRequest, Citation
from service.settings import Settings

log = logging.getLogger(__name__)

MAX_TOP_K = 20  # as AskRequest.top_k

GetAnswerer = Callable[[], Awaitable[Answerer]]
Admit = Callable[["Context[Any, Any, Any]"], Awaitable[None]]

INSTRUCTIONS = (
    "Answers questions from the documents indexed by citeqa. `ask` returns an answer whose claims "
    "carry [n] markers, each resolved to a source file and line range in `citations`; `refused` is "
    "true when the documents do not answer the question. `search` returns the matching passages "
    "without writing an answer."
)


class AskResult(BaseModel):
    """What the `ask` tool returns: the /ask answer without its timings."""

    answer: str = Field(description="The answer, with [n] markers that refer to citations[].id.")
    refused: bool = Field(description="True when the documents do not answer the question.")
    citations: list[Citation]
    model: str = Field(description="The LLM that wrote the answer.")
    rewritten_question: str | None = None


class SearchHit(BaseModel):
    """One passage as retrieval and context selection found it (no LLM involved)."""

    source: str = Field(description="Source file, relative to the corpus folder's parent.")
    start_line: int
    end_line: int
    heading: str = Field("", description="The section's heading path in the source, 'A › B'.")
    anchor: str = Field("", description="The nearest element id in an HTML source.")
    text: str
    score: float = Field(description="Relevance of the passage (best sentence cosine, -1..1).")


class SearchResult(BaseModel):
    query: str
    passages: list[SearchHit]


def _lines(source: str, start: int, end: int) -> str:
    return f"{source}:{start}" + (f"-{end}" if end != start else "")


def ask_text(result: AskResult) -> str:
    """The answer as a person reads it: the text, then one line per citation."""
    if result.refused:
        return result.answer
    refs = [
        f"[{c.id}] {_lines(c.source, c.start_line, c.end_line)}" + (f" ({c.heading})" if c.heading else "")
        for c in result.citations
    ]
    return "\n".join([result.answer, "", *refs]) if refs else result.answer


def search_text(result: SearchResult) -> str:
    if not result.passages:
        return f"No passage in the documents matches {result.query!r}."
    return "\n\n".join(
        f"{_lines(p.source, p.start_line, p.end_line)}" + (f" ({p.heading})" if p.heading else "") + f"\n{p.text}"
        for p in result.passages
    )


def _tool_error(exc: Exception) -> ToolError:
    """The message a client is shown: citeqa's own errors by code, bad input by field; anything
    else only by reference to the log (it may carry provider internals)."""
    if isinstance(exc, ToolError):
        return exc
    if isinstance(exc, CiteqaError):
        retry = f" (retry after {exc.retry_after} s)" if exc.retry_after is not None else ""
        return ToolError(f"{exc.code}: {exc.message}{retry}")
    if isinstance(exc, ValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())
        return ToolError(f"invalid_request: {problems}")
    log.exception("MCP tool failed")
    return ToolError("internal_error: internal error; see the server log")


def build_server(get_answerer: GetAnswerer, admit: Admit | None = None, *, http: bool = False) -> FastMCP:
    """The FastMCP server with the `ask` and `search` tools. `get_answerer` returns the answerer
    (or raises `NotReady` & co.); `admit` runs before each call (auth is the transport's job; this
    is the rate limit and the LLM queue). `http` builds it for mounting: stateless, so any replica
    can answer any request, and without the SDK's localhost-only Host check, since the service
    listens wherever `CITEQA_HOST` says and its API keys guard the endpoint."""
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False) if http else None
    server = FastMCP(
        "citeqa",
        instructions=INSTRUCTIONS,
        stateless_http=http,
        json_response=http,
        transport_security=security,
        log_level="WARNING",
    )

    @server.tool(
        description="Answer a question from the documents, citing source files and line ranges. "
        "refused=true means the documents do not answer it."
    )
    async def ask(question: str, ctx: Context[Any, Any, Any]) -> Annotated[CallToolResult, AskResult]:
        try:
            request = AskRequest(question=question)
            if admit is not None:
                await admit(ctx)
            answerer = await get_answerer()
            response = (await answerer.ask(request)).response
        except Exception as exc:
            raise _tool_error(exc) from exc
        result = AskResult(
            answer=response.answer,
            refused=response.refused,
            citations=response.citations,
            model=response.model,
            rewritten_question=response.rewritten_question,
        )
        return CallToolResult(
            content=[TextContent(type="text", text=ask_text(result))],
            structuredContent=result.model_dump(mode="json"),
        )

    @server.tool(
        description="Find the passages of the documents that match a query (file, lines, heading, "
        "text, score), at most top_k of them, without writing an answer."
    )
    async def search(
        query: str, ctx: Context[Any, Any, Any], top_k: int = 5
    ) -> Annotated[CallToolResult, SearchResult]:
        try:
            if not 1 <= top_k <= MAX_TOP_K:
                raise ToolError(f"invalid_request: top_k must be between 1 and {MAX_TOP_K}")
            text = AskRequest(question=query).question  # the same length and blank checks as /ask
            if admit is not None:
                await admit(ctx)
            answerer = await get_answerer()
            passages = await asyncio.to_thread(answerer.passages_for, Question.read(text), top_k)
        except Exception as exc:
            raise _tool_error(exc) from exc
        result = SearchResult(
            query=text,
            passages=[
                SearchHit(
                    source=p.source,
                    start_line=p.start_line,
                    end_line=p.end_line,
                    heading=p.heading,
                    anchor=p.anchor,
                    text=p.text,
                    score=round(float(p.score), 4),
                )
                for p in passages[:top_k]  # top_k chunks can yield more passages than asked for
            ],
        )
        return CallToolResult(
            content=[TextContent(type="text", text=search_text(result))],
            structuredContent=result.model_dump(mode="json"),
        )

    return server


class LoadOnce:
    """The answerer for `citeqa mcp`, loaded in a thread once and shared by every call. Loading
    starts at once so the first question does not wait for the model, but the MCP handshake never
    waits for it; a failed load is reported by every tool call, not by a dead process."""

    def __init__(self, settings: Settings, loader: Loader) -> None:
        self.settings = settings
        self.loader = loader
        self.gate = LLMGate(settings.llm_max_concurrency, settings.llm_queue_size)
        self._task: asyncio.Task[Answerer] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(asyncio.to_thread(self.loader, self.settings, self.gate))

    async def __call__(self) -> Answerer:
        self.start()
        assert self._task is not None
        try:
            answerer = await asyncio.shield(self._task)
        except Exception as exc:
            log.error("loading the answerer failed: %s: %s", type(exc).__name__, exc)
            raise ToolError(f"not_ready: loading the index or model failed: {type(exc).__name__}: {exc}") from exc
        if not answerer.retriever.n_chunks:
            raise ToolError(
                f"not_ready: the index holds no documents: add files to {self.settings.corpus_dir} "
                "and run `citeqa index`"
            )
        return answerer

    async def admit(self, ctx: Context[Any, Any, Any]) -> None:
        self.gate.check()  # a full LLM queue is refused at once, as /ask refuses it


async def run_stdio(settings: Settings, loader: Loader) -> None:
    """Serve MCP on stdin/stdout until the client closes it. stdout carries only the protocol:
    the caller must log to stderr."""
    answerer = LoadOnce(settings, loader)
    answerer.start()
    await build_server(answerer, answerer.admit).run_stdio_async()
