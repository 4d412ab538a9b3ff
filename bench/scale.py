"""Scale figures (issue 16): how close a build runs to the embedder's own speed, and what one
question's retrieval costs at 10k, 100k and 1M chunks with each store.

    .venv/bin/python bench/scale.py                       # both parts, every eval corpus, 10k/100k/1M
    .venv/bin/python bench/scale.py build --corpus seeds  # index build against embed-only
    .venv/bin/python bench/scale.py retrieval --sizes 10000,100000 --milvus-max 100000
    .venv/bin/python bench/scale.py retrieval --sizes 10000,100000 --stores pgvector --pgvector-max 100000

build: for each eval corpus, in separate processes (so each peak RSS is its own), alternately
  embed-only  the corpus text cut once into 200-token pieces, embedded by the same model
  build       `citeqa index` from scratch (reading, parsing, chunking, embedding, writing)
  old build   what the build embedded before per-sentence vectors were dropped: chunks + sentences
and prints seconds, pieces or chunks per second, peak RSS, and the ratio of each to embed-only
(the figure that does not depend on the machine's speed).

retrieval: synthetic chunks shaped like real ones. Vectors are the PostgreSQL corpus's real chunk
vectors with Gaussian noise (cosine about 0.75 to the chunk they come from), so they cluster as
real embeddings do; a chunk's BM25 terms are a real chunk's content words plus five words of a
100k-word synthetic vocabulary. The questions are the corpus's real eval questions, so each timing
is a whole `Retriever.retrieve`: query embedding, dense search, BM25, fusion. Recall@10 is the
dense index's top 10 against an exact scan of the same vectors. Memory is the RSS growth while the
store is built, per chunk.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from machine import cpu_model, pct  # noqa: E402  (bench/machine.py)

PIECE_TOKENS = 200


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- build -------------------------------------------------------------------------------------


def _job(kind: str, corpus_dir: str, out: Any) -> None:
    """One measurement in a fresh process; the model load is not timed."""
    from index.builder import build
    from index.chunking import chunk_document
    from index.documents import load_corpus
    from index.embedder import SentenceTransformerEmbedder
    from index.tokens import get_encoding
    from service.settings import Settings

    s = Settings()
    embedder = SentenceTransformerEmbedder(s.embedding_model)
    embedder.encode_documents(["warm up"])
    started = time.perf_counter()
    if kind == "embed-only":
        enc = get_encoding()
        docs, _ = load_corpus(Path(corpus_dir))
        pieces = []
        for doc in docs:
            ids = enc.encode(doc.text, disallowed_special=())
            pieces += [enc.decode(ids[i : i + PIECE_TOKENS]) for i in range(0, len(ids), PIECE_TOKENS)]
        embedder.encode_documents(pieces)
        n, what = len(pieces), "pieces"
    elif kind == "build":
        with tempfile.TemporaryDirectory() as tmp:
            report = build(Path(corpus_dir), Path(tmp) / "index", embedder, s.chunk_tokens, s.chunk_overlap, force=True)
        n, what = report.n_chunks, "chunks"
    else:  # the old build's embedding work: every chunk and every sentence
        docs, _ = load_corpus(Path(corpus_dir))
        chunks = [c for d in docs for c in chunk_document(d, s.chunk_tokens, s.chunk_overlap)]
        texts = [c.embed_text for c in chunks] + [c.text[x.start : x.end] for c in chunks for x in c.sentences]
        embedder.encode_documents(texts)
        n, what = len(chunks), f"chunks ({len(texts)} texts)"
    out.put((time.perf_counter() - started, n, what, peak_rss_mb()))


def run_job(kind: str, corpus_dir: Path) -> tuple[float, int, str, float]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_job, args=(kind, str(corpus_dir), queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result  # type: ignore[no-any-return]


def bench_build(corpora: list[str], rounds: int, old: bool) -> None:
    from evals.corpora import CORPORA

    kinds = ["embed-only", "build"] + (["old build"] if old else [])
    print("\n## Index build against embed-only (200-token pieces), same model, separate processes")
    print("corpus | variant | seconds (median of rounds) | items/s | peak RSS | ratio to embed-only")
    for name in corpora:
        corpus = CORPORA[name]
        runs: dict[str, list[tuple[float, int, str, float]]] = {k: [] for k in kinds}
        for _ in range(rounds):
            for kind in kinds:
                runs[kind].append(run_job(kind, corpus.docs))
        base = statistics.median(r[0] for r in runs["embed-only"])
        for kind in kinds:
            secs = statistics.median(r[0] for r in runs[kind])
            n, what, rss = runs[kind][0][1], runs[kind][0][2], max(r[3] for r in runs[kind])
            print(
                f"{name} | {kind} | {secs:.1f} s ({', '.join(f'{r[0]:.1f}' for r in runs[kind])}) "
                f"| {n / secs:.1f} {what}/s ({n} {what}) | {rss:.0f} MB | {secs / base:.2f}",
                flush=True,
            )


# -- retrieval ---------------------------------------------------------------------------------


class Synthetic:
    """Chunks, vectors and BM25 terms for N synthetic chunks derived from a real index."""

    def __init__(self, seed: int = 7) -> None:
        import numpy as np

        from evals.corpora import CORPORA
        from evals.harness import InProcess
        from service.answer.words import content_words

        corpus = CORPORA["postgresql"]
        self.runner = InProcess(corpus, with_llm=False)
        data = self.runner.retriever.data  # type: ignore[attr-defined]
        self.base_chunks = data.chunks
        self.base_vectors = data.chunk_vectors
        self.base_terms = [content_words(c.embed_text) for c in data.chunks]
        self.questions = [c.question for c in corpus.load()]
        self.rng = np.random.default_rng(seed)
        self.vocab = [f"zz{i}" for i in range(100_000)]

    def make(self, n: int) -> tuple[list[Any], Any, list[list[str]]]:
        import numpy as np

        from index.chunking import Chunk

        m, dim = self.base_vectors.shape
        vectors = np.empty((n, dim), dtype=np.float32)
        for start in range(0, n, 100_000):
            rows = np.arange(start, min(n, start + 100_000))
            block = self.base_vectors[rows % m] + self.rng.normal(0, 0.045, (len(rows), dim)).astype(np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            vectors[rows] = block
        extra = self.rng.zipf(1.3, (n, 5)) % len(self.vocab)
        terms = [self.base_terms[i % m] + [self.vocab[j] for j in extra[i]] for i in range(n)]
        chunks = []
        for i in range(n):
            c = self.base_chunks[i % m]
            chunks.append(
                Chunk(
                    f"{c.source}#{i // m}",
                    c.text,
                    c.char_start,
                    c.char_end,
                    c.start_line,
                    c.end_line,
                    c.sentences,
                    c.n_tokens,
                    c.lines,
                    c.heading,
                    c.anchor,
                )
            )
        return chunks, vectors, terms


def time_questions(retriever: Any, queries: list[str]) -> list[float]:
    """Milliseconds of one `retrieve` per question, after ten warm-up questions."""
    for q in queries[:10]:
        retriever.retrieve(q, 5)
    lat = []
    for q in queries:
        t = time.perf_counter()
        retriever.retrieve(q, 5)
        lat.append((time.perf_counter() - t) * 1000)
    return lat


def bench_faiss(syn: Synthetic, n: int, queries: list[str], tmp: Path) -> dict[str, float | str]:
    import faiss
    import numpy as np

    from index import store
    from service.answer.retrieval import BM25, HybridRetriever

    chunks, vectors, terms = syn.make(n)
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    manifest = store.Manifest("bench", vectors.shape[1], 160, 32, "cl100k_base", {})
    bm25 = BM25(terms)
    t1 = time.perf_counter()
    data = store.IndexData.create(manifest, chunks, vectors, bm25)
    t2 = time.perf_counter()
    bm25.save(tmp / f"bm25-{n}")  # what a service reads at start instead of building it
    t3 = time.perf_counter()
    BM25.load(tmp / f"bm25-{n}")
    bm25_load_s = time.perf_counter() - t3
    retriever = HybridRetriever(data, syn.runner.embedder)
    grown = rss_bytes() - rss0 + vectors.nbytes  # the vectors were allocated before rss0
    lat = time_questions(retriever, queries)
    recall = 1.0
    if manifest.vector_index != "Flat":
        exact = faiss.IndexFlatIP(vectors.shape[1])
        exact.add(vectors)
        qv = np.stack([syn.runner.embedder.encode_query(q) for q in queries]).astype(np.float32)
        _, want = exact.search(qv, 10)
        _, got = data.faiss_index.search(qv, 10)
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(want, got, strict=True)]))
    return {
        "store": f"faiss {manifest.vector_index}" + (f" nprobe {manifest.nprobe}" if manifest.nprobe else ""),
        "p50": pct(lat, 50),
        "p95": pct(lat, 95),
        "recall": recall,
        "index_s": t2 - t1,
        "bm25_s": t1 - t0,
        "bm25_load_s": bm25_load_s,
        "bytes_per_chunk": grown / n,
    }


def bench_milvus(syn: Synthetic, n: int, queries: list[str], tmp: Path) -> dict[str, float | str]:

    from index.milvus_store import MilvusChunkStore
    from service.answer.milvus_retriever import MilvusRetriever

    chunks, vectors, _ = syn.make(n)
    store = MilvusChunkStore(str(tmp / f"scale-{n}.db"), dim=vectors.shape[1])
    store.reset()
    t0 = time.perf_counter()
    per_file = 1000
    for start in range(0, n, per_file):
        part = chunks[start : start + per_file]
        store.upsert_file(
            f"synthetic/{start // per_file}.txt",
            "0" * 64,
            [_as_source(c, start // per_file) for c in part],
            vectors[start : start + per_file],
        )
    store.flush()
    load_s = time.perf_counter() - t0
    retriever = MilvusRetriever(store, syn.runner.embedder)
    lat = time_questions(retriever, queries)
    return {
        "store": "milvus-lite FLAT",
        "p50": pct(lat, 50),
        "p95": pct(lat, 95),
        "recall": 1.0,
        "index_s": load_s,
        "bm25_s": 0.0,
        "bytes_per_chunk": float("nan"),
    }


def bench_pgvector(
    syn: Synthetic, n: int, queries: list[str], dsn: str, hnsw: dict[str, Any]
) -> dict[str, float | str]:
    """The pgvector store loaded file by file (1,000 chunks a file, as the builder writes them),
    then its postings b-trees and dense index (HNSW or IVFFlat) built once; recall@10 is the dense
    leg's top 10 (at the chosen ef_search or probes) against an exact scan of the same vectors. The
    whole retrieve is timed after the sweep, on warm buffers."""
    import numpy as np

    from index.chunk_records import chunk_id
    from index.pgvector_store import PgvectorChunkStore, ivfflat_probes
    from service.answer.pgvector_retriever import PgvectorRetriever

    chunks, vectors, _ = syn.make(n)
    store = PgvectorChunkStore(
        dsn,
        table=f"scale_{n}",
        dim=vectors.shape[1],
        m=hnsw["m"],
        ef_construction=hnsw["ef_construction"],
        vector_index=hnsw.get("index", "auto"),
        probes=hnsw.get("probes", 0),
    )
    store.reset()
    t0 = time.perf_counter()
    per_file = 1000
    for start in range(0, n, per_file):
        part = chunks[start : start + per_file]
        store.upsert_file(
            f"synthetic/{start // per_file}.txt",
            "0" * 64,
            [_as_source(c, start // per_file) for c in part],
            vectors[start : start + per_file],
        )
    t1 = time.perf_counter()
    store.build_indexes(hnsw.get("maintenance_work_mem", "1GB"))
    t2 = time.perf_counter()
    kind = store.built_index  # what `auto` chose for this many rows, or the kind asked for
    store.set_meta({"ef_search": hnsw["ef_search"]})
    retriever = PgvectorRetriever(store, syn.runner.embedder)
    qv = np.stack([syn.runner.embedder.encode_query(q) for q in queries]).astype(np.float32)
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    ids = np.array([chunk_id(f"synthetic/{j // per_file}.txt", j % per_file) for j in range(n)])
    wanted, tenth = [], []  # the exact top 10's ids, and its 10th cosine distance
    for q in qv:
        scores = vectors @ q
        top = np.argpartition(-scores, 10)[:10]
        wanted.append(set(ids[top].tolist()))
        tenth.append(1.0 - float(scores[top].min()))

    def sql_and_recall(knob: int) -> tuple[list[float], float, float]:
        """SQL latency, recall@10 by id, and recall@10 by distance as ann-benchmarks counts it (a hit
        within 1e-3 of the exact 10th distance counts): the synthetic copies of one chunk lie so
        close together that which of them makes the top 10 is often a tie by id alone. `knob` is
        ef_search for HNSW, probes for IVFFlat."""
        if kind == "ivfflat":
            store.probes = knob
        else:
            store.set_ef_search(knob)
        store.conn.execute(store._search_settings())  # the recall query below runs on this session
        sql = []  # the store's statement alone, without the query embedding
        for question, vector in zip(queries, qv, strict=True):
            t = time.perf_counter()
            store.hybrid_search(vector, question, 5, idf=retriever._lexicon.idf, avgdl=retriever._lexicon.avgdl)
            sql.append((time.perf_counter() - t) * 1000)
        recalls, by_distance = [], []
        for q, want, last in zip(qv, wanted, tenth, strict=True):
            rows = store.conn.execute(
                f"SELECT id, dense <=> %s FROM {store.table} ORDER BY dense <=> %s LIMIT 10", (q, q)
            ).fetchall()
            recalls.append(len(want & {int(r[0]) for r in rows}) / 10)
            by_distance.append(sum(float(r[1]) <= last + 1e-3 for r in rows) / 10)
        return sql, float(np.mean(recalls)), float(np.mean(by_distance))

    knob_name = "probes" if kind == "ivfflat" else "ef_search"
    chosen = (store.probes or ivfflat_probes(store.lists or 1)) if kind == "ivfflat" else hnsw["ef_search"]
    for knob in [e for e in hnsw.get("sweep", ()) if e != chosen]:
        sql, recall, near = sql_and_recall(knob)
        print(
            f"  pgvector {n:,} {knob_name} {knob}: SQL {pct(sql, 50):.1f}/{pct(sql, 95):.1f} ms, "
            f"recall@10 {recall:.3f} by id, {near:.3f} by distance",
            flush=True,
        )
    sql, recall, near = sql_and_recall(chosen)
    lat = time_questions(retriever, queries)  # the whole retrieve at the chosen knob
    print(
        f"  pgvector {n:,}: the SQL statement alone {pct(sql, 50):.1f} ms p50, {pct(sql, 95):.1f} ms p95; "
        f"recall@10 {recall:.3f} by id, {near:.3f} by distance",
        flush=True,
    )
    size = store.conn.execute("SELECT pg_total_relation_size(%s::regclass)", (store.table,)).fetchone()
    store.drop()
    store.close()
    return {
        "store": (
            f"pgvector IVFFlat lists {store.lists} probes {chosen}"
            if kind == "ivfflat"
            else f"pgvector HNSW m {hnsw['m']} ef_construction {hnsw['ef_construction']} ef_search {chosen}"
        ),
        "p50": pct(lat, 50),
        "p95": pct(lat, 95),
        "recall": recall,
        "index_s": t2 - t0,
        "bm25_s": t2 - t1,  # here: the postings b-tree and HNSW index builds after the rows were loaded
        "bytes_per_chunk": float(size[0]) / n if size else float("nan"),  # on the server's disk
    }


def _as_source(chunk: Any, file_no: int) -> Any:
    from dataclasses import replace

    return replace(chunk, source=f"synthetic/{file_no}.txt")


def bench_retrieval(
    sizes: list[int],
    milvus_max: int,
    pgvector_max: int = 0,
    pgvector_dsn: str | None = None,
    hnsw: dict[str, Any] | None = None,
    stores: tuple[str, ...] = ("faiss", "milvus", "pgvector"),
) -> None:
    """`pgvector_max` > 0 adds a pgvector row up to that size, on `pgvector_dsn` or, without one,
    on a throw-away server started as the tests do (tests/pg_server.py)."""
    import contextlib

    import faiss

    syn = Synthetic()
    queries = syn.questions
    print(f"\n## One question's retrieval (query embedding, dense, BM25, fusion), {len(queries)} real questions")
    print(f"faiss threads {faiss.omp_get_max_threads()}")
    print(
        "chunks | store | p50 ms | p95 ms | recall@10 vs exact | index build s | BM25 build s | BM25 load s "
        "| bytes per chunk"
    )
    hnsw = hnsw or {"m": 16, "ef_construction": 64, "ef_search": 300}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as servers:
        dsn = pgvector_dsn
        if "pgvector" in stores and pgvector_max and dsn is None:
            from tests.pg_server import start_server

            server, folder = start_server(
                {"shared_buffers": "4GB", "max_parallel_workers": "2", "max_parallel_maintenance_workers": "2"}
            )
            servers.callback(folder.cleanup)
            servers.callback(server.stop)
            dsn = server.dsn
        for n in sizes:
            rows = [bench_faiss(syn, n, queries, Path(tmp))] if "faiss" in stores else []
            if "milvus" in stores and n <= milvus_max:
                rows.append(bench_milvus(syn, n, queries, Path(tmp)))
            if "pgvector" in stores and dsn and n <= pgvector_max:
                rows.append(bench_pgvector(syn, n, queries, dsn, hnsw))
            for r in rows:
                print(
                    f"{n:,} | {r['store']} | {r['p50']:.1f} | {r['p95']:.1f} | {r['recall']:.3f} | "
                    f"{r['index_s']:.1f} | {r['bm25_s']:.1f} | {r.get('bm25_load_s', 0.0):.1f} | "
                    f"{r['bytes_per_chunk']:.0f}",
                    flush=True,
                )


def main() -> None:
    from evals.corpora import CORPORA

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", nargs="?", choices=["build", "retrieval", "all"], default="all")
    parser.add_argument("--corpus", action="append", choices=list(CORPORA))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-old", action="store_true", help="skip the old build (chunks + sentences)")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--milvus-max", type=int, default=100_000, help="largest size run on Milvus Lite")
    parser.add_argument(
        "--pgvector-max", type=int, default=0, help="largest size run on PostgreSQL + pgvector (0: none)"
    )
    parser.add_argument(
        "--pgvector-dsn", help="a PostgreSQL database with pgvector (default: start a throw-away server)"
    )
    parser.add_argument("--hnsw-m", type=int, default=16)
    parser.add_argument("--hnsw-ef-construction", type=int, default=64)
    parser.add_argument("--hnsw-ef-search", type=int, default=300)
    parser.add_argument(
        "--maintenance-work-mem",
        default="1GB",
        help="PostgreSQL's memory for the index builds (the graph fits or spills)",
    )
    parser.add_argument(
        "--hnsw-sweep", default="", help="more ef_search (or probes) values to report SQL latency and recall at"
    )
    parser.add_argument(
        "--pgvector-index", choices=["auto", "hnsw", "ivfflat"], default="auto", help="pgvector's dense index"
    )
    parser.add_argument("--probes", type=int, default=0, help="IVFFlat cells a search scans (0: 2·sqrt(lists))")
    parser.add_argument("--stores", default="faiss,milvus,pgvector", help="which stores to time, comma-separated")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores")
    if args.part in ("build", "all"):
        bench_build(args.corpus or list(CORPORA), args.rounds, not args.no_old)
    if args.part in ("retrieval", "all"):
        bench_retrieval(
            [int(x) for x in args.sizes.split(",")],
            args.milvus_max,
            args.pgvector_max,
            args.pgvector_dsn,
            {
                "m": args.hnsw_m,
                "ef_construction": args.hnsw_ef_construction,
                "ef_search": args.hnsw_ef_search,
                "sweep": tuple(int(x) for x in args.hnsw_sweep.split(",") if x),
                "maintenance_work_mem": args.maintenance_work_mem,
                "index": args.pgvector_index,
                "probes": args.probes,
            },
            tuple(args.stores.split(",")),
        )


if __name__ == "__main__":
    main()
