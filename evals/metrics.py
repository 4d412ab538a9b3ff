"""Per-question scores and aggregates for the evals. Pure functions: no model, no I/O."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.schemas import ran

_WORD = re.compile(r"[a-z0-9]+")
_MARKER = re.compile(r"\s*\[\d+\]")
RETRIEVAL_METRICS = ("hit_at_1", "hit_at_5", "recall_at_5", "mrr", "context_recall")


@dataclass
class Case:
    id: str
    question: str
    reference: str
    key_facts: list[list[str]]
    gold_sources: list[str]
    answerable: bool
    category: str


@dataclass
class Outcome:
    case: Case
    retrieved_sources: list[str] = field(default_factory=list)  # ranked chunk sources, may repeat
    context: str | None = None  # the passages the LLM is shown (in-process runs only)
    answer: str | None = None
    model_output: str | None = None  # what the LLM wrote before the citation check (in-process runs only)
    second_look: str | None = None  # "kept", "vetoed" or "failed": see service/answer/second_look.py (in-process only)
    refusal_p: float | None = None  # the second look's probability of a refusal, when read from token probabilities
    refused: bool | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    judge: dict[str, float] = field(default_factory=dict)


def normalise(text: str) -> str:
    return " ".join(_MARKER.sub("", text).lower().replace("’", "'").split())


def key_facts_present(answer: str, key_facts: list[list[str]]) -> bool:
    text = normalise(answer)
    return all(any(alt.lower() in text for alt in alternatives) for alternatives in key_facts)


def token_f1(answer: str, reference: str) -> float:
    a, r = _WORD.findall(normalise(answer)), _WORD.findall(normalise(reference))
    common = sum((Counter(a) & Counter(r)).values())
    if not a or not r or not common:
        return 0.0
    precision, recall = common / len(a), common / len(r)
    return 2 * precision * recall / (precision + recall)


def ranked_files(sources: list[str]) -> list[str]:
    return list(dict.fromkeys(sources))


def retrieval_scores(o: Outcome, k: int = 5) -> dict[str, float]:
    files = ranked_files(o.retrieved_sources[:k])
    gold = set(o.case.gold_sources)
    rank = next((i for i, f in enumerate(ranked_files(o.retrieved_sources)) if f in gold), None)
    scores = {
        "hit_at_1": float(bool(files[:1]) and files[0] in gold),
        "hit_at_5": float(any(f in gold for f in files)),
        "recall_at_5": len(gold & set(files)) / len(gold),
        "mrr": 0.0 if rank is None else 1.0 / (rank + 1),
    }
    if o.context is not None:
        # Every key fact is in the passages the LLM sees: the ceiling on key-fact accuracy, and
        # what tells a context miss from a misreading model.
        scores["context_recall"] = float(key_facts_present(o.context, o.case.key_facts))
    return scores


def _support(sentence: str, passage: str) -> float:
    words = set(_WORD.findall(normalise(sentence))) - {"the", "a", "an", "of", "and", "to", "in", "was", "is"}
    if not words:
        return 1.0
    return len(words & set(_WORD.findall(normalise(passage)))) / len(words)


def unsupported_citations(o: Outcome) -> tuple[int, int]:
    """(unsupported, total) over the answer's cited sentences: a citation is unsupported when
    fewer than 40% of its sentence's words occur in the cited passage (an independent, cruder
    check than the service's own)."""
    by_id = {c["id"]: c for c in o.citations}
    unsupported = total = 0
    for sentence in re.split(r"(?<=[.!?])\s+", o.answer or ""):
        for n in re.findall(r"\[(\d+)\]", sentence):
            total += 1
            cite = by_id.get(int(n))
            if cite is None or _support(sentence, cite["text"]) < 0.4:
                unsupported += 1
    return unsupported, total


