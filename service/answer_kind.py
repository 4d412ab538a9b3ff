"""The kind of answer a question asks for, when its form is recognisable, and whether an answer has it.

Asked "what colour was the limousine?", a small model answers with what the passages do say
about the limousine ("it was Russian-built"). Every word of that is in a passage, so the citation
check passes it, yet it does not answer the question. A question asking for a colour, a count, a
year or a price is held to it: an answer with no sentence of that form is refused. Questions of
any other kind, and questions in several parts, are not checked here.
"""

from __future__ import annotations

import re

from service.text import NUMERALS, is_compound

_COLOURS = (
    "white|black|grey|gray|silver|red|crimson|scarlet|maroon|burgundy|pink|orange|yellow|gold|golden|"
    "beige|cream|ivory|brown|tan|khaki|bronze|green|olive|blue|navy|turquoise|teal|purple|violet|lilac"
)
_NUMBER = (
    rf"\d|\b(?:zero|{'|'.join(NUMERALS)}|"
    r"(?:thir|four|fif|six|seven|eigh|nine)teen|(?:twen|thir|for|fif|six|seven|eigh|nine)ty|hundreds?|thousands?|"
    r"millions?|billions?|dozens?|pair|couple|single|both|twice|thrice|once|several|few|handful|many|numerous|"
    r"multiple|half|most|all|every|no|none|nobody|nothing)\b"
)
_KINDS: list[tuple[str, re.Pattern[str], re.Pattern[str]]] = [
    (
        "colour",
        re.compile(r"\b(?:what|which)\s+colou?rs?\b|\bcolou?rs?\s+(?:was|were|is|are)\b", re.I),
        re.compile(rf"\b(?:{_COLOURS})(?:d?ish)?\b|\bbluish\b", re.I),
    ),
    ("count", re.compile(r"\bhow\s+many\b", re.I), re.compile(_NUMBER, re.I)),
    (
        "year",
        re.compile(r"\b(?:what|which)\s+year\b", re.I),
        re.compile(
            r"\b\d{4}s?\b|\b(?:last|this|next|that|same|following|previous|a)\s+year\b"
            r"|\byears?\s+(?:later|earlier|before|after)\b",
            re.I,
        ),
    ),
    (
        "price",
        re.compile(
            r"\bhow\s+much\b(?!\s+time\b)[^?]*\b(?:cost|costs|pay|paid|price|worth|spend|spent|sell|sold)\b", re.I
        ),
        re.compile(rf"[$€£¥₽]|{_NUMBER}|\b(?:free|priceless|undisclosed|third|quarter)\b", re.I),
    ),
]


def expected_kind(question: str) -> tuple[str, re.Pattern[str]] | None:
    """The form the answer must take, or None when the question does not fix one."""
    if is_compound(question):  # each part may ask for another kind; the parts are not checked
        return None
    for name, asks, form in _KINDS:
        if asks.search(question):
            return name, form
    return None


def has_kind(question: str, sentences: list[str]) -> bool:
    """True unless the question asks for a recognisable kind of answer and no sentence has it."""
    kind = expected_kind(question)
    return kind is None or any(kind[1].search(s) for s in sentences)
