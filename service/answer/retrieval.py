"""Hybrid retrieval: dense (FAISS inner product) and lexical (BM25) rankings fused by reciprocal
rank fusion. Dense finds paraphrases; BM25 finds rare names and numbers that embeddings blur."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from index.chunking import Chunk
from index.embedder import Embedder
from index.lexical import BM25
from index.store import IndexData
from service.answer.words import Rarity, content_words

__all__ = ["BM25", "Hit", "HybridRetriever", "Retrieval", "Retriever"]


@dataclass
class Hit:
    chunk_id: int
    chunk: Chunk
    dense: float  # cosine similarity of question and chunk
    fused: float  # reciprocal-rank-fusion score used for ordering


@dataclass
class Retrieval:
    hits: list[Hit]
    query_vector: np.ndarray


class Retriever(Protocol):
    """Finds the chunks for a question, and knows how rare each word is in the corpus (the
    context selector and the citation check weigh words by it)."""

    @property
    def rarity(self) -> Rarity: ...

    @property
    def n_chunks(self) -> int:
        """How many chunks the store holds (0: nothing could ever be answered)."""
        ...

    @property
    def version(self) -> str:
        """Which index this is, for /ready and /metrics (a FAISS version folder's name)."""
        ...

    def retrieve(self, question: str, top_k: int) -> Retrieval: ...


class HybridRetriever:
    """`bm25` may be passed in already built (the scale bench builds it from synthetic terms);
    by default it is the one saved with the index, or, for an index saved without one, built now
    from the chunks' content words."""

    def __init__(
        self, data: IndexData, embedder: Embedder, rrf_k: int = 60, candidates: int = 30, bm25: BM25 | None = None
    ) -> None:
        self.data = data
        self.embedder = embedder
        self.rrf_k = rrf_k
        self.candidates = candidates
        self.bm25 = bm25 or data.bm25 or BM25.of_texts(c.embed_text for c in data.chunks)

    @property
    def rarity(self) -> Rarity:
        return self.bm25.idf

    @property
    def n_chunks(self) -> int:
        return len(self.data.chunks)

    @property
    def version(self) -> str:
        return self.data.version

    def retrieve(self, question: str, top_k: int) -> Retrieval:
        query = self.embedder.encode_query(question)
        n = len(self.data.chunks)
        if n == 0:
            return Retrieval([], query)
        depth = min(n, max(self.candidates, top_k))
        sims, ids = self.data.faiss_index.search(query.reshape(1, -1).astype(np.float32), depth)
        dense_rank = [int(i) for i in ids[0] if i >= 0]
        dense_score = {int(i): float(s) for i, s in zip(ids[0], sims[0], strict=False) if i >= 0}
        lexical_rank = self.bm25.top(content_words(question), depth)
        fused: dict[int, float] = {}
        for ranking in (dense_rank, lexical_rank):
            for rank, i in enumerate(ranking):
                fused[i] = fused.get(i, 0.0) + 1.0 / (self.rrf_k + rank + 1)
        best = sorted(fused, key=lambda i: -fused[i])[:top_k]
        hits = []
        for i in best:
            dense = dense_score.get(i)
            if dense is None:
                dense = float(self.data.chunk_vectors[i] @ query)
            hits.append(Hit(i, self.data.chunks[i], dense, fused[i]))
        return Retrieval(hits, query)