def answer_scores(o: Outcome) -> dict[str, float | None]:
    c = o.case
    answered = bool(o.answer) and not o.refused and o.error is None
    cited = {x["source"] for x in o.citations}
    scores: dict[str, float | None] = {"refused": float(bool(o.refused))}
    if c.answerable:
        scores["key_facts"] = float(answered and key_facts_present(o.answer or "", c.key_facts))
        scores["f1"] = token_f1(o.answer or "", c.reference) if answered else 0.0
        scores["citation_precision"] = (
            (len([x for x in o.citations if x["source"] in c.gold_sources]) / len(o.citations)) if o.citations else None
        )
        scores["citation_recall"] = len(cited & set(c.gold_sources)) / len(c.gold_sources)
        scores["has_citation"] = float(bool(o.citations)) if answered else None
    else:
        scores["correct_refusal"] = float(bool(o.refused))
    return scores


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def aggregate(outcomes: list[Outcome], with_answers: bool) -> dict[str, float | None]:
    answerable = [o for o in outcomes if o.case.answerable]
    agg: dict[str, float | None] = {}
    retrieval = [retrieval_scores(o) for o in answerable if o.retrieved_sources]
    for key in RETRIEVAL_METRICS:
        values = [r[key] for r in retrieval if key in r]
        agg[key] = float(np.mean(values)) if values else None
    if not with_answers:
        return agg
    per = [(o, answer_scores(o)) for o in outcomes]
    ans = [s for o, s in per if o.case.answerable]
    una = [s for o, s in per if not o.case.answerable]
    agg["key_fact_accuracy"] = float(np.mean([s["key_facts"] for s in ans])) if ans else None
    agg["token_f1"] = float(np.mean([s["f1"] for s in ans])) if ans else None
    all_cites = [x for o in answerable for x in o.citations]
    agg["citation_precision"] = (
        len([x for o in answerable for x in o.citations if x["source"] in o.case.gold_sources]) / len(all_cites)
        if all_cites
        else None
    )
    agg["citation_recall"] = float(np.mean([s["citation_recall"] for s in ans])) if ans else None
    has = [s["has_citation"] for s in ans if s["has_citation"] is not None]
    agg["answers_with_citation"] = float(np.mean(has)) if has else None
    unsup = [unsupported_citations(o) for o in outcomes]
    total = sum(t for _, t in unsup)
    agg["unsupported_citation_rate"] = sum(u for u, _ in unsup) / total if total else 0.0
    agg["refusal_accuracy"] = float(np.mean([s["correct_refusal"] for s in una])) if una else None
    agg["false_refusal_rate"] = float(np.mean([s["refused"] for s in ans])) if ans else None
    agg["errors"] = float(sum(1 for o in outcomes if o.error))
    for stage in ("retrieve", "generate", "confirm", "total"):
        values = [o.timings_ms[stage] for o in outcomes if ran(stage, o.timings_ms)]
        agg[f"{stage}_ms_p50"] = percentile(values, 50)
        agg[f"{stage}_ms_p95"] = percentile(values, 95)
    judged = [o.judge["faithfulness"] for o in outcomes if "faithfulness" in o.judge]
    if judged:
        agg["judge_faithfulness"] = float(np.mean(judged))
    return agg


def _below_one(score: float | None) -> bool:
    return score is not None and score < 1.0


def failing_cases(outcomes: list[Outcome], metric: str) -> list[str]:
    """The questions that pull `metric` down, for the gate's failure message."""
    bad = []
    for o in outcomes:
        if metric in RETRIEVAL_METRICS:
            if o.case.answerable and o.retrieved_sources and retrieval_scores(o).get(metric, 1.0) < 1.0:
                bad.append(o.case.id)
            continue
        s = answer_scores(o)
        if (
            (metric == "key_fact_accuracy" and s.get("key_facts") == 0.0)
            or (metric == "refusal_accuracy" and s.get("correct_refusal") == 0.0)
            or (metric == "false_refusal_rate" and o.case.answerable and s["refused"])
            or (metric == "citation_precision" and _below_one(s.get("citation_precision")))
            or (metric == "answers_with_citation" and s.get("has_citation") == 0.0)
            or (metric == "unsupported_citation_rate" and unsupported_citations(o)[0] > 0)
        ):
            bad.append(o.case.id)
    return bad
