"""The held-out questions of every corpus: written apart from the main splits and never tuned on.

    python -m evals.heldout [--corpus postgresql]     # or: make eval-heldout

The main splits are what changes are measured and tuned against, so their figures flatter the
system a little. The held-out splits (evals/corpora.py) were written by helpers who saw neither
the code nor the main questions. Keep them out of tuning: decide a change on the main splits, then
look here. `pytest evals/` runs them beside the main splits too; this runs them alone. Reported
(`evals/report/<corpus>/heldout/`, and the gap in `evals/report/summary.md`), never gated.
"""

from __future__ import annotations

import argparse
import sys
import time

SHOWN = ("key_fact_accuracy", "refusal_accuracy", "false_refusal_rate", "citation_precision", "context_recall")


def main(argv: list[str] | None = None) -> int:
    from evals import harness
    from evals.corpora import CORPORA
    from evals.metrics import aggregate

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", action="append", choices=list(CORPORA), help="default: every corpus")
    args = parser.parse_args(argv)
    for name in args.corpus or list(CORPORA):
        corpus = CORPORA[name]
        cases = corpus.load("heldout")
        started = time.perf_counter()
        runner = harness.InProcess(corpus, with_llm=True)
        outcomes = harness.run(runner, cases)
        agg = aggregate(outcomes, with_answers=True)
        path = harness.write_report(
            "held-out",
            agg,
            {},  # reported, not gated
            outcomes,
            time.perf_counter() - started,
            runner.settings.llm_model,
            harness.REPORT_DIR / name / "heldout",
            corpus=name,
        )
        print(f"{name}, held-out: {len(cases)} questions; report: {path}")
        for metric in SHOWN:
            value = agg.get(metric)
            print(f"  {metric:20s} {'n/a' if value is None else f'{value:.3f}'}")
        del runner
    print(f"summary: {harness.write_summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
