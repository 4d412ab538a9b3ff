"""The MCP server through the official SDK's client: in memory (error mapping), over stdio against
a real `citeqa mcp` process, and over streamable HTTP against a real `citeqa serve` at /mcp with
its API keys. The processes use the hashing embedder and FakeOpenAI, so no model weights load."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.memory import create_connected_server_and_client_session
from mcp.types import CallToolResult, TextContent

from service.errors import LLMUnavailable
from service.mcp_server import LoadOnce, build_server
from service.settings import Settings
from service.testing import HASHING_CLI, FakeLLM, FakeOpenAI, fake_loader, free_port, running_service

ROOT = Path(__file__).resolve().parents[2]
KIM = "What breed of dog did Kim give Putin?"
KIM_SOURCE = "seeds/000_cfe940b0310ddd85.txt"
OUT_OF_CORPUS = "What is the melting point of tungsten in kelvin?"
KEY = "mcp-test-key-0123456789"


T = TypeVar("T")
Session = Callable[[], AbstractAsyncContextManager[ClientSession]]


def _env(index_dir: Path, llm: FakeOpenAI, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CITEQA_CORPUS_DIR": str(ROOT / "seeds"),
        "CITEQA_INDEX_DIR": str(index_dir),
        "CITEQA_MIN_RELEVANCE": "0.2",  # the hashing embedder's cosines run lower than a model's
        "CITEQA_LLM_MODEL": "openai/fake",
        "CITEQA_LLM_API_BASE": f"http://127.0.0.1:{llm.port}/v1",
        "CITEQA_LLM_API_KEY": "x",
        "CITEQA_CONFIRM_ANSWERS": "false",
        "CITEQA_INDEX_RELOAD_INTERVAL": "0",
        "CITEQA_LOG_LEVEL": "WARNING",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        **extra,
    }


@pytest.fixture
def llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def run(session: Session, calls: Callable[[ClientSession], Awaitable[T]], timeout: float = 90) -> T:
    async def main() -> T:
        async with session() as s:
            await s.initialize()
            return await calls(s)

    return asyncio.run(asyncio.wait_for(main(), timeout))


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def the_calls(s: ClientSession) -> dict[str, Any]:
    tools = {t.name: t for t in (await s.list_tools()).tools}
    return {
        "tools": tools,
        "kim": await s.call_tool("ask", {"question": KIM}),
        "out": await s.call_tool("ask", {"question": OUT_OF_CORPUS}),
        "search": await s.call_tool("search", {"query": "Kim Putin dog", "top_k": 3}),
        "blank": await s.call_tool("ask", {"question": "   "}),
        "bad_k": await s.call_tool("search", {"query": "dog", "top_k": 99}),
    }


def check_the_calls(got: dict[str, Any]) -> None:
    tools = got["tools"]
    assert set(tools) == {"ask", "search"}
    assert tools["ask"].inputSchema["required"] == ["question"]
    assert {"answer", "refused", "citations"} <= set(tools["ask"].outputSchema["properties"])
    assert set(tools["search"].inputSchema["properties"]) == {"query", "top_k"}
    assert tools["search"].inputSchema["properties"]["top_k"]["default"] == 5
    assert "passages" in tools["search"].outputSchema["properties"]

    kim = got["kim"]
    assert not kim.isError, text_of(kim)
    answer = kim.structuredContent
    assert answer["refused"] is False
    assert "[1]" in answer["answer"]
    first = answer["citations"][0]
    assert first["id"] == 1 and first["source"] == KIM_SOURCE
    assert 1 <= first["start_line"] <= first["end_line"]
    assert {"heading", "anchor", "text"} <= set(first)
    assert f"[1] {KIM_SOURCE}:{first['start_line']}" in text_of(kim)  # readable text beside the structure

    out = got["out"]
    assert not out.isError, text_of(out)
    assert out.structuredContent["refused"] is True
    assert out.structuredContent["citations"] == []

    search = got["search"]
    assert not search.isError, text_of(search)
    passages = search.structuredContent["passages"]
    assert 1 <= len(passages) <= 3
    assert passages[0]["source"] == KIM_SOURCE
    assert all(p["start_line"] <= p["end_line"] and p["text"] for p in passages)
    assert KIM_SOURCE in text_of(search)

    assert got["blank"].isError and "invalid_request" in text_of(got["blank"])
    assert got["bad_k"].isError and "top_k" in text_of(got["bad_k"])


# --- in memory: the tools and their errors, with FakeLLM ---


def memory_session(settings: Settings, llm: FakeLLM) -> Session:
    answerer = LoadOnce(settings, fake_loader(llm))
    server = build_server(answerer, answerer.admit)
    return lambda: create_connected_server_and_client_session(server._mcp_server)


def test_tools_answer_search_and_refuse_in_memory(settings: Settings) -> None:
    check_the_calls(run(memory_session(settings, FakeLLM()), the_calls))


def test_llm_down_is_a_tool_error_and_search_still_works(settings: Settings) -> None:
    llm = FakeLLM(fail=LLMUnavailable("the LLM could not be reached; check CITEQA_LLM_*"))

    async def calls(s: ClientSession) -> tuple[CallToolResult, CallToolResult]:
        return await s.call_tool("ask", {"question": KIM}), await s.call_tool("search", {"query": KIM})

    ask, search = run(memory_session(settings, llm), calls)
    assert ask.isError and "llm_unavailable" in text_of(ask)
    assert not search.isError and search.structuredContent and search.structuredContent["passages"]


def test_a_missing_index_is_a_tool_error_not_a_dead_server(tmp_path: Path) -> None:
    from service.answer.loading import load_answerer

    settings = Settings(corpus_dir=tmp_path, index_dir=tmp_path / "none", _env_file=None)  # type: ignore[call-arg]
    answerer = LoadOnce(settings, load_answerer)
    server = build_server(answerer, answerer.admit)

    async def calls(s: ClientSession) -> list[CallToolResult]:
        return [await s.call_tool("ask", {"question": KIM}), await s.call_tool("search", {"query": KIM})]

    for result in run(lambda: create_connected_server_and_client_session(server._mcp_server), calls):
        assert result.isError and "not_ready" in text_of(result)


# --- stdio: a real `citeqa mcp` process ---


def test_stdio_citeqa_mcp(index_dir: Path, llm: FakeOpenAI) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-c", HASHING_CLI, "mcp"], env=_env(index_dir, llm), cwd=ROOT
    )

    check_the_calls(run(lambda: _stdio_session(params), the_calls))


@asynccontextmanager
async def _stdio_session(params: StdioServerParameters) -> AsyncIterator[ClientSession]:
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        yield session


# --- streamable HTTP: /mcp of a real `citeqa serve`, behind its API keys ---


@asynccontextmanager
async def _http_session(url: str, key: str | None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    async with streamablehttp_client(url, headers=headers) as (read, write, _), ClientSession(read, write) as session:
        yield session


def test_streamable_http_at_mcp_with_the_api_keys(index_dir: Path, llm: FakeOpenAI) -> None:
    env = _env(index_dir, llm, CITEQA_API_KEYS=KEY)
    command = [sys.executable, "-c", HASHING_CLI, "serve"]
    with running_service(ROOT, env, free_port(), timeout=90, command=command) as url:
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"},
            },
        }
        accept = {"Accept": "application/json, text/event-stream"}
        missing = httpx.post(url + "/mcp", json=initialize, headers=accept, timeout=10)
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "unauthorized"
        wrong = httpx.post(
            url + "/mcp", json=initialize, headers={**accept, "Authorization": "Bearer nope"}, timeout=10
        )
        assert wrong.status_code == 401

        check_the_calls(run(lambda: _http_session(url + "/mcp", KEY), the_calls))

        # The SDK client without the key fails to connect (its first request is the 401).
        with pytest.raises(BaseException):  # noqa: B017 - an ExceptionGroup or HTTPStatusError by SDK version
            run(lambda: _http_session(url + "/mcp", None), lambda s: s.list_tools(), timeout=20)


def test_tool_calls_over_http_count_against_the_rate_limit(index_dir: Path, llm: FakeOpenAI) -> None:
    env = _env(index_dir, llm, CITEQA_API_KEYS=KEY, CITEQA_RATE_LIMIT="2/minute")
    command = [sys.executable, "-c", HASHING_CLI, "serve"]
    with running_service(ROOT, env, free_port(), timeout=90, command=command) as url:

        async def calls(s: ClientSession) -> list[CallToolResult]:
            return [await s.call_tool("search", {"query": KIM}) for _ in range(3)]

        results = run(lambda: _http_session(url + "/mcp", KEY), calls)
    assert [r.isError for r in results] == [False, False, True]
    assert "rate_limited" in text_of(results[2])
