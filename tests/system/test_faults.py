"""Fault injection. The LLM half uses the REAL LiteLLMClient (service/llm/client.py -> litellm -> the openai
SDK -> HTTP) against a fake OpenAI-compatible server on 127.0.0.1 that can refuse, hang, stall or
send garbage; every failure must reach the client as a typed 5xx with the right code, quickly,
never a 500. The index half interrupts builds (a failing write, and SIGKILL at random moments) and
damages index files: the old index must stay loadable, and a bad one must stop start-up with a
message naming `citeqa index`."""

from __future__ import annotations

import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from index import store
from index.builder import build
from index.embedder import HashingEmbedder
from service.answer.pipeline import Answerer
from service.answer.prompts import Prompts
from service.answer.retrieval import HybridRetriever
from service.api.app import create_app
from service.llm.client import LiteLLMClient
from service.llm.queue import LLMGate
from service.settings import Settings
from service.testing import FakeOpenAI, fake_settings, free_port
from tests.conftest import wait_ready

ROOT = Path(__file__).resolve().parents[2]
QUESTION = {"question": "What breed of dog did Kim give Putin?"}


@pytest.fixture(autouse=True)
def _no_real_llm_calls() -> None:
    """Overrides the conftest guard: here litellm.acompletion must really run (against loopback only)."""


def real_llm_loader(settings: Settings, gate: LLMGate) -> Answerer:
    """The real pipeline and the REAL LiteLLMClient; only the embedder is the hashing one."""
    data = store.load(settings.index_dir)
    embedder = HashingEmbedder()
    return Answerer(
        settings,
        HybridRetriever(data, embedder),
        embedder,
        LiteLLMClient(settings),
        Prompts.load(),
        gate,
    )


def llm_settings(index_dir: Path, port: int, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "llm_model": "openai/fake",
        "llm_api_base": f"http://127.0.0.1:{port}/v1",
        "llm_api_key": "x",
        "llm_timeout": 15,  # generous: a first litellm call in a busy process can take seconds
    }
    values.update(overrides)
    return fake_settings(index_dir.parent, **values)


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def openai_server(fake_openai: FakeOpenAI) -> Iterator[FakeOpenAI]:
    fake_openai.mode, fake_openai.word_delay = "ok", 0.0
    fake_openai.requests.clear()
    fake_openai.release.clear()
    yield fake_openai
    fake_openai.release.set()  # free any handler still hanging


def client_for(settings: Settings) -> TestClient:
    return TestClient(create_app(settings, loader=real_llm_loader), raise_server_exceptions=False)


def assert_typed(r: Any, statuses: set[int], codes: set[str]) -> dict[str, Any]:
    assert r.status_code in statuses, r.text
    error = r.json()["error"]
    assert error["code"] in codes and error["message"], error
    assert "Traceback" not in r.text
    return error  # type: ignore[no-any-return]


# --- the LLM faults ----------------------------------------------------------------------------


def test_real_client_answers_through_the_fake_server(index_dir: Path, openai_server: FakeOpenAI) -> None:
    """The baseline: the same path that the faults below break works end to end."""
    with client_for(llm_settings(index_dir, openai_server.port)) as c:
        wait_ready(c)
        r = c.post("/ask", json=QUESTION)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["refused"] is False and body["citations"] and body["model"] == "openai/fake"
    sent = openai_server.requests[-1]
    assert sent["model"] == "fake" and sent["stream"] is True
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]


def test_connection_refused_is_503_llm_unavailable(index_dir: Path) -> None:
    port = free_port()  # nothing listens here
    with client_for(llm_settings(index_dir, port, llm_timeout=10)) as c:
        wait_ready(c)
        started = time.monotonic()
        r = c.post("/ask", json=QUESTION)
        elapsed = time.monotonic() - started
    error = assert_typed(r, {503}, {"llm_unavailable"})
    assert str(port) not in error["message"] and error["request_id"]  # where the LLM lives is not told
    assert elapsed < 10, f"took {elapsed:.1f} s"


