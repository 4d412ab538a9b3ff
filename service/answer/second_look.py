"""A second look at an answer the citation check let through: the model is asked the question again,
shown only the sentences the answer rests on, and a refusal there vetoes the answer.

The citation check tests words, not the relation between them. A small model answers a question the
passages cannot answer with a neighbouring fact whose words are all in a passage: asked which
agreements Putin signed in Hanoi, it names a treaty whose 30th anniversary falls this year. Shown
only that sentence, without the rest of the context to draw on, the same model sees that it does not
answer the question and refuses. A grounded answer survives the narrower evidence, because the
sentence it rests on does answer the question; a sentence that opens with "It" or "They" is shown
with the sentence before it, so it keeps what it refers to.

Only a refusal counts: the second reply is never shown, and it cannot add or change a claim. If the
second call fails or takes longer than TIMEOUT, the checked answer stands (the outcome is "failed",
logged and counted).

The judgement is read from the model's token probabilities when the provider reports them: the
probability that the reply opens with the refusal sentence's first token ("I" of "I cannot answer
that from the provided sources.") is the model's own estimate that the evidence does not answer
the question, and the answer is vetoed when it exceeds a threshold (CITEQA_CONFIRM_REFUSAL_P)
calibrated on the evals of every corpus. Reading the written reply instead (as for a provider
without log-probabilities) is the same test at an implicit threshold: "the likeliest first token is
a refusal", which lets through a near miss that the model itself rates as more likely a refusal
than any single other opening, but not likelier than all of them together. It costs one token
instead of ten.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from index.sentences import split_answer, split_sentences
from service.answer.citations import is_refusal, lexical_support, split_markers
from service.answer.question import Question
from service.answer.types import REFUSAL, Checked, Passage

MAX_TOKENS = 10  # "I cannot answer that from the provided": the reply is only read for a refusal
TOP_K = 20  # alternatives to the first token read; the refusal's opening is among them whenever it matters
# Seconds the second look may take (at most CITEQA_LLM_TIMEOUT): it reads about 100 tokens and writes
# 10, under a second here, so a call still running after this is stuck, and the answer stands.
TIMEOUT = 15.0

# Openings that lean on the sentence before ("It was made by Aurus.", "They were Pungsan dogs.").
_LEANS_BACK = re.compile(r"^(?:it|its|they|their|them|he|his|she|her|this|these|those|that|the pair)\b", re.I)


@dataclass(frozen=True)
class SecondLook:
    outcome: Literal["kept", "vetoed", "failed"]
    reply: str = ""  # what the model wrote on the second look ("" when the call failed)
    refusal_p: float | None = None  # the probability of a refusal, when read from token probabilities


def refusal_probability(top: list[tuple[str, float]]) -> float:
    """The probability that a reply opens with the refusal sentence, from its likeliest first
    tokens: the sum over those that begin it ("I", " I"; a tokenizer may split differently)."""
    opening = REFUSAL.split()[0]
    return float(sum(math.exp(lp) for token, lp in top if token.strip() and opening.startswith(token.strip())))


def evidence(checked: Checked, question: Question, idf: Mapping[str, float] | None = None) -> list[str]:
    """For each cited sentence of the answer, the sentence of its passage that supports it best
    (with the sentence before, when it opens with a word that refers back; the whole passage,
    when no single sentence shares a claim word), in order of first use, without repeats."""
    out: list[str] = []
    for sentence in split_answer(checked.answer):
        bare, numbers = split_markers(sentence)
        for n in numbers:
            if not 1 <= n <= len(checked.cited):
                continue
            best = _best_sentences(bare, checked.cited[n - 1], question, idf)
            if best and best not in out:
                out.append(best)
    return out


def _best_sentences(claim: str, passage: Passage, question: Question, idf: Mapping[str, float] | None) -> str:
    sentences = [t for s in split_sentences(passage.text) if (t := passage.text[s.start : s.end].strip())]
    if not sentences:
        return ""
    scores = [lexical_support(claim, s, question, idf) for s in sentences]
    i = max(range(len(sentences)), key=scores.__getitem__)
    if scores[i] == 0.0:  # supported by meaning, not words (embedding similarity): show it all
        return " ".join(sentences)
    if i > 0 and _LEANS_BACK.match(sentences[i]):
        return f"{sentences[i - 1]} {sentences[i]}"
    return sentences[i]


def vetoed(reply: str) -> bool:
    """True when the second reply opens with a refusal. A first sentence that cites a passage
    ("The treaty does not include X [1].") is an answer, not a refusal."""
    first = split_answer(reply)
    if not first:
        return False
    bare, numbers = split_markers(first[0])
    return not numbers and is_refusal(bare)
