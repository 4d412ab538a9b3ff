"""Where sentences end: the one splitter for documents (chunking, context selection), answers
(the citation check, the second look) and the test doubles.

Documents split at . ! ? before whitespace and at every line break (headings, list items);
answers split at . ! ? followed by the answer's citation markers ("They met [1]. Then...") and
keep the markers with their sentence. Both skip the period of an initial, a dotted acronym or a
title ("Gennady S.", "U.S.", "Dr.").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) before whitespace,
# or at a line break (paragraph or heading).
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*(?=\s)|(?=\n)")
# A period after an initial ("Gennady S."), a dotted acronym ("U.S.") or a title ("Dr.") does not
# end a sentence when the text goes on in the same line.
_NOT_AN_END = re.compile(
    r"(?:\b[A-Z]|\b(?:[A-Za-z]\.)+[A-Za-z]|\b(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|Gen|Col|Lt|Capt|Sgt|Gov|Sen|Rep|"
    r"Rev|Hon|No|vs|approx|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec))\.$"
)


def is_abbreviation_end(text: str, end: int) -> bool:
    """True when the period just before `end` closes an initial, acronym or title, not a sentence."""
    return bool(_NOT_AN_END.search(text, max(0, end - 12), end))


# An answer's sentence ends after . ! ? and any citation markers that follow it.
_ANSWER_SENTENCE = re.compile(r"(?<=[.!?])(?:\s*\[[^\]]{1,20}\])*\s+(?=\S)")


@dataclass(frozen=True)
class Span:
    start: int
    end: int


def split_sentences(text: str) -> list[Span]:
    """Sentence spans over `text`, trimmed of surrounding whitespace, never empty."""
    spans: list[Span] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        if text[end : end + 1] != "\n" and is_abbreviation_end(text, end):
            continue
        if end > start:
            spans.append(Span(start, end))
            start = end
    spans.append(Span(start, len(text)))
    trimmed = []
    for span in spans:
        piece = text[span.start : span.end]
        lead = len(piece) - len(piece.lstrip())
        tail = len(piece.rstrip())
        if tail > lead:
            trimmed.append(Span(span.start + lead, span.start + tail))
    return trimmed


def split_answer(text: str) -> list[str]:
    """Sentences of the answer, each with the markers that follow it; 'U.S.' and 'Gennady S.' do
    not end a sentence."""
    text = text.strip()
    out, start = [], 0
    for match in _ANSWER_SENTENCE.finditer(text):
        if is_abbreviation_end(text, match.start()) and not text[match.start() : match.end()].strip():
            continue
        out.append(text[start : match.start()])
        start = match.end()
    out.append(text[start:])
    return [s.strip() for s in out if s.strip()]
