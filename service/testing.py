"""Test doubles shipped next to the real thing, so tests and the load test run without any model
weights: a scripted LLM (`FakeLLM`, called in-process), a fake OpenAI-compatible server on loopback
that can answer, hang, stall or send garbage (`FakeOpenAI`, for the real litellm client), and a
loader that wires the real pipeline to the hashing embedder."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from index import store
from index.builder import build
from index.embedder import HashingEmbedder
from index.sentences import split_sentences
from service.answer.pipeline import Answerer
from service.answer.prompts import Prompts
from service.answer.retrieval import HybridRetriever
from service.llm.queue import LLMGate
from service.settings import Settings

Messages = list[dict[str, str]]
_PASSAGE = re.compile(r"^\[(\d+)\] (.+)$", re.M)


def extractive_answer(messages: Messages) -> str:
    """Quote the first sentence of passage [1] and cite it: a well-behaved model in miniature."""
    user = messages[-1]["content"]
    passages = _PASSAGE.findall(user)
    if not passages:
        return "I cannot answer that from the provided sources."
    number, text = passages[0]
    text = text.strip()
    first = split_sentences(text)[0]
    sentence = text[first.start : first.end].rstrip(".!?")
    return f"{sentence} [{number}]."


def rewrite_answer(messages: Messages) -> str:
    user = messages[-1]["content"]
    last = re.search(r"Last question: (.+)", user)
    first_user = re.search(r"^user: (.+)$", user, re.M)
    question = last.group(1).strip() if last else ""
    return f"{question} ({first_user.group(1).strip()})" if first_user else question


class FakeLLM:
    """Streams a scripted reply word by word. `script` maps the messages to the reply (default:
    extractive answers, and a rewrite that folds in the first user turn); `fail` raises instead;
    `delay` is the pause between pieces, to test streaming and disconnects."""

    def __init__(
        self,
        script: Callable[[Messages], str] | None = None,
        delay: float = 0.0,
        fail: Exception | None = None,
        name: str = "fake/extractive",
        first_tokens: Callable[[Messages], list[tuple[str, float]]] | None = None,
    ) -> None:
        self.script = script or extractive_answer
        self.first_tokens = first_tokens  # None: like a provider that reports no log-probabilities
        self.delay = delay
        self.fail = fail
        self.name = name
        self.calls: list[Messages] = []
        self.max_tokens: list[int | None] = []  # per call, as asked
        self.pieces_sent = 0

    async def stream(self, messages: Messages, *, max_tokens: int | None = None) -> AsyncIterator[str]:
        self.calls.append(messages)
        self.max_tokens.append(max_tokens)
        if self.fail is not None:
            raise self.fail
        is_rewrite = "Standalone question" in messages[-1]["content"]
        text = rewrite_answer(messages) if is_rewrite else self.script(messages)
        for piece in re.findall(r"\S+\s*", text):
            if self.delay:
                await asyncio.sleep(self.delay)
            self.pieces_sent += 1
            yield piece

    async def first_token(self, messages: Messages, *, top_k: int = 10) -> list[tuple[str, float]] | None:
        if self.first_tokens is None:
            return None
        self.calls.append(messages)
        self.max_tokens.append(1)
        if self.fail is not None:
            raise self.fail
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.first_tokens(messages)[:top_k]


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The events of a server-sent event stream, as (event name, JSON data) pairs."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        event, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        events.append((event, json.loads("\n".join(data))))
    return events


# What a provider's error text can carry; it must reach the log, never a client.
SECRET_IN_UPSTREAM_ERROR = "invalid key sk-live-0123456789abcdef for org at llm.internal.corp:8443"


class FakeOpenAI:
    """POST /v1/chat/completions on a free loopback port. `mode` picks the behaviour:
    ok | slow (streams a word every `word_delay` s) | hang (no response at all) | stall (headers and
    one chunk, then nothing) | not_json | sse_garbage | wrong_shape | http500 | http401 | drop."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.word_delay = 0.0
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.active = 0  # calls being answered right now (a caller that hangs up ends its call)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # /v1/models, for completeness
                self._send(200, "application/json", json.dumps({"object": "list", "data": []}).encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(body)
                with fake.lock:
                    fake.active += 1
                try:
                    getattr(self, f"_{fake.mode}")(body)
                except (BrokenPipeError, ConnectionResetError):  # the caller hung up: the call ends
                    self.close_connection = True
                finally:
                    with fake.lock:
                        fake.active -= 1

            def _send(self, status: int, ctype: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _chunk(self, content: str | None, finish: str | None = None) -> bytes:
                delta = {"content": content} if content is not None else {}
                chunk = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "fake",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
                return f"data: {json.dumps(chunk)}\n\n".encode()

            def _start_stream(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()

            def _ok(self, body: dict[str, Any]) -> None:
                text = extractive_answer(body["messages"])
                if not body.get("stream"):
                    reply = {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "fake",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                    }
                    self._send(200, "application/json", json.dumps(reply).encode())
                    return
                self._start_stream()
                for word in text.split(" "):
                    if fake.word_delay and fake.release.wait(fake.word_delay):
                        break
                    self.wfile.write(self._chunk(word + " "))
                    self.wfile.flush()
                self.wfile.write(self._chunk(None, "stop") + b"data: [DONE]\n\n")
                self.close_connection = True

            def _slow(self, body: dict[str, Any]) -> None:
                self._ok(body)

            def _hang(self, body: dict[str, Any]) -> None:
                fake.release.wait(30)
                self.close_connection = True

            def _stall(self, body: dict[str, Any]) -> None:
                self._start_stream()
                self.wfile.write(self._chunk("Kim "))
                self.wfile.flush()
                fake.release.wait(30)
                self.close_connection = True

            def _not_json(self, body: dict[str, Any]) -> None:
                self._send(200, "application/json", b"<html>this is not json</html>")

            def _sse_garbage(self, body: dict[str, Any]) -> None:
                self._start_stream()
                self.wfile.write(b"data: this is not json {{{\n\n")
                self.close_connection = True

            def _wrong_shape(self, body: dict[str, Any]) -> None:
                self._start_stream()
                self.wfile.write(b'data: {"foo": 1, "choices": "nope"}\n\ndata: [DONE]\n\n')
                self.close_connection = True

            def _http500(self, body: dict[str, Any]) -> None:
                self._send(500, "text/html", b"<html><body>Internal Server Error</body></html>")

            def _http401(self, body: dict[str, Any]) -> None:
                self._send(
                    401, "application/json", json.dumps({"error": {"message": SECRET_IN_UPSTREAM_ERROR}}).encode()
                )

            def _drop(self, body: dict[str, Any]) -> None:
                self.close_connection = True  # close the socket without a response

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_service(
    cwd: Path, env: dict[str, str], port: int, timeout: float = 120.0, command: list[str] | None = None
) -> Iterator[str]:
    """`citeqa serve` in a subprocess on loopback (its settings in `env`, `CITEQA_PORT` = `port`),
    yielded as its base URL once /ready is 200; stopped on exit. For system tests and benches.
    `command` replaces `python -m service.cli serve` (e.g. the same CLI with a fake embedder)."""
    import httpx  # a dev dependency: only tests and benches start servers

    proc = subprocess.Popen(
        command or [sys.executable, "-m", "service.cli", "serve"],
        cwd=cwd,
        env={**env, "CITEQA_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"citeqa serve exited {proc.returncode}: {proc.stderr.read()[-2000:] if proc.stderr else ''}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"citeqa serve was not ready within {timeout:g} s")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/ready", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# `citeqa` exactly as the console script runs it, with the hashing embedder in place of the model
# (for speed): the tests that start `citeqa serve`, `citeqa index` or `citeqa mcp` as subprocesses
# run `python -c HASHING_CLI <args>`.
HASHING_CLI = """
import sys
import index.embedder as embedder
def fake(name, **kw):
    e = embedder.HashingEmbedder()
    e.query_backend = "hashing"
    return e
embedder.SentenceTransformerEmbedder = fake
from service.cli import main
sys.exit(main(sys.argv[1:]))
"""


def build_fake_index(settings: Settings) -> store.IndexData:
    embedder = HashingEmbedder()
    build(settings.corpus_dir, settings.index_dir, embedder, settings.chunk_tokens, settings.chunk_overlap)
    return store.load(settings.index_dir)


def fake_loader(llm: FakeLLM | None = None) -> Callable[[Settings, LLMGate], Answerer]:
    """A `create_app(loader=...)` that uses the real pipeline with the hashing embedder and `llm`."""

    def load(settings: Settings, gate: LLMGate) -> Answerer:
        embedder = HashingEmbedder()
        if settings.vector_store == "milvus":  # the store the settings name, built with the fake embedder
            from index.milvus_build import build_milvus
            from service.answer.loading import open_retriever

            build_milvus(
                settings.corpus_dir, settings.milvus_uri, embedder, settings.chunk_tokens, settings.chunk_overlap
            )
            return Answerer(
                settings, open_retriever(settings, embedder), embedder, llm or FakeLLM(), Prompts.load(), gate
            )
        if settings.vector_store == "pgvector":
            from index.pgvector_build import build_pgvector
            from index.pgvector_store import PgvectorChunkStore
            from service.answer.loading import open_retriever

            writer = PgvectorChunkStore(
                settings.pgvector_dsn,
                table=settings.pgvector_table,
                dim=embedder.dim,
                vector_index=settings.pgvector_index,
            )
            try:
                build_pgvector(
                    settings.corpus_dir,
                    settings.pgvector_dsn,
                    embedder,
                    settings.chunk_tokens,
                    settings.chunk_overlap,
                    store=writer,
                )
            finally:
                writer.close()
            return Answerer(
                settings, open_retriever(settings, embedder), embedder, llm or FakeLLM(), Prompts.load(), gate
            )
        data = (
            store.load(settings.index_dir)
            if (settings.index_dir / store.POINTER).exists()
            else build_fake_index(settings)
        )
        return Answerer(settings, HybridRetriever(data, embedder), embedder, llm or FakeLLM(), Prompts.load(), gate)

    return load


def fake_settings(tmp: Path, **overrides: object) -> Settings:
    """Settings for tests: the seed corpus, an index in `tmp`, and a relevance floor suited to the
    hashing embedder (whose cosines run lower than a real model's)."""
    root = Path(__file__).resolve().parent.parent
    values: dict[str, object] = {
        "corpus_dir": root / "seeds",
        "index_dir": tmp / "index",
        "min_relevance": 0.2,
        "feedback_db": str(tmp / "feedback.db"),
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]
