"""How the exact FAISS index (IndexFlatIP, what index/store.py builds) scales with corpus size.

    .venv/bin/python bench/vector_scale.py                      # N = 10k, 100k, 300k, 1M
    .venv/bin/python bench/vector_scale.py --sizes 10000,100000 --queries 200 --threads 1

For each N: synthetic L2-normalised 384-dim float32 vectors (the all-MiniLM-L6-v2 width), then
  add      seconds for IndexFlatIP.add of all N vectors
  index    bytes held by the index (ntotal * code_size) and the process RSS growth during add
  search   p50/p95/mean latency of one query at a time (as the service searches), top-k, over Q queries
  argsort  p50 of np.argsort over N scores, the full sort HybridRetriever's BM25 ranking does per query
Random vectors have no cluster structure, which does not matter to an exact scan: its cost depends
only on N and the dimension. Single-threaded by default, as one request is served by one thread.
Synthetic data only; nothing is read or written outside memory.
"""

from __future__ import annotations

import argparse
import os
import time

import faiss
import numpy as np
from machine import cpu_model

DIM = 384


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def normalised(rng: np.random.Generator, n: int, dim: int, block: int = 100_000) -> np.ndarray:
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, block):
        part = rng.standard_normal((min(block, n - start), dim), dtype=np.float32)
        part /= np.linalg.norm(part, axis=1, keepdims=True)
        out[start : start + len(part)] = part
    return out


def pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q))


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def run(n: int, queries: int, k: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    xb = normalised(rng, n, DIM)
    xq = normalised(rng, queries, DIM)
    index = faiss.IndexFlatIP(DIM)
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    index.add(xb)
    add_s = time.perf_counter() - t0
    rss_growth = rss_bytes() - rss0
    index_bytes = index.ntotal * index.code_size
    del xb
    index.search(xq[:1], k)  # warm-up
    lat = np.empty(queries)
    for i in range(queries):
        t = time.perf_counter()
        _, ids = index.search(xq[i : i + 1], k)
        lat[i] = time.perf_counter() - t
        assert ids[0, 0] >= 0
    scores = rng.random(n, dtype=np.float32)
    sort_lat = np.empty(20)
    for i in range(len(sort_lat)):
        t = time.perf_counter()
        np.argsort(-scores)[:30]
        sort_lat[i] = time.perf_counter() - t
    return {
        "n": n,
        "add_s": add_s,
        "index_bytes": index_bytes,
        "rss_growth": rss_growth,
        "p50_ms": pct(lat, 50) * 1e3,
        "p95_ms": pct(lat, 95) * 1e3,
        "mean_ms": float(lat.mean()) * 1e3,
        "qps": 1.0 / float(lat.mean()),
        "argsort_ms": pct(sort_lat, 50) * 1e3,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes",
        default="10000,100000,300000,1000000",
        help="comma-separated corpus sizes (number of vectors)",
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=5, help="neighbours per query (the service asks for 30)")
    parser.add_argument("--threads", type=int, default=1, help="faiss.omp_set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    faiss.omp_set_num_threads(args.threads)
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} CPUs; "
        f"faiss {faiss.__version__}, numpy {np.__version__}; omp threads {args.threads}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"IndexFlatIP, dim {DIM}, float32, top-{args.k}, {args.queries} single queries per size\n")
    header = (
        f"{'N':>9}  {'add s':>7}  {'index bytes':>13}  {'index':>9}  {'RSS growth':>10}  "
        f"{'p50 ms':>7}  {'p95 ms':>7}  {'mean ms':>7}  {'QPS/thread':>10}  {'argsort ms':>10}"
    )
    print(header)
    print("-" * len(header))
    started = time.perf_counter()
    cpu0 = time.process_time()
    for n in sizes:
        r = run(n, args.queries, args.k, args.seed)
        print(
            f"{r['n']:>9,}  {r['add_s']:>7.3f}  {r['index_bytes']:>13,}  {human(r['index_bytes']):>9}  "
            f"{human(r['rss_growth']):>10}  {r['p50_ms']:>7.2f}  {r['p95_ms']:>7.2f}  "
            f"{r['mean_ms']:>7.2f}  {r['qps']:>10.0f}  {r['argsort_ms']:>10.2f}",
            flush=True,
        )
    print(f"\ntotal {time.perf_counter() - started:.1f} s wall, {time.process_time() - cpu0:.1f} s CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
