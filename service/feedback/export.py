"""Thumbs-down ratings as draft eval cases, in the JSONL format of evals/data/*.jsonl.

A draft cannot be used as it is, on purpose: only a person knows what the right answer was, so
`reference` is "TODO", `key_facts` and `gold_sources` are empty, and `answerable` is null. The eval
loader (evals/corpora.py) refuses a case with any of those left unfilled, and ignores the
`feedback` field, which keeps what went wrong (the bad answer, the comment, the citations, the
model) beside the draft for the reviewer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TextIO

from service.feedback.store import FeedbackRecord, FeedbackStore

TODO = "TODO"
REVIEW_NOTE = (
    "Decide answerable (true/false); write reference; list key_facts ([[synonyms...], ...]) and "
    "gold_sources for an answerable case (both [] for an unanswerable one); then move the line into "
    "evals/data/*.jsonl. The loader ignores this `feedback` field."
)


def draft(record: FeedbackRecord) -> dict[str, Any]:
    """One eval draft; the field names are those of evals.metrics.Case, plus `feedback`."""
    return {
        "id": f"feedback-{record.id}",
        "question": record.question,
        "reference": TODO,
        "key_facts": [],
        "gold_sources": [],
        "answerable": None,
        "category": "feedback",
        "feedback": {
            "note": REVIEW_NOTE,
            "feedback_id": record.id,
            "created_at": record.created_at.isoformat(),
            "rating": record.rating,
            "answer": record.answer,
            "refused": record.refused,
            "comment": record.comment,
            "model": record.model,
            "request_id": record.request_id,
            "cited_sources": sorted({str(c.get("source", "")) for c in record.citations if c.get("source")}),
            "citations": record.citations,
        },
    }


def write_drafts(records: Iterable[FeedbackRecord], out: TextIO) -> int:
    n = 0
    for record in records:
        out.write(json.dumps(draft(record), ensure_ascii=False) + "\n")
        n += 1
    return n


def export_drafts(store: FeedbackStore, out: TextIO, since: datetime | None = None) -> int:
    """Write every thumbs-down from `since` on to `out`; returns how many."""
    return write_drafts(store.records(rating="down", since=since), out)
