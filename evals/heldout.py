"""The held-out questions: a second, smaller set, written apart from the main one and never tuned on.

    python -m evals.heldout            # or: make eval-heldout

The main set (`evals/data/qa.jsonl`) is what changes are measured and tuned against, so its figures
flatter the system a little. These questions (`evals/data/heldout.jsonl`) were written without
seeing the main set, in two batches: after the 2026-11-24 tuning, and after the second look
(service/answer/second_look.py) was built. Over four short articles many of them ask for the
same facts in other words, which is still a check: a gain that only held for the main set's wording
would not show here. Keep them out of tuning: decide a change on the main set, then look here.
The run is reported (`evals/report/heldout/latest.json` and `.md`), not gated.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

HELDOUT = Path(__file__).resolve().parent / "data" / "heldout.jsonl"
SHOWN = ("key_fact_accuracy", "refusal_accuracy", "false_refusal_rate", "citation_precision", "context_recall")


def main() -> int:
    from evals import harness
    from evals.metrics import aggregate

    cases = harness.load_cases(HELDOUT)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        runner = harness.InProcess(Path(tmp), with_llm=True)
        outcomes = harness.run(runner, cases)
    agg = aggregate(outcomes, with_answers=True)
    path = harness.write_report(
        "held-out",
        agg,
        {},  # reported, not gated
        outcomes,
        time.perf_counter() - started,
        runner.settings.llm_model,
        harness.REPORT_DIR / "heldout",
    )
    print(f"held-out: {len(cases)} questions; report: {path}")
    for metric in SHOWN:
        value = agg.get(metric)
        print(f"  {metric:20s} {'n/a' if value is None else f'{value:.3f}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
