"""The eval corpora: each a folder of documents, a main split and a held-out split of questions.

Two genres, so that a rule which only fits one of them shows up: `seeds`, four news articles
(plain text), and `postgresql`, 84 pages of the PostgreSQL 15 manual (HTML: prose, option lists,
tables, code). Each is gated on its own (evals/thresholds.toml) and reported on its own
(evals/report/<name>/). The held-out splits were written apart from everything else and are never
tuned on: decide a change on the main splits, then look at the held-out ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.metrics import Case

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"


# Fields a case may carry for its reviewer only: `feedback` is what `citeqa feedback export` keeps
# of the rating a case was drafted from (the bad answer, the comment, the citations).
REVIEW_FIELDS = frozenset({"feedback"})


def parse_case(record: dict[str, Any]) -> Case:
    """A case from one JSONL line. Review-only fields are dropped; any other unknown field is still
    an error (a misspelt field must not be lost), and so is a feedback draft not yet filled in."""
    fields = {k: v for k, v in record.items() if k not in REVIEW_FIELDS}
    name = fields.get("id", "?")
    if not isinstance(fields.get("answerable"), bool):
        raise ValueError(f"case {name}: answerable must be true or false (a feedback draft not yet reviewed?)")
    if "TODO" in str(fields.get("reference", "")) or (fields["answerable"] and not fields.get("key_facts")):
        raise ValueError(f"case {name}: fill in reference and key_facts (a feedback draft not yet reviewed?)")
    return Case(**fields)


@dataclass(frozen=True)
class Corpus:
    name: str
    docs: Path  # the corpus folder, as `CITEQA_CORPUS_DIR` would name it
    main: Path
    heldout: Path
    min_questions: int  # what the main split must hold at least (issue bars)
    min_unanswerable: int

    def load(self, split: str = "main") -> list[Case]:
        """The questions of a split. A gold source given as a bare file name ("sql-copy.html") is
        named as citations name it ("docs/sql-copy.html")."""
        path = self.main if split == "main" else self.heldout
        cases = [parse_case(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
        for case in cases:
            case.gold_sources = [g if "/" in g else f"{self.docs.name}/{g}" for g in case.gold_sources]
        return cases

    def sources(self) -> set[str]:
        """Every source name the corpus can be cited by."""
        return {f"{self.docs.name}/{p.relative_to(self.docs).as_posix()}" for p in self.docs.rglob("*") if p.is_file()}


CORPORA: dict[str, Corpus] = {
    c.name: c
    for c in (
        Corpus("seeds", ROOT / "seeds", DATA / "qa.jsonl", DATA / "heldout.jsonl", 60, 12),
        Corpus(
            "postgresql",
            HERE / "corpora" / "postgresql-15" / "docs",
            DATA / "postgresql" / "qa.jsonl",
            DATA / "postgresql" / "heldout.jsonl",
            80,
            20,
        ),
    )
}
