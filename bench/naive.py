"""The naive pipeline issue 18 compares citeqa with, on every eval corpus: the same documents, the
same embedding model and the same LLM, but 200-token chunks cut with no regard for structure, the
top 4 by cosine, one prompt, and no checks of any kind. It answers the main split's questions and
prints the figures the eval gate reports, so the two can be put side by side:

- key-fact accuracy (every key fact in the answer), refusal accuracy (an unanswerable question
  answered with a refusal phrase), false refusals;
- context recall: the share of answerable questions whose key facts are all in the 4 chunks;
- prompt tokens and answer time p50.

It tells how much of the gap to the gate's bars the model leaves: what the same model does with
more text and no checks.

    python bench/naive.py [--corpus NAME] [--limit N]

Only the main splits are used: the held-out splits are never tuned on.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

CHUNK_TOKENS = 200
TOP = 4
PROMPT = (
    "Answer the question using only the context below. Cite the passages you use as [1], [2]. "
    "If the context does not contain the answer, say: I cannot answer that from the provided sources.\n\n"
    "Context:\n{context}\n\nQuestion: {question}\nAnswer:"
)


def chunks_of(text: str) -> list[str]:
    from index.tokens import get_encoding

    enc = get_encoding()
    ids = enc.encode(text)
    return [enc.decode(ids[i : i + CHUNK_TOKENS]) for i in range(0, len(ids), CHUNK_TOKENS)]


def main() -> None:
    import numpy as np
    from machine import cpu_model, pct  # bench/machine.py

    from evals.corpora import CORPORA
    from evals.harness import InProcess
    from evals.metrics import key_facts_present
    from index.builder import BuildReport, read_documents
    from index.tokens import count_tokens
    from service.answer.citations import is_refusal
    from service.llm.client import complete

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", action="append", choices=list(CORPORA))
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions of each corpus")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores")
    print(
        "corpus | questions | key facts | refusal accuracy | false refusals | context recall "
        "| prompt tokens p50 | answer s p50"
    )
    for name in args.corpus or list(CORPORA):
        corpus = CORPORA[name]
        runner = InProcess(corpus, with_llm=True)  # the configured LLM and embedder, loaded as the gate does
        texts = [c for doc in read_documents(corpus.docs, BuildReport()) for c in chunks_of(doc.text)]
        vectors = np.asarray(runner.embedder.encode_documents(texts), dtype=np.float32)
        cases = corpus.load("main")
        cases = cases[: args.limit] if args.limit else cases
        right = refused_right = false_refusals = in_context = 0
        tokens: list[float] = []
        seconds: list[float] = []
        for case in cases:
            query = np.asarray(runner.embedder.encode_query(case.question), dtype=np.float32)
            top = np.argsort(-(vectors @ query))[:TOP]
            context = "\n\n".join(f"[{i + 1}] {texts[j]}" for i, j in enumerate(top))
            prompt = PROMPT.format(context=context, question=case.question)
            tokens.append(count_tokens(prompt))
            started = time.perf_counter()
            answer = asyncio.run(complete(runner.answerer.llm, [{"role": "user", "content": prompt}], max_tokens=200))
            seconds.append(time.perf_counter() - started)
            refused = is_refusal(answer)
            if case.answerable:
                right += (not refused) and key_facts_present(answer, case.key_facts)
                false_refusals += refused
                in_context += key_facts_present(context, case.key_facts)
            else:
                refused_right += refused
        answerable = sum(c.answerable for c in cases) or 1
        unanswerable = (len(cases) - sum(c.answerable for c in cases)) or 1
        print(
            f"{name} | {len(cases)} | {right / answerable:.3f} | {refused_right / unanswerable:.3f} | "
            f"{false_refusals / answerable:.3f} | {in_context / answerable:.3f} | {pct(tokens, 50):.0f} | "
            f"{statistics.median(seconds):.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
