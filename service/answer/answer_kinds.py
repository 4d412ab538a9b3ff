"""Whether an answer has the form its question asks for.

Asked "what colour was the limousine?", a small model answers with what the passages do say
about the limousine ("it was Russian-built"). Every word of that is in a passage, so the citation
check passes it, yet it does not answer the question. A question asking for a colour, a count, a
year or a price (`Question.kind`, read in question.py) is held to it: an answer with no sentence of
that form is refused. Questions of any other kind, and questions in several parts, are not checked.
"""

from __future__ import annotations

import re

from service.answer.question import Question
from service.answer.words import NUMERALS

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
# What an answer of each kind looks like.
FORMS: dict[str, re.Pattern[str]] = {
    "colour": re.compile(rf"\b(?:{_COLOURS})(?:d?ish)?\b|\bbluish\b", re.I),
    "count": re.compile(_NUMBER, re.I),
    "year": re.compile(
        r"\b\d{4}s?\b|\b(?:last|this|next|that|same|following|previous|a)\s+year\b"
        r"|\byears?\s+(?:later|earlier|before|after)\b",
        re.I,
    ),
    "price": re.compile(rf"[$€£¥₽]|{_NUMBER}|\b(?:free|priceless|undisclosed|third|quarter)\b", re.I),
}


def has_kind(question: Question, sentences: list[str]) -> bool:
    """True unless the question asks for a recognisable kind of answer and no sentence has it."""
    if question.kind is None:
        return True
    form = FORMS[question.kind]
    return any(form.search(s) for s in sentences)
