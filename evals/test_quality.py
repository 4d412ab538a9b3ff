"""The quality gate. Thresholds live in evals/thresholds.toml."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evals import harness
from evals.metrics import Case, aggregate


def _gate(run, tier: str, report_dir: Path) -> None:  # type: ignore[no-untyped-def]
    thresholds = harness.applicable(harness.load_thresholds(tier), run.in_process)
    agg = aggregate(run.outcomes, with_answers=tier == "full")
    path = harness.write_report(tier, agg, thresholds, run.outcomes, run.seconds, run.model, report_dir)
    summary = ", ".join(f"{k}={v:.3f}" for k, v in agg.items() if isinstance(v, float))
    print(f"\n{tier} tier: {len(run.outcomes)} questions in {run.seconds:.1f} s; {summary}\nreport: {path}")
    for line in harness.below_target(agg, thresholds):
        print(f"below target (not a failure): {line}")
    failures = harness.gate(agg, thresholds, run.outcomes)
    assert not failures, f"{tier} tier below its bar:\n  " + "\n  ".join(failures)


def _assert_well_formed(cases: list[Case]) -> None:
    seeds = {f"seeds/{p.name}" for p in (harness.ROOT / "seeds").iterdir()}
    assert len({c.id for c in cases}) == len(cases)
    for c in cases:
        assert c.question.strip() and c.reference.strip()
        if c.answerable:
            assert c.key_facts and set(c.gold_sources) <= seeds, c.id
        else:
            assert not c.key_facts and not c.gold_sources, c.id


def test_dataset_is_well_formed() -> None:
    cases = harness.load_cases()
    assert len(cases) >= 60 and sum(not c.answerable for c in cases) >= 12
    _assert_well_formed(cases)


def test_heldout_set_is_well_formed_and_apart_from_the_main_set() -> None:
    from evals.heldout import HELDOUT

    cases, main = harness.load_cases(HELDOUT), harness.load_cases()
    _assert_well_formed(cases)
    assert not {c.id for c in cases} & {c.id for c in main}
    assert not {c.question for c in cases} & {c.question for c in main}


def test_retrieval_gate(fast_run, report_dir: Path, request: pytest.FixtureRequest) -> None:  # type: ignore[no-untyped-def]
    # When the full tier runs in the same session its report supersedes this one.
    full = any("full" in item.keywords for item in request.session.items)
    _gate(fast_run, "fast", report_dir / "fast" if full else report_dir)


@pytest.mark.full
@pytest.mark.skipif(os.environ.get("CITEQA_EVAL_TIER") == "fast", reason="CITEQA_EVAL_TIER=fast")
def test_answer_quality_gate(full_run, report_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _gate(full_run, "full", report_dir)
