"""What the engine-backed retrievers (Milvus, pgvector) hold about the stored corpus besides the
engine itself: word rarity (the local BM25's idf, from the per-file df records), the mean chunk
length and the chunk count, plus a digest of the file records they were read from.

Why a digest: these stores are updated in place by `citeqa index`, file by file, so there is no
version folder to watch. Each file's record is written when its chunks are (pgvector: in the same
transaction; Milvus: last), so the file records change exactly when the stored corpus does,
including after a build that was killed halfway. The service compares the digest on a timer
(service/api/reload.py `StoreWatcher`) and re-reads the rest only when it changed.

Why one frozen object: a refresh builds a new `Lexicon` completely and puts it in place with one
assignment, so a search never weighs its query with one build's idf and another build's avgdl.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from index.chunk_records import Stats
from index.embedder import Embedder
from service.answer.words import Rarity


class LexiconStore(Protocol):
    def stats(self) -> Stats: ...

    def files_digest(self) -> str: ...

    def meta(self) -> dict[str, Any] | None: ...

    def stored_dim(self) -> int | None: ...


@dataclass(frozen=True)
class Lexicon:
    n_chunks: int
    idf: dict[str, float]
    rarity: Rarity
    avgdl: float  # mean chunk length in terms (BM25's avgdl); 1.0 where the engine keeps its own
    fingerprint: str

    @classmethod
    def read(cls, store: LexiconStore) -> Lexicon:
        """The digest is read first: a build that lands in between makes the next poll see a
        change and read again, never the other way round."""
        fingerprint = store.files_digest()
        stats = store.stats()
        idf = stats.idf()
        average_terms = getattr(store, "average_terms", None)
        avgdl = float(average_terms()) if average_terms is not None else 1.0
        return cls(stats.n_chunks, idf, Rarity(idf), avgdl, fingerprint)


class LexiconHolder:
    """The part of a served-store retriever that keeps its `Lexicon` current (mixed into both)."""

    store: LexiconStore
    embedder: Embedder
    _lexicon: Lexicon

    def refresh(self) -> None:
        """Re-read rarity, avgdl and the chunk count from the store, and swap them in at once."""
        self.use(Lexicon.read(self.store))

    def use(self, lexicon: Lexicon) -> None:
        self._lexicon = lexicon

    def changed(self) -> bool:
        """Whether the stored files differ from those the lexicon was read from (one cheap query)."""
        return self.store.files_digest() != self._lexicon.fingerprint

    def incompatible(self) -> str | None:
        """Why this process cannot serve the store as it is now (it was rebuilt with another
        embedding model or dimension since start-up), or None. Re-reading rarity would not help
        then: the queries would still be embedded by the wrong model."""
        model = (self.store.meta() or {}).get("embedding_model")
        if model not in (None, self.embedder.name):
            return (
                f"the store was rebuilt with embedding model {model!r}; this service embeds queries with "
                f"{self.embedder.name!r}: set CITEQA_EMBEDDING_MODEL to match and restart it"
            )
        dim = self.store.stored_dim()
        if dim not in (None, self.embedder.dim):
            return f"the store now holds {dim}-dim vectors, this service's embedder makes {self.embedder.dim}-dim ones"
        return None

    @property
    def rarity(self) -> Rarity:
        return self._lexicon.rarity

    @property
    def n_chunks(self) -> int:
        return self._lexicon.n_chunks

    @property
    def fingerprint(self) -> str:
        return self._lexicon.fingerprint
