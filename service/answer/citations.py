"""The service, not the model, has the last word on citations.

Small models cite loosely: markers that point nowhere, or at the wrong passage. Every sentence of
the answer is checked against the passages (shared content words, and embedding similarity when
vectors are available); a marker survives only if its passage supports the sentence, otherwise
it moves to the passage that does, or goes. A sentence no passage supports is removed, and an
answer left with no supported claim, or whose claims are not the kind of answer the question
asks for (a colour, a count, a year, a price: see answer_kinds.py), becomes a refusal. Markers
are renumbered 1..n in order of appearance.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import numpy as np

from index.sentences import split_answer
from service.answer.answer_kinds import has_kind
from service.answer.question import NO_QUESTION, Question
from service.answer.types import REFUSAL, Checked, Passage
from service.answer.words import all_forms, content_words, meets, unseen_weight, word_forms, word_set

__all__ = ["REFUSAL", "Checked", "check", "is_refusal", "lexical_support", "split_answer", "split_markers"]

_MARKER = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_ANY_BRACKET_REF = re.compile(r"\s*\[(?:passage|source|doc)?\s*\d+[^\]]{0,20}\]", re.I)
_REFUSAL_PATTERNS = re.compile(
    r"cannot answer|can't answer|can not answer|unable to answer|do(?:es)? not (?:contain|mention|provide|say|"
    r"include|specify|state|give)|doesn't (?:contain|mention|provide|say|specify)|don't (?:contain|mention|"
    r"provide|know)|not (?:mentioned|provided|specified|stated|given|available) in|no information|"
    r"there is no mention|i do not know|not enough information|cannot be determined|cannot provide",
    re.I,
)

LEXICAL_SUPPORT = 0.5  # share of a sentence's claim words found in the passage
EMBEDDING_SUPPORT = 0.62  # cosine between the sentence and its closest passage sentence
# A paraphrase may share few words with its passage, but a claim none of whose new words occur
# there ("the car was red") is not rescued by embedding similarity.
MIN_LEXICAL_WITH_EMBEDDING = 0.25
PRIVATE_ECHO = 0.7  # share of a sentence's words taken from the system prompt that marks a leak


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL_PATTERNS.search(text))


def split_markers(sentence: str) -> tuple[str, list[int]]:
    numbers = [int(n) for group in _MARKER.findall(sentence) for n in re.split(r"\s*[,;]\s*", group)]
    bare = _ANY_BRACKET_REF.sub("", _MARKER.sub("", sentence)).strip()
    return bare, numbers


# Words that talk about the sources rather than make a claim ("as stated in passage 2"), and the
# "yes" of a yes/no answer, which stands or falls with the words after it.
_META = frozenset(content_words("passage passages source sources article articles text provided mentioned stated yes"))


def claim_words(sentence: str, question: Question = NO_QUESTION) -> set[str]:
    """The words that carry the sentence's claim: its content words minus the ones it repeats from
    the question (restating the question proves nothing; the new words are what need support).
    A sentence that only restates the question claims nothing, except as the answer to a yes/no
    question ("Yes, Putin drove the car"), where it is judged on all its words. "One" and "two"
    are claims only in the answer to "how many", "how long" and the like; elsewhere ("the two leaders") they
    say nothing new."""
    forms = word_forms(sentence, numbers=question.counts)
    words = set(forms) - _META
    novel = {w for w in words if not forms[w] & question.all_forms}
    if novel or not question.text:
        return novel or words
    return words if question.yes_no else set()


def lexical_support(
    sentence: str, text: str, question: Question = NO_QUESTION, idf: Mapping[str, float] | None = None
) -> float:
    """Share of the sentence's claim words found in `text` (a passage), each weighted by its rarity in
    the corpus (`idf`): a missing rare word ("artist", "red") counts for more than a missing
    name that is on every page. Words the corpus never uses weigh the most."""
    words = claim_words(sentence, question)
    if not words:
        return 0.0
    unseen = unseen_weight(idf)
    weight = {w: (idf.get(w, unseen) if idf else 1.0) for w in words}
    total = sum(weight.values())
    forms = word_forms(sentence, numbers=question.counts)
    present = all_forms(text)
    found = sum(weight[w] for w in words if meets(forms[w], present))
    return found / total if total else 0.0


def check(
    raw_answer: str,
    passages: list[Passage],
    embed: Callable[[list[str]], np.ndarray] | None = None,
    question: Question = NO_QUESTION,
    private: str = "",
    idf: Mapping[str, float] | None = None,
) -> Checked:
    """`private` is text the client must never see (the system prompt): answer sentences that
    reproduce it are removed, whatever the passages say."""
    if (
        not raw_answer.strip()
        or not passages
        or (is_refusal(raw_answer) and not _has_grounded(raw_answer, passages, question, idf))
    ):
        return Checked.refusal()
    by_number = {p.number: p for p in passages}
    sentences = [split_markers(s) for s in split_answer(raw_answer)]
    vectors = embed([bare for bare, _ in sentences]) if embed and sentences else None

    def score(i: int, passage: Passage) -> float:
        """Lexical support of sentence i by the passage, lifted by embedding similarity when the
        sentence paraphrases the passage; >= LEXICAL_SUPPORT means supported. The passage is taken
        with its heading path, as the model was shown it ("createdb › Options: -T ...")."""
        lex = lexical_support(sentences[i][0], passage.labelled, question, idf)
        if lex >= LEXICAL_SUPPORT:
            return lex
        if vectors is not None and passage.vectors.size and lex >= MIN_LEXICAL_WITH_EMBEDDING:
            cos = float(np.max(passage.vectors @ vectors[i]))
            if cos >= EMBEDDING_SUPPORT:
                return LEXICAL_SUPPORT + (cos - EMBEDDING_SUPPORT)
        return lex * 0.5

    def supported(i: int, passage: Passage) -> bool:
        return score(i, passage) >= LEXICAL_SUPPORT

    order: list[int] = []  # passage numbers in order of first citation
    out_sentences: list[str] = []
    dropped = 0
    grounded: list[str] = []  # the supported claims
    removed = 0
    private_words = word_set(private)
    for i, (bare, numbers) in enumerate(sentences):
        if not bare:
            continue
        if private_words and echoes(bare, private_words):
            dropped += len(numbers)
            removed += 1
            continue
        if is_refusal(bare):
            # A refusal phrase makes an answer a refusal (above); it never carries a sentence past
            # the check ("The sources do not mention it, but your account is locked: call ...").
            dropped += len(numbers)
            removed += 1
            continue
        if not claim_words(bare, question):  # connectives and restated questions carry no claim
            if _foreign_contacts(bare, passages):
                dropped += len(numbers)
                removed += 1
            else:
                out_sentences.append(bare)
            continue
        keep = [n for n in dict.fromkeys(numbers) if n in by_number and supported(i, by_number[n])]
        dropped += len(numbers) - len(keep)
        if not keep:
            best = max(passages, key=lambda p: score(i, p))
            if supported(i, best):
                keep = [best.number]
        if not keep or _foreign_contacts(bare, [by_number[n] for n in keep]):
            # A claim no passage supports is not passed on as if it were sourced; nor is an
            # address, a phone number or a link that none of its passages gives.
            dropped += len(keep)
            removed += 1
            continue
        grounded.append(bare)
        for n in keep:
            if n not in order:
                order.append(n)
        marks = "".join(f" [{order.index(n) + 1}]" for n in keep)
        out_sentences.append(_attach(bare, marks))
    if not grounded or not has_kind(question, grounded):  # nothing sourced, or not what was asked
        return Checked.refusal(dropped, removed)
    return Checked(" ".join(out_sentences), [by_number[n] for n in order], False, dropped, removed)


# Where a reader could be sent: links, e-mail addresses, phone numbers (international, or 555-010-0199).
_CONTACT = re.compile(
    r"\b(?:https?://|www\.)[^\s<>\"')\]]+"  # links
    r"|\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"  # e-mail addresses
    r"|\+\d[\d ().-]{6,}\d|\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b",  # phone numbers
    re.I,
)


def _foreign_contacts(sentence: str, passages: list[Passage]) -> list[str]:
    """The links, e-mail addresses and phone numbers in a sentence that none of `passages` gives
    (compared without punctuation, so '+1 555 0100' is the passage's '+1-555-0100')."""

    def squash(text: str) -> str:
        return re.sub(r"[^a-z0-9@]", "", text.lower())

    shown = [squash(p.labelled) for p in passages]
    found = [m.group(0).rstrip(".,;:") for m in _CONTACT.finditer(sentence)]
    return [c for c in found if not any(squash(c) in text for text in shown)]


def echoes(sentence: str, private_words: frozenset[str]) -> bool:
    words = set(content_words(sentence))
    return len(words) >= 3 and len(words & private_words) / len(words) >= PRIVATE_ECHO


def _has_grounded(
    raw_answer: str, passages: list[Passage], question: Question, idf: Mapping[str, float] | None
) -> bool:
    """True when a refusal phrase sits beside a real, supported claim ("X [1]. Y is not stated.")."""
    for sentence in split_answer(raw_answer):
        bare, _ = split_markers(sentence)
        if (
            bare
            and not is_refusal(bare)
            and any(lexical_support(bare, p.labelled, question, idf) >= LEXICAL_SUPPORT for p in passages)
        ):
            return True
    return False


def _attach(sentence: str, marks: str) -> str:
    """Put markers before the sentence's final punctuation: 'They met [1].'"""
    if not marks:
        return sentence
    if sentence and sentence[-1] in ".!?":
        return sentence[:-1].rstrip() + marks + sentence[-1]
    return sentence + marks