@pytest.mark.parametrize(
    "mode",
    [
        "hang",  # the server never answers
        "stall",  # the stream stops midway
    ],
)
def test_llm_that_stops_answering_is_a_quick_504(index_dir: Path, openai_server: FakeOpenAI, mode: str) -> None:
    openai_server.mode = mode
    with client_for(llm_settings(index_dir, openai_server.port, llm_timeout=1)) as c:
        wait_ready(c)
        started = time.monotonic()
        r = c.post("/ask", json=QUESTION)
        elapsed = time.monotonic() - started
    assert_typed(r, {504}, {"llm_timeout"})
    assert elapsed < 4, f"took {elapsed:.1f} s with llm_timeout=1"


def test_stall_on_the_streaming_endpoint_ends_with_a_typed_error_event(
    index_dir: Path, openai_server: FakeOpenAI
) -> None:
    openai_server.mode = "stall"
    with client_for(llm_settings(index_dir, openai_server.port, llm_timeout=1)) as c:
        wait_ready(c)
        r = c.post("/ask/stream", json=QUESTION)
    assert r.status_code == 200  # headers were sent before the LLM stalled
    events = [block for block in r.text.split("\n\n") if block.strip()]
    assert events[-1].startswith("event: error"), r.text
    error = json.loads(events[-1].split("data: ", 1)[1])["error"]
    assert error["code"] == "llm_timeout"


@pytest.mark.parametrize(
    "mode",
    [
        "not_json",
        "sse_garbage",
        "wrong_shape",
    ],
)
def test_garbage_from_the_llm_is_a_typed_502(index_dir: Path, openai_server: FakeOpenAI, mode: str) -> None:
    """Reproduction: sse_garbage and wrong_shape were 503 llm_unavailable, where the docs say 502."""
    openai_server.mode = mode
    with client_for(llm_settings(index_dir, openai_server.port, llm_timeout=5)) as c:
        wait_ready(c)
        r = c.post("/ask", json=QUESTION)
    assert_typed(r, {502}, {"llm_bad_response"})
    assert "Expecting value" not in r.text and "finish_reason" not in r.text  # upstream detail stays in the log


@pytest.mark.parametrize(("mode", "status"), [("http500", 503), ("http401", 503), ("drop", 503)])
def test_llm_server_errors_are_typed(index_dir: Path, openai_server: FakeOpenAI, mode: str, status: int) -> None:
    openai_server.mode = mode
    with client_for(llm_settings(index_dir, openai_server.port, llm_timeout=5)) as c:
        wait_ready(c)
        r = c.post("/ask", json=QUESTION)
    error = assert_typed(r, {status}, {"llm_unavailable"})
    assert error["request_id"]  # the client gets the code and an id to quote, not the upstream text


