from __future__ import annotations

from pathlib import Path

import pytest

from index import store
from index.embedder import HashingEmbedder
from service.context import select_passages
from service.retrieval import BM25, HybridRetriever


@pytest.fixture(scope="module")
def retriever(index_dir: Path) -> HybridRetriever:
    return HybridRetriever(store.load(index_dir), HashingEmbedder())


@pytest.mark.parametrize(
    ("question", "source"),
    [
        ("What breed of dog did Kim give Putin?", "seeds/000_cfe940b0310ddd85.txt"),
        ("Which automaker manufactured the limousine?", "seeds/002_7715699ff9905d8f.txt"),
        ("Who is the Russian ambassador to Vietnam?", "seeds/003_e8f2ea9f2bcaae22.txt"),
        ("How long did Putin speak with Kim face-to-face?", "seeds/001_061305c6860d8c50.txt"),
    ],
)
def test_known_questions_find_their_file(retriever: HybridRetriever, question: str, source: str) -> None:
    hits = retriever.retrieve(question, top_k=5).hits
    assert source in {h.chunk.source for h in hits}


def test_context_stays_within_budget_and_keeps_the_answer(retriever: HybridRetriever) -> None:
    from index.tokens import count_tokens

    q = "Which native hunting dogs did Kim give to Putin?"
    passages = select_passages(
        retriever.data, retriever.retrieve(q, 5), q, max_tokens=120, max_sentences=6, idf=retriever.bm25.idf
    )
    assert sum(count_tokens(p.text) for p in passages) <= 120
    assert any("Pungsan" in p.text for p in passages)
    assert [p.number for p in passages] == list(range(1, len(passages) + 1))


def test_bm25_prefers_rare_terms() -> None:
    bm = BM25([["putin", "kim"], ["putin", "pungsan"], ["kim", "car"]])
    scores = bm.scores(["pungsan"])
    assert scores.argmax() == 1 and scores[0] == 0


def test_a_heading_close_to_the_question_loses_to_the_sentence_that_answers_it() -> None:
    """Page furniture ("North Korea and its hospitality.", "Article Image") embeds close to any
    question on its subject; the sentence that says something wins unless it is much further off."""
    from types import SimpleNamespace

    import numpy as np

    from index.chunking import Chunk, Span
    from service.context import score_sentences
    from service.retrieval import Hit, Retrieval

    sentences = [
        "North Korea and its hospitality.",
        "North Korea provides Russia with badly needed munitions.",
        "Photo.",
    ]
    text = " ".join(sentences)
    spans, start = [], 0
    for s in sentences:
        spans.append(Span(start, start + len(s)))
        start += len(s) + 1
    chunk = Chunk("seeds/a.txt", text, 0, len(text), 1, 1, sentences=spans)
    query = np.array([1.0, 0.0], np.float32)

    def unit(cos: float) -> list[float]:
        return [cos, float(np.sqrt(1 - cos**2))]

    rows = np.array([unit(0.67), unit(0.60), unit(0.66)], np.float32)
    data = SimpleNamespace(sentence_rows=lambda chunk_id: rows)
    retrieval = Retrieval([Hit(0, chunk, 0.6, 1.0)], query)
    ranked = score_sentences(data, retrieval, "What does North Korea supply to Russia?")  # type: ignore[arg-type]
    assert ranked[0].text == sentences[1]
    assert ranked[-1].text == "Photo."
    assert [round(c.cosine, 2) for c in ranked] == [0.60, 0.67, 0.66]  # the cosine shown stays the model's
