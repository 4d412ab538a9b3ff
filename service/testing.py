"""Test doubles shipped next to the real thing: a scripted LLM and a loader that wires the real
pipeline to the hashing embedder, so tests and the load test run without any model weights."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from index import store
from index.builder import build
from index.embedder import HashingEmbedder
from service.gate import LLMGate
from service.pipeline import Answerer
from service.prompts import Prompts
from service.retrieval import HybridRetriever
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
    sentence = re.split(r"(?<=[.!?])\s", text.strip())[0].rstrip(".!?")
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
    ) -> None:
        self.script = script or extractive_answer
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


def build_fake_index(settings: Settings) -> store.IndexData:
    embedder = HashingEmbedder()
    build(settings.corpus_dir, settings.index_dir, embedder, settings.chunk_tokens, settings.chunk_overlap)
    return store.load(settings.index_dir)


def fake_loader(llm: FakeLLM | None = None) -> Callable[[Settings, LLMGate], Answerer]:
    """A `create_app(loader=...)` that uses the real pipeline with the hashing embedder and `llm`."""

    def load(settings: Settings, gate: LLMGate) -> Answerer:
        data = (
            store.load(settings.index_dir)
            if (settings.index_dir / store.POINTER).exists()
            else build_fake_index(settings)
        )
        embedder = HashingEmbedder()
        return Answerer(
            settings, data, HybridRetriever(data, embedder), embedder, llm or FakeLLM(), Prompts.load(), gate
        )

    return load


def fake_settings(tmp: Path, **overrides: object) -> Settings:
    """Settings for tests: the seed corpus, an index in `tmp`, and a relevance floor suited to the
    hashing embedder (whose cosines run lower than a real model's)."""
    root = Path(__file__).resolve().parent.parent
    values: dict[str, object] = {
        "corpus_dir": root / "seeds",
        "index_dir": tmp / "index",
        "min_relevance": 0.2,
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]
