"""A second look at an answer the citation check let through: the model is asked the question again,
shown only the sentences the answer rests on, and a refusal there vetoes the answer.

The citation check tests words, not the relation between them. A small model answers a question the
passages cannot answer with a neighbouring fact whose words are all in a passage: asked which
agreements Putin signed in Hanoi, it names a treaty whose 30th anniversary falls this year. Shown
only that sentence, without the rest of the context to draw on, the same model sees that it does not
answer the question and refuses. A grounded answer survives the narrower evidence, because the
sentence it rests on does answer the question.

Only a refusal counts: the second reply is never shown, and it cannot add or change a claim.
"""

from __future__ import annotations

from dataclasses import replace

from index.chunking import split_sentences
from service.citations import Checked, is_refusal, lexical_support, markers, split_answer
from service.context import Passage

MAX_TOKENS = 10  # "I cannot answer that from the provided": the reply is only read for a refusal


def evidence(checked: Checked, question: str, idf: dict[str, float] | None = None) -> list[str]:
    """For each cited sentence of the answer, the sentence of its passage that supports it best,
    in order of first use, without repeats."""
    out: list[str] = []
    for sentence in split_answer(checked.answer):
        bare, numbers = markers(sentence)
        for n in numbers:
            if not 1 <= n <= len(checked.cited):
                continue
            best = _best_sentence(bare, checked.cited[n - 1], question, idf)
            if best and best not in out:
                out.append(best)
    return out


def _best_sentence(claim: str, passage: Passage, question: str, idf: dict[str, float] | None) -> str:
    sentences = [passage.text[s.start : s.end].strip() for s in split_sentences(passage.text)]
    sentences = [s for s in sentences if s]
    if not sentences:
        return ""
    return max(sentences, key=lambda s: lexical_support(claim, replace(passage, text=s), question, idf))


def vetoed(reply: str) -> bool:
    """True when the second reply opens with a refusal."""
    first = split_answer(reply)
    return bool(first) and is_refusal(first[0])
