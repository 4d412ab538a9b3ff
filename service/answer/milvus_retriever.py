"""The `Retriever` over Milvus: the engine runs the dense and BM25 legs and fuses them by RRF
(k=60, 30 candidates each, as `HybridRetriever` does in process).

Word rarity comes from the per-file df records the builder stores, so it is exactly the local
BM25's idf over the same chunks without reading every chunk at start-up; a running service re-reads
it when the stored files change (service/answer/served_lexicon.py).

The engine analyzes the raw question for its BM25 leg (its tokenizer, not `content_words`), so the
lexical ranking can differ slightly from the local one; the rarity table does not.
"""

from __future__ import annotations

from index.embedder import Embedder
from index.milvus_store import MilvusChunkStore, MilvusStoreError
from service.answer.retrieval import Hit, Retrieval
from service.answer.served_lexicon import Lexicon, LexiconHolder


class MilvusRetriever(LexiconHolder):
    store: MilvusChunkStore

    def __init__(self, store: MilvusChunkStore, embedder: Embedder, rrf_k: int = 60, candidates: int = 30) -> None:
        store.ensure()  # refuses a collection of another dimension
        meta = store.meta() or {}
        if meta.get("embedding_model") not in (None, embedder.name):
            raise MilvusStoreError(
                f"the Milvus index at {store.uri} was built with embedding model {meta['embedding_model']!r}, "
                f"not {embedder.name!r}: run `citeqa index` to rebuild it"
            )
        self.store = store
        self.embedder = embedder
        self.rrf_k = rrf_k
        self.candidates = candidates
        self._lexicon: Lexicon = Lexicon.read(store)

    @property
    def version(self) -> str:
        return f"milvus:{self.store.collection}@{self.fingerprint}"

    def retrieve(self, question: str, top_k: int) -> Retrieval:
        query = self.embedder.encode_query(question)
        found = self.store.hybrid_search(query, question, top_k, candidates=self.candidates, rrf_k=self.rrf_k)
        return Retrieval([Hit(h.chunk_id, h.chunk, h.dense, h.fused) for h in found], query)
