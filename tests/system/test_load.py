"""The 60-second load test (part of `make test`): 50 concurrent clients against a real uvicorn server
on 127.0.0.1 running the real app with the scripted FakeLLM behind the real LLM gate.

The gate is sized so the queue is used but never overflows: 8 LLM slots for 50 clients, and a
queue of 64 (more than the 42 requests that can ever wait), so every request must succeed; any 5xx,
including a 503 overload, fails the test. Figures are printed (`pytest -s`) and written to
test-output/load.json. CITEQA_LOAD_SECONDS / CITEQA_LOAD_CLIENTS shorten it for local iteration.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
SECONDS = float(os.environ.get("CITEQA_LOAD_SECONDS", "60"))
CLIENTS = int(os.environ.get("CITEQA_LOAD_CLIENTS", "50"))
CONCURRENCY = 8
QUEUE = 64


def _bench_load():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("citeqa_bench_load", ROOT / "bench" / "load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.load
def test_fifty_clients_for_sixty_seconds_get_no_5xx(index_dir: Path) -> None:
    load = _bench_load()
    assert QUEUE >= CLIENTS - CONCURRENCY, "the queue must hold every client that can wait"
    with load.FakeServer(index_dir.parent, concurrency=CONCURRENCY, queue=QUEUE, delay=0.01) as server:
        stats = asyncio.run(load.run_load(server.url, clients=CLIENTS, seconds=SECONDS))
        server_counts = load.server_request_counts(httpx.get(server.url + "/metrics", timeout=10).text)
    stats["server_counts"] = server_counts
    stats["server"] = {"llm_max_concurrency": CONCURRENCY, "llm_queue_size": QUEUE, "fake_llm_delay": 0.01}

    print("\n" + load.format_stats(stats))
    out = ROOT / "test-output" / "load.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(stats, indent=2) + "\n")

    assert stats["transport_errors"] == 0, stats["transport"]
    assert stats["server_errors"] == 0, stats
    assert stats["statuses"] == {"200": stats["requests"]}, stats
    # The server saw exactly what the clients sent, and every request of it was a 200.
    assert server_counts == {"200": stats["requests"]}, (server_counts, stats["requests"])
    # Meaningful volume: the LLM gate is the bottleneck, yet throughput stays well above one slot's worth.
    assert stats["requests"] >= 5 * SECONDS, stats
    assert stats["p95_ms"] < 15_000, stats
