"""Context recall against context size, on every eval corpus: the curve the context budget is
chosen from (issue 18). No LLM: for each budget it builds exactly the passages the model would be
shown, and reports the share of answerable main-split questions whose key facts are all in them,
with the passages' mean and p95 size in tokens (what time to first token grows with: about 110
prompt tokens/s on 2 cores with AVX-512, 45 with AVX2 only).

    python bench/context_curve.py [--corpus NAME] [--tokens 260,400,600] [--windows 0,1,2]

Only the main splits are used: the held-out splits are never tuned on.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def main() -> None:
    from machine import pct  # bench/machine.py

    from evals import harness
    from evals.corpora import CORPORA
    from evals.metrics import key_facts_present
    from index.tokens import count_tokens
    from service.answer.context import Budget, select_context
    from service.answer.question import Question

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", action="append", choices=list(CORPORA))
    parser.add_argument("--tokens", default="260,400,600,800")
    parser.add_argument("--windows", default="0,1,2")
    parser.add_argument("--margins", default="0.25,none")

    args = parser.parse_args()
    sizes = [int(x) for x in args.tokens.split(",")]
    windows = [int(x) for x in args.windows.split(",")]
    margins = [None if x == "none" else float(x) for x in args.margins.split(",")]
    print("corpus | max tokens | window | margin | context recall | mean tokens | p95 tokens")
    for name in args.corpus or list(CORPORA):
        corpus = CORPORA[name]
        runner = harness.InProcess(corpus, with_llm=False)
        s = runner.settings
        cases = [c for c in corpus.load() if c.answerable]
        # Retrieval does not depend on the budget: once per question and part.
        retrieved = []
        for case in cases:
            question = Question.read(case.question)
            retrieved.append([(runner.retriever.retrieve(p.text, s.top_k), p) for p in question.parts])
        for size, window, margin in itertools.product(sizes, windows, margins):
            budget = Budget(size, s.context_max_sentences, margin, window)
            found, tokens = 0, []
            for case, parts in zip(cases, retrieved, strict=True):
                passages = select_context(runner.sentences, parts, budget, runner.retriever.rarity)
                text = "\n".join(p.labelled for p in passages)
                found += key_facts_present(text, case.key_facts)
                tokens.append(count_tokens(text))
            p95 = pct([float(t) for t in tokens], 95)
            print(
                f"{name} | {size} | {window} | {margin} | {found / len(cases):.3f} ({found}/{len(cases)}) "
                f"| {statistics.mean(tokens):.0f} | {p95:.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
