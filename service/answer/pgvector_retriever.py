"""The `Retriever` over PostgreSQL + pgvector: one SQL statement runs the dense (HNSW or IVFFlat) and BM25
(postings b-tree) legs and fuses them by RRF (k from settings, 30 candidates each, as
`HybridRetriever` does in process).

Word rarity comes from the per-file df records the builder stores, so it is exactly the local
BM25's idf over the same chunks without reading every chunk at start-up; the same idf weighs the
lexical leg in SQL. A running service re-reads it when the stored files change
(service/answer/served_lexicon.py).
"""

from __future__ import annotations

from index.embedder import Embedder
from index.pgvector_store import PgvectorChunkStore, PgvectorStoreError
from service.answer.retrieval import Hit, Retrieval
from service.answer.served_lexicon import Lexicon, LexiconHolder
from service.errors import StoreUnavailable


class PgvectorRetriever(LexiconHolder):
    store: PgvectorChunkStore

    def __init__(self, store: PgvectorChunkStore, embedder: Embedder, rrf_k: int = 60, candidates: int = 30) -> None:
        store.ensure()  # refuses a table of another dimension
        meta = store.meta() or {}
        if meta.get("embedding_model") not in (None, embedder.name):
            raise PgvectorStoreError(
                f"the pgvector index at {store.safe_dsn} was built with embedding model "
                f"{meta['embedding_model']!r}, not {embedder.name!r}: run `citeqa index` to rebuild it"
            )
        self.store = store
        self.embedder = embedder
        self.rrf_k = rrf_k
        self.candidates = candidates
        self._lexicon: Lexicon = Lexicon.read(store)

    @property
    def version(self) -> str:
        return f"pgvector:{self.store.table}@{self.fingerprint}"

    def retrieve(self, question: str, top_k: int) -> Retrieval:
        query = self.embedder.encode_query(question)
        lexicon = self._lexicon  # once: a refresh mid-request does not mix two builds' statistics
        try:
            found = self.store.hybrid_search(
                query,
                question,
                top_k,
                candidates=self.candidates,
                rrf_k=self.rrf_k,
                idf=lexicon.idf,
                avgdl=lexicon.avgdl,
            )
        except PgvectorStoreError as exc:  # PostgreSQL down or out of connections: a 503, not a 500
            raise StoreUnavailable(str(exc)) from exc
        return Retrieval([Hit(h.chunk_id, h.chunk, h.dense, h.fused) for h in found], query)
