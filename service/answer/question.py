"""The question, read once.

Retrieval, context selection, the citation check, the answer-kind check and the second look all
need the same facts about a question: the sub-questions it is made of, its content words with all
their forms, whether it asks for a count (then "one" and "two" are claims), whether it is a yes/no
question (then restating it is an answer), and the kind of answer it asks for. `Question.read`
works them out once per question, and every stage reads them from the value. Every regular
expression that classifies a question lives here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from service.answer.words import all_forms, content_words, word_forms

# "..., and which city ...?" / "...? Where ...?": a question made of several questions.
_QUESTION_JOIN = re.compile(
    r"(?:,\s*|;\s*|\s+)and\s+(?=(?:what|which|who|whom|whose|where|when|why|how)\b)|(?<=\?)\s+(?=\S)", re.I
)
# Questions whose answer is a number: there "one" and "two" are claims, not filler.
_COUNT = re.compile(r"\bhow (?:many|much|long|often|old|far)\b", re.I)
_YES_NO = re.compile(r"^\s*(?:is|are|was|were|do|does|did|can|could|has|have|had|will|would|should)\b", re.I)
# The kinds of answer a question can fix by its form (answer_kinds.py holds what each looks like).
_ASKS_FOR: list[tuple[str, re.Pattern[str]]] = [
    ("colour", re.compile(r"\b(?:what|which)\s+colou?rs?\b|\bcolou?rs?\s+(?:was|were|is|are)\b", re.I)),
    ("count", re.compile(r"\bhow\s+many\b", re.I)),
    ("year", re.compile(r"\b(?:what|which)\s+year\b", re.I)),
    (
        "price",
        re.compile(
            r"\bhow\s+much\b(?!\s+time\b)[^?]*\b(?:cost|costs|pay|paid|price|worth|spend|spent|sell|sold)\b", re.I
        ),
    ),
]
MAX_PARTS = 3


def is_compound(question: str) -> bool:
    """True for a question joined from several ("..., and who ...?"), however short its parts."""
    return bool(_QUESTION_JOIN.search(question.strip()))


def question_parts(question: str, max_parts: int = MAX_PARTS) -> list[str]:
    """The sub-questions of a compound question, each retrieved for separately; a simple
    question is its own only part."""
    parts = [p.strip(" ,;") for p in _QUESTION_JOIN.split(question.strip())]
    parts = [p for p in parts if len(content_words(p)) >= 2]
    return parts[:max_parts] if len(parts) > 1 else [question]


def asked_kind(question: str) -> str | None:
    """The kind of answer the question fixes ("colour", "count", "year", "price"), or None. A
    compound question is not held to one: each part may ask for another kind."""
    if is_compound(question):
        return None
    return next((name for name, asks in _ASKS_FOR if asks.search(question)), None)


@dataclass(frozen=True, eq=False)
class Part:
    """One sub-question: the text retrieved for, and its content words with their forms."""

    text: str
    forms: dict[str, frozenset[str]]

    @classmethod
    def read(cls, text: str) -> Part:
        return cls(text, word_forms(text))


@dataclass(frozen=True, eq=False)
class Question:
    text: str
    parts: tuple[Part, ...]
    forms: dict[str, frozenset[str]]  # content words of the whole question, with their forms
    all_forms: frozenset[str]  # every form of every content word, number words included
    counts: bool  # asks how many, how much, how long...: "one" and "two" in an answer are claims
    yes_no: bool  # "Did Putin drive?": an answer restating the question still claims something
    kind: str | None  # the kind of answer asked for, see asked_kind

    @classmethod
    def read(cls, text: str) -> Question:
        forms = word_forms(text)
        return cls(
            text=text,
            parts=tuple(Part(text, forms) if p == text else Part.read(p) for p in question_parts(text)),
            forms=forms,
            all_forms=all_forms(text),
            counts=bool(_COUNT.search(text)),
            yes_no=bool(_YES_NO.match(text)),
            kind=asked_kind(text),
        )


NO_QUESTION = Question.read("")  # checks run without a question: every content word is a claim