def test_upstream_error_text_is_logged_not_returned(
    index_dir: Path, openai_server: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """Reproduction: the provider's error text (a key, an internal host name) reached the client in
    the 503 body."""
    openai_server.mode = "http401"
    with caplog.at_level("WARNING"), client_for(llm_settings(index_dir, openai_server.port, llm_timeout=5)) as c:
        wait_ready(c)
        r = c.post("/ask", json=QUESTION)
    assert r.status_code == 503
    assert "sk-live" not in r.text and "llm.internal.corp" not in r.text
    assert any("sk-live" in record.getMessage() for record in caplog.records)


def test_full_gate_answers_503_overloaded_with_retry_after(index_dir: Path, openai_server: FakeOpenAI) -> None:
    openai_server.mode, openai_server.word_delay = "slow", 0.15
    settings = llm_settings(index_dir, openai_server.port, llm_timeout=20, llm_max_concurrency=1, llm_queue_size=0)
    with client_for(settings) as c:
        wait_ready(c)
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(c.post, "/ask", json=QUESTION)
            deadline = time.monotonic() + 10
            while not openai_server.requests:  # the first request holds the only LLM slot
                assert time.monotonic() < deadline, "first request never reached the LLM"
                time.sleep(0.01)
            started = time.monotonic()
            second = pool.submit(c.post, "/ask", json={"question": "At which airport did Kim greet Putin?"})
            r2 = second.result(timeout=10)
            rejected_in = time.monotonic() - started
            r1 = first.result(timeout=30)
        assert r1.status_code == 200, r1.text
        assert_typed(r2, {503}, {"overloaded"})
        assert int(r2.headers["retry-after"]) >= 1
        assert rejected_in < 1.0, "an overloaded request must be rejected at once, not queued"
        # The slot is released afterwards: the next request gets through.
        openai_server.word_delay = 0.0
        assert c.post("/ask", json=QUESTION).status_code == 200


# --- interrupted index builds ------------------------------------------------------------------


def _corpus(tmp: Path, extra: str | None = None, copies: int = 1) -> Path:
    corpus = tmp / "seeds"
    if corpus.exists():
        shutil.rmtree(corpus)
    corpus.mkdir(parents=True)
    for n in range(copies):
        for src in sorted((ROOT / "seeds").glob("*.txt")):
            (corpus / f"{n}_{src.name}").write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    if extra:
        (corpus / "zz_extra.txt").write_text(extra, encoding="utf-8")
    return corpus


def _build(corpus: Path, index_dir: Path, force: bool = False) -> Any:
    return build(corpus, index_dir, HashingEmbedder(), 160, 32, force=force)


def _leftovers(index_dir: Path) -> list[str]:
    return sorted(p.name for p in index_dir.iterdir() if p.name.startswith((".staging-", f".{store.POINTER}.tmp")))


@pytest.mark.parametrize("fail_on", ["chunks.jsonl", "chunk_vectors.npy", "faiss.index", "manifest.json"])
def test_write_failing_midway_leaves_the_old_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_on: str
) -> None:
    corpus = _corpus(tmp_path)
    index_dir = tmp_path / "index"
    _build(corpus, index_dir)
    before = store.load(index_dir)
    version = store.current_version(index_dir)

    real_write = store._write_file

    def failing_write(path: Path, write: Any) -> None:
        if path.name == fail_on:
            with path.open("wb") as fh:
                fh.write(b"half a fi")  # a torn write, then the disk "fails"
            raise OSError(28, "No space left on device")
        real_write(path, write)

    monkeypatch.setattr(store, "_write_file", failing_write)
    _corpus(tmp_path, extra="A brand new document about the Pyongyang zoo and its penguins.")
    with pytest.raises(OSError, match="No space"):
        _build(corpus, index_dir)
    monkeypatch.undo()

    assert store.current_version(index_dir) == version
    after = store.load(index_dir)
    assert len(after.chunks) == len(before.chunks)
    assert not any("penguins" in c.text for c in after.chunks)
    assert _leftovers(index_dir) == []
    # The next build succeeds and picks the new document up.
    report = _build(corpus, index_dir)
    assert report.written and any("penguins" in c.text for c in store.load(index_dir).chunks)


def test_crash_between_version_and_pointer_switch_leaves_the_old_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = _corpus(tmp_path)
    index_dir = tmp_path / "index"
    _build(corpus, index_dir)
    version = store.current_version(index_dir)
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        if Path(dst).name == store.POINTER:
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(store.os, "replace", replace)
    _corpus(tmp_path, extra="The Pyongyang zoo keeps penguins.")
    with pytest.raises(OSError):
        _build(corpus, index_dir)
    monkeypatch.undo()
    assert store.current_version(index_dir) == version
    assert not any("penguins" in c.text for c in store.load(index_dir).chunks)


_KILL_SCRIPT = """
import sys
from pathlib import Path
from index.builder import build
from index.embedder import HashingEmbedder
corpus, index_dir = Path(sys.argv[1]), Path(sys.argv[2])
n = 0
while True:  # rebuild from scratch forever, so a kill lands anywhere: embedding, writing, switching
    build(corpus, index_dir, HashingEmbedder(), 160, 32, force=True)
    n += 1
    print(n, flush=True)
"""


