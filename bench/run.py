"""citeqa benchmark: prints index build speed, retrieval latency and answer latency.

    make bench            # or: .venv/bin/python bench/run.py [--answers N] [--skip-answers]

Figures are wall-clock on this machine; run it on a quiet machine and compare runs, not machines.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ANSWER_QUESTIONS = [
    "What breed of dog did Kim give Putin?",
    "Which company made the limousine?",
    "Where did Putin go after leaving North Korea?",
    "How long had it been since Putin last visited North Korea?",
    "What did Kim call the new treaty?",
    "Who is Russia's ambassador to Vietnam?",
    "What did Putin give Kim besides the car?",
    "At which airport did Kim greet Putin?",
    "How long did Putin and Kim talk face-to-face?",
    "What did the U.S. Embassy in Hanoi say about Putin's visit?",
]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def bench_index(tmp: Path) -> None:
    from index.builder import build
    from index.embedder import SentenceTransformerEmbedder
    from service.settings import Settings

    s = Settings()
    embedder = SentenceTransformerEmbedder(s.embedding_model)
    for label, copies in (("seeds (4 files)", 1), ("seeds x25 (100 files)", 25)):
        corpus = tmp / f"corpus-{copies}" / "seeds"
        corpus.mkdir(parents=True)
        for i in range(copies):
            for f in sorted((ROOT / "seeds").iterdir()):
                # Vary each copy so no two files are identical.
                (corpus / f"{i:03d}-{f.name}").write_text(f"Copy {i}.\n" + f.read_text())
        started = time.perf_counter()
        report = build(corpus, tmp / f"index-{copies}", embedder, s.chunk_tokens, s.chunk_overlap)
        took = time.perf_counter() - started
        print(
            f"index build, {label}: {report.n_chunks} chunks, {report.n_embedded} texts embedded "
            f"in {took:.2f} s = {report.n_chunks / took:.1f} chunks/s ({report.n_embedded / took:.0f} texts/s)"
        )


def bench_retrieval(tmp: Path) -> None:
    from evals.corpora import CORPORA
    from index import store
    from index.builder import build
    from index.embedder import SentenceTransformerEmbedder
    from service.answer.context import Budget, select_passages
    from service.answer.question import Question
    from service.answer.retrieval import HybridRetriever
    from service.answer.sentence_vectors import SentenceVectors
    from service.settings import Settings

    s = Settings(index_dir=tmp / "index-seeds")
    embedder = SentenceTransformerEmbedder(s.embedding_model, query_backend=s.query_encoder)
    build(ROOT / "seeds", s.index_dir, embedder, s.chunk_tokens, s.chunk_overlap)
    data = store.load(s.index_dir)
    retriever = HybridRetriever(data, embedder, rrf_k=s.rrf_k)
    sentences = SentenceVectors(embedder.encode_documents)
    questions = [c.question for c in CORPORA["seeds"].load()]
    queries = [
        questions[i] if i < len(questions) else f"{questions[i % len(questions)]} (again {i})"
        for i in range(max(240, len(questions)))
    ]
    for q in queries[:10]:
        retriever.retrieve(q, s.top_k)  # warm-up
    retrieve_ms, context_ms = [], []
    budget = Budget.from_settings(s)
    for q in queries:
        t0 = time.perf_counter()
        result = retriever.retrieve(q, s.top_k)
        t1 = time.perf_counter()
        select_passages(sentences, result, Question.read(q), budget, retriever.rarity)
        t2 = time.perf_counter()
        retrieve_ms.append((t1 - t0) * 1000)
        context_ms.append((t2 - t1) * 1000)
    print(
        f"retrieval (embed query [{embedder.query_backend}] + FAISS + BM25 + fusion), {len(queries)} queries: "
        f"p50 {pct(retrieve_ms, 50):.1f} ms, p95 {pct(retrieve_ms, 95):.1f} ms"
    )
    print(f"context selection: p50 {pct(context_ms, 50):.2f} ms, p95 {pct(context_ms, 95):.2f} ms")


def bench_answers(corpus_name: str, n: int) -> None:
    """Time to first token and full answers on one eval corpus: the seeds' fixed questions, or
    the first `n` answerable main-split questions of another corpus (never the held-out ones)."""
    from evals import harness
    from evals.corpora import CORPORA
    from service.answer.pipeline import Done, Token
    from service.schemas import AskRequest

    corpus = CORPORA[corpus_name]
    t0 = time.perf_counter()
    runner = harness.InProcess(corpus, with_llm=True)  # the eval index, built or brought up to date
    answerer, s = runner.answerer, runner.settings
    print(f"[{corpus_name}] index and model load ({s.llm_model}): {time.perf_counter() - t0:.1f} s")

    async def one(question: str) -> tuple[float, float, int, bool]:
        started = time.perf_counter()
        first = None
        pieces = 0
        refused = False
        async for event in answerer.stream(AskRequest(question=question)):
            if isinstance(event, Token):
                pieces += 1
                if first is None:
                    first = time.perf_counter() - started
            elif isinstance(event, Done):
                refused = event.response.refused
        total = time.perf_counter() - started
        return (first if first is not None else total), total, pieces, refused

    pool = ANSWER_QUESTIONS if corpus_name == "seeds" else [c.question for c in corpus.load() if c.answerable]
    first_answer = asyncio.run(one(pool[0]))
    print(
        f"first answer after load (system prompt read at load): ttft {first_answer[0]:.2f} s, "
        f"total {first_answer[1]:.2f} s"
    )
    ttft, totals = [], []
    questions = (pool * ((n // len(pool)) + 1))[:n]
    for q in questions:
        first, total, pieces, refused = asyncio.run(one(q))
        ttft.append(first)
        totals.append(total)
        print(f"  {first:5.2f} s ttft  {total:5.2f} s total  {pieces:3d} pieces  {'refused ' if refused else ''}{q}")
    print(
        f"[{corpus_name}] answers, {len(questions)} questions, {s.llm_model}: "
        f"time to first token p50 {pct(ttft, 50):.2f} s, p95 {pct(ttft, 95):.2f} s; "
        f"full answer p50 {pct(totals, 50):.2f} s, p95 {pct(totals, 95):.2f} s; mean {statistics.mean(totals):.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--answers", type=int, default=len(ANSWER_QUESTIONS), help="questions to answer")
    parser.add_argument("--skip-answers", action="store_true", help="no LLM (index and retrieval only)")
    args = parser.parse_args()
    print(f"citeqa bench on {os.cpu_count()} cores")
    tmp = Path(tempfile.mkdtemp(prefix="citeqa-bench-"))
    try:
        bench_index(tmp)
        bench_retrieval(tmp)
        if not args.skip_answers:
            from evals.corpora import CORPORA

            for name in CORPORA:
                bench_answers(name, args.answers)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
