"""The kind of answer a question asks for, when its form is recognisable, and whether an answer has it.

Asked "what colour was the limousine?", a small model answers with what the passages do say
about the limousine ("it was Russian-built"). Every word of that is in a passage, so the citation
check passes it, yet it does not answer the question. A question asking for a colour, a count, a
year or a price is held to it: an answer with no sentence of that form is refused. Questions of
any other kind, and questions in several parts, are not checked here.
"""

from __future__ import annotations

import re

from service.text import question_parts

_COLOURS = (
    "white|black|grey|gray|silver|red|crimson|scarlet|maroon|burgundy|pink|orange|yellow|gold|golden|"
    "beige|cream|brown|tan|bronze|green|olive|blue|navy|turquoise|teal|purple|violet|lilac"
)
_NUMBER = (
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|(?:thir|four|fif|six|seven|eigh|nine)teen|"
    r"(?:twen|thir|for|fif|six|seven|eigh|nine)ty|hundreds?|thousands?|millions?|billions?|dozens?|pair|couple|"
    r"both|twice|thrice|once|several|few|handful|many|numerous|multiple|no|none)\b"
)
_KINDS: list[tuple[str, re.Pattern[str], re.Pattern[str]]] = [
    (
        "colour",
        re.compile(r"\b(?:what|which)\s+colou?rs?\b|\bcolou?rs?\s+(?:was|were|is|are|of)\b", re.I),
        re.compile(rf"\b(?:{_COLOURS})(?:ish)?\b", re.I),
    ),
    ("count", re.compile(r"\bhow\s+many\b", re.I), re.compile(_NUMBER, re.I)),
    (
        "year",
        re.compile(r"\b(?:what|which)\s+year\b", re.I),
        re.compile(r"\b\d{4}\b|\b(?:last|this|next|that|same)\s+year\b", re.I),
    ),
    (
        "price",
        re.compile(r"\bhow\s+much\b[^?]*\b(?:cost|costs|pay|paid|price|worth|spend|spent|sell|sold)\b", re.I),
        re.compile(rf"[$€£¥₽]|{_NUMBER}|\b(?:free|priceless|undisclosed)\b", re.I),
    ),
]


def expected_kind(question: str) -> tuple[str, re.Pattern[str]] | None:
    """The form the answer must take, or None when the question does not fix one."""
    if len(question_parts(question)) > 1:
        return None
    for name, asks, form in _KINDS:
        if asks.search(question):
            return name, form
    return None


def has_kind(question: str, sentences: list[str]) -> bool:
    """True unless the question asks for a recognisable kind of answer and no sentence has it."""
    kind = expected_kind(question)
    return kind is None or any(kind[1].search(s) for s in sentences)
