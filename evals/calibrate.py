"""Calibrate the second look's refusal threshold (CITEQA_CONFIRM_REFUSAL_P) from eval reports.

Run the evals once with the veto switched off, so every answer stands and its refusal probability
is recorded:

    CITEQA_CONFIRM_REFUSAL_P=1.0 pytest evals -k answer_quality --report-dir /tmp/cal
    python -m evals.calibrate --report-dir /tmp/cal

A veto only turns an answer into a refusal, and the model is deterministic, so the figures each
threshold would give follow exactly from that one run: an answer whose probability exceeds the
threshold becomes a refusal. The table shows every corpus and split; choose the threshold on the
main splits of every corpus together, and read the held-out rows only to see how it carries over.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from evals.corpora import CORPORA

GRID = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def figures(rows: list[dict[str, Any]], threshold: float) -> dict[str, float]:
    """Key-fact accuracy, refusal accuracy, false refusals and citation precision had answers whose
    refusal probability exceeds `threshold` been vetoed."""

    def refused(row: dict[str, Any]) -> bool:
        p = row.get("refusal_p")
        return bool(row["refused"]) or (p is not None and p > threshold)

    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    kept = [r for r in answerable if not refused(r)]
    cites = [c for r in kept for c in r["citations"]]
    good = [c for r in kept for c in r["citations"] if c["source"] in r["gold_sources"]]
    return {
        "key_facts": sum(r["scores"].get("key_facts", 0.0) for r in kept) / max(1, len(answerable)),
        "refusals": sum(refused(r) for r in unanswerable) / max(1, len(unanswerable)),
        "false_refusals": sum(refused(r) for r in answerable) / max(1, len(answerable)),
        "citation_precision": len(good) / len(cites) if cites else 0.0,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    print("| corpus | split | threshold | key facts | refusals | false refusals | citation precision |")
    print("|---|---|---|---|---|---|---|")
    for name in CORPORA:
        for split, path in (
            ("main", args.report_dir / name / "latest.json"),
            ("heldout", args.report_dir / name / "heldout" / "latest.json"),
        ):
            if not path.exists():
                continue
            rows = json.loads(path.read_text())["questions"]
            if not any(r.get("refusal_p") is not None for r in rows):
                print(f"| {name} | {split} | (no refusal probabilities recorded) | | | | |")
                continue
            for t in GRID:
                f = figures(rows, t)
                print(
                    f"| {name} | {split} | {t:.2f} | {f['key_facts']:.3f} | {f['refusals']:.3f} | "
                    f"{f['false_refusals']:.3f} | {f['citation_precision']:.3f} |"
                )


if __name__ == "__main__":
    main()
