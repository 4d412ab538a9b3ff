"""Clients that leave mid-answer: /health latency during the burst, and LLM calls left running.

Starts `citeqa serve` (the real embedder and index) against a fake OpenAI-compatible LLM that
writes a word every 0.3 s, fires CLIENTS concurrent /ask requests that hang up after 0.5 s, and
meanwhile asks /health every 20 ms from a process of its own. Prints /health p50/p99/max, how
many LLM calls were made and how many were still running 2 s after the burst. `--root` points at
another checkout to measure it the same way in the same run (for a before/after ratio on one
machine).

    python bench/disconnect.py [--clients 200] [--root /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import multiprocessing.queues
import multiprocessing.synchronize
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from machine import cpu_model, pct

from service.testing import FakeOpenAI, free_port, running_service

QUESTION = {"question": "What breed of dog did Kim give Putin?"}


def probe(url: str, stop: multiprocessing.synchronize.Event, out: multiprocessing.queues.Queue) -> None:
    """Asks /health every 20 ms until told to stop; runs in a process of its own."""
    health: list[float] = []
    with httpx.Client() as client:
        while not stop.is_set():
            started = time.perf_counter()
            client.get(url + "/health", timeout=10)
            health.append((time.perf_counter() - started) * 1000)
            time.sleep(0.02)
    out.put(health)


async def burst(url: str, clients: int) -> list[float]:
    """The leavers run on this event loop; /health is probed from a process of its own, so the
    bench's own client work (200 httpx requests hold this process's GIL) does not show up as the
    service's latency."""
    stop = multiprocessing.Event()
    out: multiprocessing.queues.Queue = multiprocessing.Queue()
    prober = multiprocessing.Process(target=probe, args=(url, stop, out))
    prober.start()
    await asyncio.sleep(0.5)  # the probe's own start-up is not the service's latency

    async def leaver(client: httpx.AsyncClient) -> None:
        with contextlib.suppress(httpx.HTTPError):
            await client.post(url + "/ask", json=QUESTION, timeout=httpx.Timeout(30, read=0.5))

    limits = httpx.Limits(max_connections=clients + 10)
    async with httpx.AsyncClient(limits=limits) as askers:
        await asyncio.gather(*(leaver(askers) for _ in range(clients)))
    await asyncio.sleep(2.0)
    stop.set()
    health: list[float] = out.get(timeout=30)
    prober.join()
    return health


def measure(root: Path, index_dir: Path, clients: int) -> dict[str, float]:
    with FakeOpenAI() as fake:
        fake.mode, fake.word_delay = "slow", 0.3
        port = free_port()
        env = {
            **os.environ,
            "CITEQA_CORPUS_DIR": str(root / "seeds"),
            "CITEQA_INDEX_DIR": str(index_dir),
            "CITEQA_LLM_MODEL": "openai/fake",
            "CITEQA_LLM_API_BASE": f"http://127.0.0.1:{fake.port}/v1",
            "CITEQA_LLM_API_KEY": "x",
            "CITEQA_LLM_QUEUE_SIZE": "8",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "CITEQA_LOG_LEVEL": "WARNING",
        }
        subprocess.run(
            [sys.executable, "-m", "service.cli", "index"], cwd=root, env=env, check=True, capture_output=True
        )
        try:
            with running_service(root, env, port) as url:
                health = asyncio.run(burst(url, clients))
                running = fake.active
                calls = len(fake.requests)
        finally:
            fake.release.set()
    return {
        "health_p50_ms": statistics.median(health),
        "health_p99_ms": pct(health, 99),
        "health_max_ms": max(health),
        "llm_calls": calls,
        "llm_calls_running_after": running,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--root", type=Path, action="append", default=[])
    args = parser.parse_args()
    roots = [Path(__file__).resolve().parent.parent, *args.root]
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; {args.clients} clients that leave after 0.5 s")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, root in enumerate(roots):
            r = measure(root, Path(tmp) / f"index{n}", args.clients)
            results.append(r)
            print(
                f"{root}: /health p50 {r['health_p50_ms']:.1f} ms, p99 {r['health_p99_ms']:.1f} ms, "
                f"max {r['health_max_ms']:.1f} ms; LLM calls {r['llm_calls']}, "
                f"still running 2 s after the burst {r['llm_calls_running_after']}"
            )
    if len(results) > 1:
        base = results[1]
        print(f"ratio /health p99 this/other: {results[0]['health_p99_ms'] / base['health_p99_ms']:.2f}")


if __name__ == "__main__":
    main()
