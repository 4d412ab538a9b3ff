from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index import store
from index.embedder import HashingEmbedder
from service.answer.context import Budget, select_passages
from service.answer.question import Part, Question
from service.answer.retrieval import BM25, HybridRetriever
from service.answer.sentence_vectors import SentenceVectors


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
        SentenceVectors(retriever.embedder.encode_documents),
        retriever.retrieve(q, 5),
        Question.read(q),
        Budget(max_tokens=120, max_sentences=6),
        retriever.rarity,
    )
    assert sum(count_tokens(p.text) for p in passages) <= 120
    assert any("Pungsan" in p.text for p in passages)
    assert [p.number for p in passages] == list(range(1, len(passages) + 1))


def test_bm25_prefers_rare_terms() -> None:
    bm = BM25([["putin", "kim"], ["putin", "pungsan"], ["kim", "car"]])
    scores = bm.scores(["pungsan"])
    assert scores.argmax() == 1 and scores[0] == 0
    assert bm.top(["pungsan", "unknown"], 3) == [1]  # chunks without any term are not ranked


def test_bm25_ranks_as_the_okapi_formula_does() -> None:
    """The library's scores are Okapi BM25 (k1 1.2, b 0.75, Lucene's idf) up to a constant factor."""
    import math
    import random

    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(40)]
    docs = [[rng.choice(vocab[: rng.randint(5, 40)]) for _ in range(rng.randint(1, 30))] for _ in range(200)]
    bm = BM25(docs)
    avg = sum(map(len, docs)) / len(docs)

    def okapi(doc: list[str], terms: list[str]) -> float:
        total = 0.0
        for t in set(terms):
            tf, df = doc.count(t), sum(t in d for d in docs)
            idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
            total += idf * tf / (tf + 1.2 * (1 - 0.75 + 0.75 * len(doc) / avg))
        return total

    for terms in (["w1"], ["w3", "w30", "w3"], ["w39", "w0", "w12"]):
        want = np.array([okapi(d, terms) for d in docs])
        np.testing.assert_allclose(bm.scores(terms), want, rtol=1e-4, atol=1e-6)
        top = bm.top(terms, 10)
        assert [round(want[i], 4) for i in top] == sorted((round(x, 4) for x in want), reverse=True)[:10]
    assert bm.idf["w1"] == pytest.approx(
        math.log(1 + (200 - sum("w1" in d for d in docs) + 0.5) / (sum("w1" in d for d in docs) + 0.5))
    )


def _one_chunk(sentences: list[str], cosines: list[float], heading: str = ""):  # type: ignore[no-untyped-def]
    """A one-chunk retrieval whose sentences have exactly these cosines with the question."""
    import numpy as np

    from index.chunking import Chunk, Span
    from service.answer.retrieval import Hit, Retrieval

    text = " ".join(sentences)
    spans, start = [], 0
    for s in sentences:
        spans.append(Span(start, start + len(s)))
        start += len(s) + 1
    chunk = Chunk("seeds/a.txt", text, 0, len(text), 1, 1, sentences=spans, heading=heading)
    _ROWS.update({s: [c, float(np.sqrt(1 - c**2))] for s, c in zip(sentences, cosines, strict=True)})
    return _vectors(), Retrieval([Hit(0, chunk, 0.6, 1.0)], np.array([1.0, 0.0], np.float32))


_ROWS: dict[str, list[float]] = {}  # sentence -> the 2-d vector whose cosine with the question is set


def _vectors() -> SentenceVectors:
    """The real on-demand sentence vectors, over an encoder that looks each sentence up in _ROWS."""
    import numpy as np

    return SentenceVectors(lambda texts: np.array([_ROWS[t] for t in texts], np.float32))


def test_a_heading_close_to_the_question_loses_to_the_sentence_that_answers_it() -> None:
    """Page furniture ("North Korea and its hospitality.", "Article Image") embeds close to any
    question on its subject; the sentence that says something wins unless it is much further off."""
    from service.answer.context import score_sentences

    sentences = [
        "North Korea and its hospitality.",
        "North Korea provides Russia with badly needed munitions.",
        "Photo.",
    ]
    data, retrieval = _one_chunk(sentences, [0.67, 0.60, 0.66])
    ranked = score_sentences(data, retrieval, Part.read("What does North Korea supply to Russia?"))
    assert ranked[0].text == sentences[1]
    assert ranked[-1].text == "Photo."
    assert [round(c.cosine, 2) for c in ranked] == [0.60, 0.67, 0.66]  # the cosine shown stays the model's


