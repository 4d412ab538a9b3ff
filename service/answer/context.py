"""Choose the few sentences worth sending to the LLM.

Prompt length is what makes a small local model slow, so instead of whole chunks we send the
best-scoring sentences of the retrieved chunks, grouped back into short numbered passages.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from index.chunking import Chunk
from index.tokens import count_tokens
from service.answer.question import Part, Question
from service.answer.retrieval import Retrieval, Retriever
from service.answer.sentence_vectors import SentenceVectors
from service.answer.types import Passage
from service.answer.words import all_forms, content_words, unseen_weight
from service.settings import Settings

__all__ = ["Budget", "Passage", "gather_context", "score_sentences", "select_context", "select_passages"]

LEXICAL_WEIGHT = 0.25
# Headings, captions and page furniture ("Article Image", "Watch videos below", "North Korea and its
# hospitality.") embed close to almost any question about their subject while saying next to nothing:
# a sentence with fewer than this many content words loses FRAGMENT_PENALTY per missing word.
MIN_CONTENT_WORDS = 4
FRAGMENT_PENALTY = 0.1


@dataclass(frozen=True)
class Budget:
    """How much context the LLM is shown: at most `max_tokens` and `max_sentences`, and with a
    `margin`, no sentence scoring more than that below its part's best (None: no such limit)."""

    max_tokens: int
    max_sentences: int
    margin: float | None = None
    window: int = 0  # neighbours of each chosen sentence (each side, same chunk) added while tokens last

    @classmethod
    def from_settings(cls, settings: Settings) -> Budget:
        return cls(
            settings.context_max_tokens,
            settings.context_max_sentences,
            settings.context_margin,
            settings.context_window,
        )


@dataclass
class Candidate:
    chunk_id: int
    sentence: int  # index within the chunk
    text: str
    cosine: float
    score: float


def score_sentences(
    vectors: SentenceVectors, retrieval: Retrieval, part: Part, idf: Mapping[str, float] | None = None
) -> list[Candidate]:
    """Every sentence of the retrieved chunks, scored by cosine plus a bonus for the share of the
    question's words it contains, weighted by rarity (`idf`: words absent from the corpus weigh
    the most, names on every page the least), less a penalty for fragments too short to say
    anything; duplicates (chunk overlap, articles quoting each other) keep only their best copy."""
    q_forms = part.forms
    unseen = unseen_weight(idf)
    weights = {t: (idf or {}).get(t, unseen) for t in q_forms}
    total = sum(weights.values())
    best: dict[str, Candidate] = {}
    for hit in retrieval.hits:
        rows = vectors.rows(hit.chunk)
        cosines = rows @ retrieval.query_vector if len(rows) else np.zeros(0)
        for k, span in enumerate(hit.chunk.sentences):
            text = hit.chunk.text[span.start : span.end]
            words = content_words(text)
            present = all_forms(text)
            overlap = sum(w for t, w in weights.items() if q_forms[t] & present) / total if total else 0.0
            fragment = FRAGMENT_PENALTY * max(0, MIN_CONTENT_WORDS - len(words))
            score = float(cosines[k]) + LEXICAL_WEIGHT * overlap - fragment
            cand = Candidate(hit.chunk_id, k, text, float(cosines[k]), score)
            key = _key(text)
            if key not in best or cand.score > best[key].score:
                best[key] = cand
    return sorted(best.values(), key=lambda c: -c.score)


def select_passages(
    vectors: SentenceVectors,
    retrieval: Retrieval,
    question: Question,
    budget: Budget,
    idf: Mapping[str, float] | None = None,
) -> list[Passage]:
    """The context for one retrieval of the whole question (not split into its parts)."""
    return select_context(vectors, [(retrieval, Part(question.text, question.forms))], budget, idf)


