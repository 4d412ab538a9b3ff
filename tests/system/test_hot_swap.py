"""A hot swap under load, against a real `citeqa serve` process: clients ask without pause while
`citeqa index` rebuilds the index twice with a changed corpus (and then a damaged version
appears); not one request fails, and answers come from the new version once it is served.

Both commands are the real `service.cli.main`, with the hashing embedder in place of the model
(as in test_index_safety.py), so builds and start-up take seconds; the LLM is `FakeOpenAI`, which
quotes the first passage it is given, so each answer names the version it was retrieved from.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from index import store
from service.testing import HASHING_CLI, FakeOpenAI, free_port, running_service

ROOT = Path(__file__).resolve().parents[2]
QUESTION = {"question": "What is the bear at the Pyongyang zoo called?"}
BEARS = ("Misha", "Boris", "Kuma")  # v1, v2, v3
CLIENTS = 4


def zoo(bear: str) -> str:
    return f"# Zoo\n\nThe Pyongyang zoo has a brown bear called {bear}. The zoo also keeps penguins.\n"


@dataclass
class Result:
    started: float
    ended: float
    status: int  # 0: no HTTP response at all
    answer: str
    sources: list[str]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "seeds"
    shutil.copytree(ROOT / "seeds", folder)
    (folder / "zoo.md").write_text(zoo(BEARS[0]))
    return folder


@pytest.fixture
def llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        fake.word_delay = 0.01  # each answer streams for about 0.1 s: requests overlap the swaps
        yield fake


def _env(corpus: Path, llm: FakeOpenAI) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CITEQA_CORPUS_DIR": str(corpus),
        "CITEQA_INDEX_DIR": str(corpus.parent / "index"),
        "CITEQA_MIN_RELEVANCE": "0.2",  # the hashing embedder's cosines run lower than a model's
        "CITEQA_LLM_MODEL": "openai/fake",
        "CITEQA_LLM_API_BASE": f"http://127.0.0.1:{llm.port}/v1",
        "CITEQA_LLM_API_KEY": "x",
        "CITEQA_LLM_MAX_CONCURRENCY": "4",
        "CITEQA_CONFIRM_ANSWERS": "false",
        "CITEQA_INDEX_RELOAD_INTERVAL": "0.1",
        "CITEQA_LOG_LEVEL": "WARNING",  # the access log would fill the stderr pipe nobody reads
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def citeqa_index(env: dict[str, str]) -> str:
    """Run `citeqa index`; return the version it made current."""
    done = subprocess.run(
        [sys.executable, "-c", HASHING_CLI, "index", "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    name = store.current_name(Path(env["CITEQA_INDEX_DIR"]))
    assert name is not None
    return name


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> float:
    """Wait until `condition` holds; return the moment it was seen to."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return time.monotonic()


def ask_until(url: str, stop: threading.Event, into: list[Result]) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            started = time.monotonic()
            try:
                r = client.post("/ask", json=QUESTION)
            except httpx.HTTPError as exc:
                into.append(Result(started, time.monotonic(), 0, repr(exc), []))
                continue
            if r.status_code != 200:
                into.append(Result(started, time.monotonic(), r.status_code, r.text, []))
                continue
            body = r.json()
            sources = [c["source"] for c in body["citations"]]
            into.append(Result(started, time.monotonic(), 200, body["answer"], sources))


def bear_of(result: Result) -> str | None:
    found = [b for b in BEARS if re.search(rf"\b{b}\b", result.answer)]
    return found[0] if len(found) == 1 else None


def test_two_rebuilds_under_load_fail_no_request_and_switch_the_answers(corpus: Path, llm: FakeOpenAI) -> None:
    env = _env(corpus, llm)
    index_dir = Path(env["CITEQA_INDEX_DIR"])
    v1 = citeqa_index(env)
    command = [sys.executable, "-c", HASHING_CLI, "serve"]
    with running_service(ROOT, env, free_port(), timeout=60, command=command) as url:

        def served() -> str | None:
            return httpx.get(url + "/ready", timeout=5).json().get("index_version")

        assert served() == v1
        results: list[Result] = []
        stop = threading.Event()
        clients = [threading.Thread(target=ask_until, args=(url, stop, results)) for _ in range(CLIENTS)]
        for thread in clients:
            thread.start()
        try:
            time.sleep(0.5)
            # (when the rebuild started, when its version was seen served) for v2 and v3
            switches: list[tuple[float, float]] = []
            for bear in BEARS[1:]:
                (corpus / "zoo.md").write_text(zoo(bear))
                building = time.monotonic()
                version = citeqa_index(env)
                seen = wait_for(lambda v=version: served() == v, f"the service to serve {version}")  # type: ignore[misc]
                switches.append((building, seen))
                time.sleep(0.5)
            # A damaged version next: the service keeps serving v3 and says why.
            current = store.current_name(index_dir)
            assert current is not None
            shutil.copytree(index_dir / current, index_dir / "v-damaged")
            (index_dir / "v-damaged" / "faiss.index").write_bytes(b"not an index")
            (index_dir / ".CURRENT.tmp-test").write_text("v-damaged")
            (index_dir / ".CURRENT.tmp-test").replace(index_dir / store.POINTER)
            wait_for(
                lambda: "v-damaged" in (httpx.get(url + "/ready", timeout=5).json().get("reload_error") or ""),
                "the damaged version to be reported",
            )
            damaged_seen = time.monotonic()
            time.sleep(0.5)
        finally:
            stop.set()
            for thread in clients:
                thread.join(timeout=60)
        metrics = httpx.get(url + "/metrics", timeout=5).text
        assert served() == current

    failed = [r for r in results if r.status != 200]
    assert failed == [], f"{len(failed)} of {len(results)} requests failed, e.g. {failed[:3]}"
    assert len(results) >= 20, f"only {len(results)} requests: not much of a load"
    unexplained = [r for r in results if bear_of(r) is None or r.sources != ["seeds/zoo.md"]]
    assert unexplained == [], f"answers that name no single bear: {unexplained[:3]}"

    (v2_built, v2_seen), (v3_built, v3_seen) = switches
    # Which version may answer, by when the request ran: before a rebuild began, only the old one;
    # once the new one was seen served, only the new one (or a later one).
    expected = {
        "before v2": ([r for r in results if r.ended < v2_built], {"Misha"}),
        "v2 served, before v3": ([r for r in results if r.started > v2_seen and r.ended < v3_built], {"Boris"}),
        "v3 served": ([r for r in results if r.started > v3_seen], {"Kuma"}),
        "damaged version seen": ([r for r in results if r.started > damaged_seen], {"Kuma"}),
    }
    for phase, (phase_results, bears) in expected.items():
        assert phase_results, f"no request ran in the phase {phase!r}: the test proves nothing"
        wrong = [r for r in phase_results if bear_of(r) not in bears]
        assert wrong == [], f"{phase}: answers from the wrong version: {wrong[:3]}"

    assert re.search(r'^citeqa_index_reloads_total\{outcome="ok"\} 2\.0$', metrics, re.M), metrics
    assert re.search(r'^citeqa_index_reloads_total\{outcome="failed"\} 1\.0$', metrics, re.M), metrics
