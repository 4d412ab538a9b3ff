"""The eval harness's own arithmetic: scores, aggregates, the gate's messages. Pure functions, no model."""

from __future__ import annotations

import json

from evals import harness
from evals.metrics import Case, Outcome, aggregate, answer_scores, failing_cases, key_facts_present


def _case(**kw) -> Case:  # type: ignore[no-untyped-def]
    base = {
        "id": "q",
        "question": "What breed?",
        "reference": "Pungsan dogs.",
        "key_facts": [["Pungsan"]],
        "gold_sources": ["seeds/a.txt"],
        "answerable": True,
        "category": "single_fact",
    }
    return Case(**{**base, **kw})


def _cite(source: str, n: int = 1) -> dict:  # type: ignore[type-arg]
    return {
        "id": n,
        "source": source,
        "start_line": 1,
        "end_line": 1,
        "text": "Kim gave Pungsan dogs.",
        "score": 1.0,
    }


def test_key_facts_need_every_fact_and_accept_alternatives() -> None:
    facts = [["Aurus", "Aurus automaker"], ["tea set"]]
    assert key_facts_present("An Aurus limousine and a tea set [1].", facts)
    assert not key_facts_present("An Aurus limousine [1].", facts)


def test_citation_precision_counts_wrong_files_and_names_the_question() -> None:
    good = Outcome(_case(id="good"), answer="Pungsan dogs [1].", refused=False, citations=[_cite("seeds/a.txt")])
    wrong = Outcome(_case(id="wrong"), answer="Pungsan dogs [1].", refused=False, citations=[_cite("seeds/b.txt")])
    assert answer_scores(wrong)["citation_precision"] == 0.0
    agg = aggregate([good, wrong], with_answers=True)
    assert agg["citation_precision"] == 0.5
    assert failing_cases([good, wrong], "citation_precision") == ["wrong"]


def test_refusals_are_scored_on_both_sides() -> None:
    refused_ok = Outcome(_case(id="u", answerable=False, key_facts=[], gold_sources=[]), answer="no", refused=True)
    refused_bad = Outcome(_case(id="a"), answer="I cannot answer that.", refused=True)
    agg = aggregate([refused_ok, refused_bad], with_answers=True)
    assert agg["refusal_accuracy"] == 1.0 and agg["false_refusal_rate"] == 1.0 and agg["key_fact_accuracy"] == 0.0


def test_gate_names_the_metric_and_questions_and_targets_are_reported_apart() -> None:
    bad = Outcome(_case(id="missed"), answer="Some dogs [1].", refused=False, citations=[_cite("seeds/a.txt")])
    agg = aggregate([bad], with_answers=True)
    failures = harness.gate(agg, {"key_fact_accuracy": {"min": 0.5, "target": 0.9}}, [bad])
    assert failures == ["key_fact_accuracy = 0.000, wanted >= 0.5; questions: missed"]
    assert harness.gate(agg, {"key_fact_accuracy": {"min": 0.0, "target": 0.9}}, [bad]) == []
    assert harness.below_target(agg, {"key_fact_accuracy": {"min": 0.0, "target": 0.9}}) == [
        "key_fact_accuracy = 0.000, target >= 0.9"
    ]


def test_thresholds_file_has_both_tiers_and_the_issue_targets() -> None:
    fast, full = harness.load_thresholds("fast"), harness.load_thresholds("full")
    assert fast["hit_at_5"]["min"] >= 0.98
    issue_bars = {
        "key_fact_accuracy": ("min", 0.90),
        "refusal_accuracy": ("min", 0.90),
        "false_refusal_rate": ("max", 0.05),
        "citation_precision": ("min", 0.95),
        "hit_at_5": ("min", 0.98),
    }
    for metric, (side, bar) in issue_bars.items():  # the gate is the issue's bar, not a softer one
        assert full[metric][side] >= bar if side == "min" else full[metric][side] <= bar


def test_every_corpus_is_gated_and_aims_at_issue_18s_bars() -> None:
    from evals.corpora import CORPORA

    bars = {
        "key_fact_accuracy": ("min", 0.85),
        "refusal_accuracy": ("min", 0.90),
        "false_refusal_rate": ("max", 0.08),
        "citation_precision": ("min", 0.95),
        "context_recall": ("min", 0.90),
    }
    for name in CORPORA:
        fast, full = harness.load_thresholds("fast", name), harness.load_thresholds("full", name)
        assert "hit_at_5" in fast and "context_recall" in fast, name
        for metric, (side, bar) in bars.items():  # gated, and aiming at least as high as the issue
            assert side in full[metric], (name, metric)
            aim = full[metric].get("target", full[metric][side])
            assert aim >= bar if side == "min" else aim <= bar, (name, metric)