def select_context(
    vectors: SentenceVectors,
    parts: list[tuple[Retrieval, Part]],
    budget: Budget,
    idf: Mapping[str, float] | None = None,
) -> list[Passage]:
    """The best sentences within the token and sentence budgets. A question in several parts
    ("which airport ..., and which city ...?") has one retrieval per part; the parts take turns so
    each gets its best evidence in before any gets its second best.

    With a margin, a part stops taking sentences that score more than `margin` below its best:
    a small model reads the strongest evidence more faithfully when it is not surrounded by
    sentences that share the question's words but answer something else."""
    chunks = {hit.chunk_id: hit.chunk for retrieval, _ in parts for hit in retrieval.hits}
    vectors.prefetch(chunks.values())  # one batch for every part's chunks
    ranked = [score_sentences(vectors, retrieval, part, idf) for retrieval, part in parts]
    scored = {(c.chunk_id, c.sentence): c for cands in ranked for c in cands}
    if budget.margin is not None:
        ranked = [[c for c in cands if c.score >= cands[0].score - budget.margin] for cands in ranked if cands]
    chosen: list[Candidate] = []
    seen: set[str] = set()  # sentence text: overlapping chunks share sentences
    used = 0
    cursors = [0] * len(ranked)
    full = False
    while not full and any(c < len(r) for c, r in zip(cursors, ranked, strict=True)):
        for p, candidates in enumerate(ranked):
            while cursors[p] < len(candidates) and _key(candidates[cursors[p]].text) in seen:
                cursors[p] += 1
            if cursors[p] >= len(candidates):
                continue
            cand = candidates[cursors[p]]
            cursors[p] += 1
            cost = count_tokens(cand.text) + 4
            if len(chosen) >= budget.max_sentences or (chosen and used + cost > budget.max_tokens):
                full = True
                break
            chosen.append(cand)
            seen.add(_key(cand.text))
            used += cost
    if budget.window:
        used += _widen(chunks, chosen, seen, scored, budget, used)

    # Consecutive chosen sentences of a chunk make one passage; a gap starts a new one, so each
    # passage is one contiguous quote with exact lines. [1] is the strongest evidence.
    by_chunk: dict[int, list[Candidate]] = {}
    for cand in chosen:
        by_chunk.setdefault(cand.chunk_id, []).append(cand)
    runs: list[list[Candidate]] = []
    for cands in by_chunk.values():
        cands.sort(key=lambda c: c.sentence)
        runs.append([cands[0]])
        for prev, cur in itertools.pairwise(cands):
            if cur.sentence == prev.sentence + 1:
                runs[-1].append(cur)
            else:
                runs.append([cur])
    runs.sort(key=lambda run: -max(c.score for c in run))
    passages = []
    for number, run in enumerate(runs, start=1):
        chunk_id = run[0].chunk_id
        chunk = chunks[chunk_id]
        first, last = chunk.sentences[run[0].sentence], chunk.sentences[run[-1].sentence]
        start_line, _ = chunk.line_span(first.start, first.end)
        _, end_line = chunk.line_span(last.start, last.end)
        passages.append(
            Passage(
                number=number,
                source=chunk.source,
                text=" ".join(c.text for c in run),
                start_line=start_line,
                end_line=end_line,
                score=max(c.cosine for c in run),
                chunk_id=chunk_id,
                vectors=vectors.rows(chunk)[[c.sentence for c in run]],
                heading=chunk.heading,
                anchor=chunk.anchor,
                page=chunk.page,
            )
        )
    return passages


def _widen(
    chunks: Mapping[int, Chunk],
    chosen: list[Candidate],
    seen: set[str],
    scored: dict[tuple[int, int], Candidate],
    budget: Budget,
    used: int,
) -> int:
    """Add each chosen sentence's neighbours in its section, the next one first, nearest first,
    best evidence first, while the token budget lasts; returns the tokens added. In documentation
    the answer is often the sentence after the one that matches the question ("jsonb does not keep
    duplicate keys. Only the last value is kept."), or needs the one before it.

    Only chunks under a heading (Markdown, HTML) are widened: a section is about one thing, so its
    neighbours continue the evidence. Plain text has no such bound, and in news articles the next
    sentence is as often another story's: there the window cost key facts (0.919 to 0.871 on the
    seed articles, with refusals 0.944 to 0.833), so plain text gets none."""
    added = 0
    anchors = list(chosen)  # the evidence; the neighbours added below are not widened again
    for distance in range(1, budget.window + 1):
        for anchor in anchors:
            chunk = chunks[anchor.chunk_id]
            if not chunk.heading:
                continue
            for k in (anchor.sentence + distance, anchor.sentence - distance):
                if not 0 <= k < len(chunk.sentences):
                    continue
                cand = scored.get((anchor.chunk_id, k))
                if cand is None:  # a duplicate of a sentence scored in another chunk
                    span = chunk.sentences[k]
                    cand = Candidate(anchor.chunk_id, k, chunk.text[span.start : span.end], anchor.cosine, -1.0)
                if _key(cand.text) in seen:
                    continue
                cost = count_tokens(cand.text) + 4
                if used + added + cost > budget.max_tokens:
                    continue
                # A neighbour ranks just below the evidence it surrounds, so [1] stays the strongest.
                chosen.append(Candidate(cand.chunk_id, cand.sentence, cand.text, cand.cosine, anchor.score - 1e-6))
                seen.add(_key(cand.text))
                added += cost
    return added


def _key(text: str) -> str:
    return " ".join(text.lower().split())


def gather_context(
    vectors: SentenceVectors,
    retriever: Retriever,
    question: Question,
    top_k: int,
    budget: Budget,
) -> list[Passage]:
    """Retrieve for each part of the question, then keep the sentences that matter: exactly the
    passages the LLM is shown (the evals measure them too)."""
    parts = [(retriever.retrieve(part.text, top_k), part) for part in question.parts]
    return select_context(vectors, parts, budget, retriever.rarity)