def test_the_margin_keeps_distractors_far_below_the_best_sentence_out_of_the_context() -> None:
    from service.answer.context import select_context

    sentences = [
        "Kim fed a horse as Putin stroked its head.",
        "Putin rode a horse while shirtless.",
        "The horse was white and fed daily.",
    ]
    data, retrieval = _one_chunk(sentences, [0.81, 0.50, 0.70])
    question = "What happened at the stable?"  # no word shared: scores are the cosines

    def texts(margin: float | None) -> list[str]:
        passages = select_context(data, [(retrieval, Part.read(question))], Budget(200, 6, margin))
        return [p.text for p in passages]

    assert texts(None) == [" ".join(sentences)]  # no margin: all three, one contiguous passage
    assert texts(0.2) == [sentences[0], sentences[2]]  # 0.50 is more than 0.2 below 0.81
    assert texts(0.0) == [sentences[0]]


def test_each_part_of_a_compound_question_keeps_its_own_best_under_the_margin() -> None:
    from service.answer.context import select_context

    vectors, first = _one_chunk(["Kim met Putin at Sunan airport.", "Sunan lies north of the city."], [0.9, 0.3])
    _, second = _one_chunk(["Putin then flew on to Hanoi."], [0.4])
    second.hits[0].chunk_id = 1
    parts = [(first, Part.read("Which airport did he land at?")), (second, Part.read("Which city did he fly to next?"))]
    passages = select_context(vectors, parts, Budget(200, 6, margin=0.1))
    # the second part's best (0.4) is far under the first's (0.9) but is its own part's best
    assert [p.text for p in passages] == ["Kim met Putin at Sunan airport.", "Putin then flew on to Hanoi."]


def test_a_question_word_meets_its_other_forms_in_a_sentence() -> None:
    """'fed' in the question is 'feeding' in the sentence that answers it: the lexical bonus
    matches lemmas, so the answer outranks a sentence that only shares the names."""
    from service.answer.context import score_sentences

    sentences = ["Kim was pictured feeding a horse as Putin stroked its head.", "Putin rode a horse as Kim watched."]
    data, retrieval = _one_chunk(sentences, [0.66, 0.70])
    ranked = score_sentences(data, retrieval, Part.read("What was Putin doing while Kim fed a horse?"))
    assert ranked[0].text == sentences[0]


def test_the_window_brings_in_the_sentence_after_the_evidence() -> None:
    """The sentence that matches the question is often not the one that answers it: "jsonb does
    not keep duplicate keys." is followed by "Only the last value is kept." The window adds the
    evidence's neighbours in its chunk, in document order, while the token budget lasts."""
    from service.answer.context import select_context

    sentences = [
        "The json type keeps the input text as it is.",
        "The jsonb type does not keep duplicate object keys.",
        "If duplicate keys are given, only the last value is kept.",
        "Whitespace is dropped as well.",
    ]
    question = "What survives?"

    def texts(window: int, max_tokens: int = 200, heading: str = "8.14. JSON Types") -> list[str]:
        data, retrieval = _one_chunk(sentences, [0.30, 0.80, 0.20, 0.10], heading)
        budget = Budget(max_tokens, 1, margin=0.1, window=window)
        return [p.text for p in select_context(data, [(retrieval, Part.read(question))], budget)]

    assert texts(0) == [sentences[1]]
    assert texts(1) == [" ".join(sentences[0:3])]  # one contiguous passage: before, evidence, after
    assert texts(2) == [" ".join(sentences)]
    assert texts(1, max_tokens=35) == [" ".join(sentences[1:3])]  # room for one more: the next one
    assert texts(2, heading="") == [sentences[1]]  # plain text has no section to widen within


def test_sentence_vectors_embed_each_chunk_once_and_follow_a_changed_text() -> None:
    """The index stores no sentence vectors: they are embedded on first use, one batch for all the
    chunks a question needs, and cached by the chunk's text, so a file changed under the same chunk
    id gets new vectors."""
    import numpy as np

    from index.chunking import Chunk, Span

    calls: list[list[str]] = []

    def encode(texts):  # type: ignore[no-untyped-def]
        calls.append(list(texts))
        return np.array([[float(len(t)), 1.0] for t in texts], np.float32)

    def chunk(text: str) -> Chunk:
        half = len(text) // 2
        return Chunk("docs/a.md", text, 0, len(text), 1, 1, sentences=[Span(0, half), Span(half, len(text))])

    vectors = SentenceVectors(encode, max_chunks=2)
    a, b = chunk("alpha beta gamma"), chunk("delta epsilon zeta eta")
    vectors.prefetch([a, b, a])
    assert len(calls) == 1 and len(calls[0]) == 4  # one batch, each chunk's sentences once
    assert vectors.rows(a).shape == (2, 2) and vectors.rows(a)[0, 0] == len("alpha be")
    assert len(calls) == 1  # served from the cache
    changed = chunk("alpha beta gamma delta")
    assert vectors.rows(changed)[1, 0] == len(changed.text) - len(changed.text) // 2
    assert len(calls) == 2
    vectors.rows(chunk("one more text"))  # a third chunk: the least recently used (b) goes
    vectors.rows(b)
    assert len(calls) == 4 and vectors.embedded == 10
