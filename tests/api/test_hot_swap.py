"""A running app picks up a new index version without a restart (service/api/reload.py), with the
fakes: the hashing embedder and the extractive FakeLLM, so an answer quotes the passage retrieved.

The corpus is a copy of the seeds plus `zoo.md`, whose bear is renamed between builds, so an
answer says which version it came from; v2 also adds `tram.md`, a document v1 did not have.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from index import store
from index.builder import build
from index.embedder import HashingEmbedder
from service.api.app import create_app
from service.api.reload import IndexWatcher
from service.api.state import AppState
from service.settings import Settings
from service.testing import FakeLLM, fake_loader, fake_settings
from tests.conftest import wait_ready

ROOT = Path(__file__).resolve().parents[2]
BEAR = "What is the bear at the Pyongyang zoo called?"
TRAM = "When did the Pyongyang tram line open?"


def zoo(bear: str) -> str:
    return f"# Zoo\n\nThe Pyongyang zoo has a brown bear called {bear}. The zoo also keeps penguins.\n"


TRAM_DOC = "# Tram\n\nThe Pyongyang tram line opened in 1991 with cars from Prague. It runs along the river.\n"


@pytest.fixture
def corpus_settings(tmp_path: Path) -> Settings:
    corpus = tmp_path / "seeds"
    shutil.copytree(ROOT / "seeds", corpus)
    (corpus / "zoo.md").write_text(zoo("Misha"))
    settings = fake_settings(tmp_path, corpus_dir=corpus, index_reload_interval=0.05)
    rebuild(settings)
    return settings


def rebuild(settings: Settings, embedder: HashingEmbedder | None = None) -> str:
    """`citeqa index` in-process, with the hashing embedder; returns the version CURRENT names."""
    build(settings.corpus_dir, settings.index_dir, embedder or HashingEmbedder(), 160, 32)
    name = store.current_name(settings.index_dir)
    assert name is not None
    return name


def state_of(c: TestClient) -> AppState:
    return c.app.state.citeqa  # type: ignore[attr-defined]


def reloads(c: TestClient, outcome: str) -> float:
    match = re.search(rf'^citeqa_index_reloads_total{{outcome="{outcome}"}} (\S+)$', c.get("/metrics").text, re.M)
    assert match, "no citeqa_index_reloads_total series in /metrics"
    return float(match.group(1))


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def ask(c: TestClient, question: str) -> dict[str, Any]:
    r = c.post("/ask", json={"question": question})
    assert r.status_code == 200, r.text
    return r.json()


def sources(body: dict[str, Any]) -> set[str]:
    return {c["source"] for c in body["citations"]}


def point_current_at(index_dir: Path, name: str) -> None:
    """What a build's switch does: write CURRENT atomically (without building anything)."""
    tmp = index_dir / ".CURRENT.tmp-test"
    tmp.write_text(name)
    tmp.replace(index_dir / store.POINTER)


def test_a_new_version_is_served_without_a_restart(corpus_settings: Settings) -> None:
    llm = FakeLLM()
    with TestClient(create_app(corpus_settings, loader=fake_loader(llm))) as c:
        wait_ready(c)
        v1 = store.current_name(corpus_settings.index_dir)
        assert c.get("/ready").json()["index_version"] == v1
        assert c.get("/health").json()["index_version"] == v1
        before = ask(c, BEAR)
        assert "Misha" in before["answer"] and sources(before) == {"seeds/zoo.md"}
        assert "seeds/tram.md" not in sources(ask(c, TRAM))
        old = state_of(c).answerer
        assert old is not None

        (corpus_settings.corpus_dir / "zoo.md").write_text(zoo("Boris"))
        (corpus_settings.corpus_dir / "tram.md").write_text(TRAM_DOC)
        v2 = rebuild(corpus_settings)
        assert v2 != v1
        wait_for(lambda: c.get("/ready").json()["index_version"] == v2, "the app to serve v2")

        after = ask(c, BEAR)
        assert "Boris" in after["answer"] and "Misha" not in after["answer"], after
        tram = ask(c, TRAM)
        assert sources(tram) == {"seeds/tram.md"} and "1991" in tram["answer"], tram
        assert reloads(c, "ok") == 1 and reloads(c, "failed") == 0
        assert f'citeqa_index_info{{chunks="{state_of(c).answerer.retriever.n_chunks}",version="{v2}"}} 1.0' in (  # type: ignore[union-attr]
            c.get("/metrics").text
        )
        # Only the index was reloaded: the models and the rest are the ones loaded at start.
        new = state_of(c).answerer
        assert new is not None and new is not old
        assert new.embedder is old.embedder and new.llm is old.llm is llm
        assert new.prompts is old.prompts and new.gate is old.gate
        assert c.get("/ready").json()["reload_error"] is None