def test_context_recall_tells_a_context_miss_from_a_misreading() -> None:
    src = ["seeds/a.txt"]
    in_context = Outcome(_case(id="read"), retrieved_sources=src, context="Kim gave Putin two Pungsan dogs.")
    missing = Outcome(_case(id="miss"), retrieved_sources=src, context="Kim gave Putin two dogs.")
    over_http = Outcome(_case(id="http"), retrieved_sources=src)  # no context to score
    agg = aggregate([in_context, missing, over_http], with_answers=False)
    assert agg["context_recall"] == 0.5
    assert agg["hit_at_1"] == 1.0
    assert failing_cases([in_context, missing, over_http], "context_recall") == ["miss"]
    assert aggregate([over_http], with_answers=False)["context_recall"] is None
    failures = harness.gate(agg, {"context_recall": {"min": 0.9}}, [in_context, missing, over_http])
    assert failures == ["context_recall = 0.500, wanted >= 0.9; questions: miss"]


def test_a_live_server_run_is_not_gated_on_retrieval_it_cannot_see() -> None:
    answered = Outcome(_case(id="live"), answer="Pungsan dogs [1].", refused=False, citations=[_cite("seeds/a.txt")])
    agg = aggregate([answered], with_answers=True)
    assert agg["hit_at_5"] is None and agg["context_recall"] is None  # no ranks over HTTP
    bars = {"hit_at_5": {"min": 0.98}, "context_recall": {"min": 0.92}, "key_fact_accuracy": {"min": 0.9}}
    assert [f.split(" =")[0] for f in harness.gate(agg, bars, [answered])] == ["hit_at_5", "context_recall"]
    live = harness.applicable(bars, measures_retrieval=False)
    assert live == {"key_fact_accuracy": {"min": 0.9}}
    assert harness.gate(agg, live, [answered]) == []
    assert harness.applicable(bars, measures_retrieval=True) == bars


def test_the_report_keeps_the_previous_run_and_shows_what_the_check_changed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    thresholds = {"key_fact_accuracy": {"min": 0.5, "target": 0.9}}
    fixed = Outcome(
        _case(id="fixed"),
        answer="Pungsan dogs [1].",
        model_output="Pungsan dogs [7].",
        refused=False,
        citations=[_cite("seeds/a.txt")],
    )
    refused = Outcome(
        _case(id="refused"),
        answer="I cannot answer that from the provided sources.",
        model_output="Russia sanctioned Russia [1].",
        refused=True,
    )
    first = aggregate([fixed], with_answers=True)
    harness.write_report("full", first, thresholds, [fixed], 1.0, "m", tmp_path)
    second = aggregate([fixed, refused], with_answers=True)
    path = harness.write_report("full", second, thresholds, [fixed, refused], 2.0, "m", tmp_path)

    report = json.loads(path.read_text())
    assert report["previous_aggregates"]["key_fact_accuracy"] == 1.0
    assert report["aggregates"]["key_fact_accuracy"] == 0.5
    assert (tmp_path / "previous.json").exists()
    assert [q["model_output"] for q in report["questions"]] == ["Pungsan dogs [7].", "Russia sanctioned Russia [1]."]
    assert report["below_target"] and report["below_target"][0].startswith("key_fact_accuracy")
    page = (tmp_path / "latest.md").read_text()
    assert "| key_fact_accuracy | 0.500 | 1.000 | >= 0.5 | ok | 0.9 (missed) |" in page
    assert (
        "(refused) I cannot answer that from the provided sources. (model wrote: Russia sanctioned Russia [1].)" in page
    )
    assert not list(tmp_path.glob("*.tmp"))


def test_calibration_turns_answers_above_the_threshold_into_refusals() -> None:
    from evals.calibrate import figures

    def row(answerable: bool, p: float | None, key: float = 1.0, refused: bool = False) -> dict[str, object]:
        cites = [] if refused else [{"source": "a.txt"}]
        scores = {"key_facts": key} if answerable else {}
        return {"answerable": answerable, "refused": refused, "refusal_p": p, "citations": cites,
                "gold_sources": ["a.txt"], "scores": scores}  # fmt: skip

    rows = [row(True, 0.1), row(True, 0.6), row(False, 0.7), row(False, None, refused=True)]
    assert figures(rows, 1.0) == {"key_facts": 1.0, "refusals": 0.5, "false_refusals": 0.0, "citation_precision": 1.0}
    assert figures(rows, 0.5) == {"key_facts": 0.5, "refusals": 1.0, "false_refusals": 0.5, "citation_precision": 1.0}
