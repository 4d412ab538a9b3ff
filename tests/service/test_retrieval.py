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
