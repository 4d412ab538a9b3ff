"""What the engine-backed stores (Milvus, pgvector) share: a chunk's stable id, the terms their
lexical leg indexes, the chunk as JSON and back, the per-file document frequencies that give the
local BM25's exact idf, and the hit and stats records their retrievers read."""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from index.chunking import Chunk, Span
from service.answer.words import content_words


def sanitize_term(word: str) -> str:
    """A content word made one word (`_` joins it, so "x-utf8" stays one term)."""
    return re.sub(r"\W", "_", word)


def bm25_terms(text: str) -> str:
    """The very terms the local BM25 reads: `content_words` (lemmatised, stop words out), each made
    one word by `sanitize_term`, space-separated."""
    return " ".join(sanitize_term(term) for term in content_words(text))


@dataclass
class StoredHit:
    chunk_id: int
    chunk: Chunk
    dense: float  # cosine similarity of the query and the chunk
    fused: float  # the engine's reciprocal-rank-fusion score


@dataclass
class Stats:
    n_chunks: int
    df: dict[str, int] = field(default_factory=dict)  # word -> chunks containing it, over all files

    def idf(self) -> dict[str, float]:
        """The same formula as `service.answer.retrieval.BM25`."""
        n = self.n_chunks
        return {w: math.log(1 + (n - d + 0.5) / (d + 0.5)) for w, d in self.df.items()}


def int63(*parts: str) -> int:
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def chunk_id(source: str, position: int) -> int:
    """A chunk's primary key: stable for (source, position), unique across files in practice."""
    return int63("chunk", source, str(position))


def document_frequencies(chunks: Iterable[Chunk]) -> dict[str, int]:
    """word -> number of the chunks whose `content_words(embed_text)` contain it."""
    df: Counter[str] = Counter()
    for chunk in chunks:
        df.update(set(content_words(chunk.embed_text)))
    return dict(df)


def chunk_from_json(raw: dict[str, Any]) -> Chunk:
    raw = dict(raw)
    raw["sentences"] = [Span(**s) for s in raw.get("sentences", [])]
    return Chunk(**raw)


def files_fingerprint(files: dict[str, str]) -> str:
    """A digest of file records (source -> sha256), independent of their order."""
    digest = hashlib.sha256()
    for source, sha in sorted(files.items()):
        digest.update(f"{source}\0{sha}\n".encode())
    return digest.hexdigest()[:16]
