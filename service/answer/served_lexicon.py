"""What the engine-backed retrievers (Milvus, pgvector) hold about the stored corpus besides the
engine itself: word rarity (the local BM25's idf, from the per-file df records), the mean chunk
length and the chunk count, plus a fingerprint of the file records they were read from.

Why a fingerprint: these stores are updated in place by `citeqa index`, file by file, so there is no
version folder to watch. Each file's record is written when its chunks are (pgvector: in the same
transaction; Milvus: last), so the set of (file, sha256) records changes exactly when the stored
corpus does, including after a build that was killed halfway. The service compares it on a timer
(service/api/reload.py `StoreWatcher`) and re-reads the rest only when it changed.

Why one frozen object: a refresh builds a new `Lexicon` completely and puts it in place with one
assignment, so a request never weighs its query with one build's idf and another build's avgdl.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from index.chunk_records import Stats
from service.answer.words import Rarity


class LexiconStore(Protocol):
    def stats(self) -> Stats: ...

    def files(self) -> dict[str, str]: ...


def files_fingerprint(files: dict[str, str]) -> str:
    """A digest of the stored file records (source and sha256), independent of their order."""
    digest = hashlib.sha256()
    for source, sha in sorted(files.items()):
        digest.update(f"{source}\0{sha}\n".encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Lexicon:
    n_chunks: int
    idf: dict[str, float]
    rarity: Rarity
    avgdl: float  # mean chunk length in terms (BM25's avgdl); 1.0 where the engine keeps its own
    fingerprint: str

    @classmethod
    def read(cls, store: LexiconStore) -> Lexicon:
        """The fingerprint is read first: a build that lands in between makes the next poll see a
        change and read again, never the other way round."""
        fingerprint = files_fingerprint(store.files())
        stats = store.stats()
        idf = stats.idf()
        average_terms = getattr(store, "average_terms", None)
        avgdl = float(average_terms()) if average_terms is not None else 1.0
        return cls(stats.n_chunks, idf, Rarity(idf), avgdl, fingerprint)


class LexiconHolder:
    """The part of a served-store retriever that keeps its `Lexicon` current (mixed into both)."""

    store: LexiconStore
    _lexicon: Lexicon

    def refresh(self) -> None:
        """Re-read rarity, avgdl and the chunk count from the store, and swap them in at once."""
        self._lexicon = Lexicon.read(self.store)

    def changed(self) -> bool:
        """Whether the stored files differ from those the lexicon was read from (one cheap query)."""
        return files_fingerprint(self.store.files()) != self._lexicon.fingerprint

    @property
    def rarity(self) -> Rarity:
        return self._lexicon.rarity

    @property
    def n_chunks(self) -> int:
        return self._lexicon.n_chunks

    @property
    def fingerprint(self) -> str:
        return self._lexicon.fingerprint