def test_a_request_in_flight_finishes_on_the_version_it_started_with(corpus_settings: Settings) -> None:
    settings = corpus_settings.model_copy(update={"index_reload_interval": 0.0})  # swapped by hand below
    llm = FakeLLM(delay=0.05)  # about half a second per answer
    with TestClient(create_app(settings, loader=fake_loader(llm))) as c:
        wait_ready(c)
        result: dict[str, Any] = {}
        slow = threading.Thread(target=lambda: result.update(ask(c, BEAR)))
        slow.start()
        wait_for(lambda: llm.pieces_sent > 0, "the first request to be answering")
        (corpus_settings.corpus_dir / "zoo.md").write_text(zoo("Boris"))
        v2 = rebuild(corpus_settings)
        assert c.portal.call(IndexWatcher(state_of(c)).check) is True  # type: ignore[union-attr]
        assert c.get("/ready").json()["index_version"] == v2
        assert slow.is_alive(), "the first request ended before the swap: the test proves nothing"
        slow.join(timeout=30)
        assert "Misha" in result["answer"], result
        assert "Boris" in ask(c, BEAR)["answer"]


def test_a_version_that_cannot_be_loaded_leaves_the_old_one_serving(corpus_settings: Settings) -> None:
    with TestClient(create_app(corpus_settings, loader=fake_loader(FakeLLM()))) as c:
        wait_ready(c)
        index_dir = corpus_settings.index_dir
        v1 = store.current_name(index_dir)
        assert v1 is not None

        def still_serving_v1(failures: float, error: str) -> None:
            wait_for(lambda: reloads(c, "failed") >= failures, f"failed reload number {failures:g}")
            ready = c.get("/ready")
            assert ready.status_code == 200 and ready.json()["index_version"] == v1, ready.json()
            assert error in (ready.json()["reload_error"] or ""), ready.json()
            assert "Misha" in ask(c, BEAR)["answer"]
            assert reloads(c, "ok") == 0

        # A damaged version: a copy of v1 with one data file changed after its checksum.
        shutil.copytree(index_dir / v1, index_dir / "v-damaged")
        with (index_dir / "v-damaged" / "chunks.jsonl").open("a") as fh:
            fh.write("\n")
        point_current_at(index_dir, "v-damaged")
        still_serving_v1(1, "damaged (checksum mismatch)")
        time.sleep(0.3)  # several polls: the same broken version is not loaded again
        assert reloads(c, "failed") == 1

        point_current_at(index_dir, "v-missing")  # CURRENT names a folder that is not there
        still_serving_v1(2, "missing folder v-missing")

        rebuild(corpus_settings, HashingEmbedder(dim=128))  # built with another embedding model
        still_serving_v1(3, "was built with 'hashing-128'")

        (corpus_settings.corpus_dir / "zoo.md").write_text(zoo("Boris"))
        v2 = rebuild(corpus_settings)  # a good build again: swapped in, the error cleared
        wait_for(lambda: c.get("/ready").json()["index_version"] == v2, "the app to serve the good version")
        assert c.get("/ready").json()["reload_error"] is None
        assert "Boris" in ask(c, BEAR)["answer"]
        assert reloads(c, "ok") == 1 and reloads(c, "failed") == 3


def test_an_interval_of_zero_never_reloads(corpus_settings: Settings) -> None:
    settings = corpus_settings.model_copy(update={"index_reload_interval": 0.0})
    with TestClient(create_app(settings, loader=fake_loader(FakeLLM()))) as c:
        wait_ready(c)
        v1 = c.get("/ready").json()["index_version"]
        (corpus_settings.corpus_dir / "zoo.md").write_text(zoo("Boris"))
        assert rebuild(corpus_settings) != v1
        time.sleep(0.3)
        assert c.get("/ready").json()["index_version"] == v1
        assert "Misha" in ask(c, BEAR)["answer"]