def test_index_build_killed_at_random_moments_leaves_a_loadable_index(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path, copies=3)
    index_dir = tmp_path / "index"
    _build(corpus, index_dir)
    n_chunks = len(store.load(index_dir).chunks)
    rng = random.Random(5)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    builds_seen = 0
    for _ in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-c", _KILL_SCRIPT, str(corpus), str(index_dir)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        # Wait for its first build (imports and the first BM25 take a few seconds, more on a busy
        # machine), then kill it somewhere in the next ones: a build every few tenths of a second.
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "the builder finished no build in 60 s"
        time.sleep(rng.uniform(0.0, 1.0))
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
        builds_seen += len(out.split())
        data = store.load(index_dir)  # must never raise
        assert len(data.chunks) == n_chunks
    assert builds_seen > 0, "the killed builder never finished a build: the kills did not span the save"
    # Leftovers of killed builds are cleaned up by the next successful build.
    _build(corpus, index_dir, force=True)
    assert _leftovers(index_dir) == []
    # The current version and the one before it (a replica may still be loading it), nothing else.
    current = store.current_version(index_dir)
    assert current is not None
    kept = {current.name, *(p.read_text() for p in [index_dir / store.PREVIOUS] if p.exists())}
    assert sorted(p.name for p in index_dir.iterdir() if p.name.startswith("v-")) == sorted(kept)


# --- missing or damaged index at start-up ------------------------------------------------------


def _start(settings: Settings) -> None:
    with TestClient(create_app(settings, check=True)):
        pass


def test_missing_index_stops_start_up_naming_citeqa_index(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path)  # tmp/index does not exist
    with pytest.raises(store.IndexLoadError, match="citeqa index"):
        _start(settings)
    (tmp_path / "index").mkdir()
    with pytest.raises(store.IndexLoadError, match=r"no index found.*citeqa index"):
        _start(settings)


def _damage(version: Path, how: str) -> None:
    if how == "flipped byte in faiss.index":
        data = bytearray((version / "faiss.index").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (version / "faiss.index").write_bytes(bytes(data))
    elif how == "truncated chunks.jsonl":
        text = (version / "chunks.jsonl").read_bytes()
        (version / "chunks.jsonl").write_bytes(text[: len(text) // 2])
    elif how == "deleted vectors":
        (version / "chunk_vectors.npy").unlink()
    elif how == "garbage manifest":
        (version / "manifest.json").write_text("{not json")
    elif how == "manifest missing keys":
        (version / "manifest.json").write_text("{}")
    elif how == "pointer to missing folder":
        (version.parent / store.POINTER).write_text("v-does-not-exist")
    elif how == "empty pointer":
        (version.parent / store.POINTER).write_text("")
    else:  # pragma: no cover
        raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    [
        "flipped byte in faiss.index",
        "truncated chunks.jsonl",
        "deleted vectors",
        "garbage manifest",
        "manifest missing keys",
        "pointer to missing folder",
        "empty pointer",
    ],
)
def test_damaged_index_stops_start_up_naming_citeqa_index(tmp_path: Path, how: str) -> None:
    index_dir = tmp_path / "index"
    _build(_corpus(tmp_path), index_dir)
    _damage(store.current_version(index_dir) or index_dir, how)
    with pytest.raises(store.IndexLoadError, match="citeqa index") as info:
        store.load(index_dir)
    assert "Traceback" not in str(info.value)
    with pytest.raises(store.IndexLoadError, match="citeqa index"):
        _start(fake_settings(tmp_path))


def test_citeqa_serve_exits_2_with_the_fix_when_the_index_is_missing(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CITEQA_INDEX_DIR": str(tmp_path / "nothing"),
        "CITEQA_PORT": str(free_port()),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "citeqa index" in proc.stderr and "Traceback" not in proc.stderr
