"""What the builders of the served stores (Milvus, pgvector) share: the build record an index must
match to be updated in place, why it must be rebuilt instead, and writing the changed files.

The FAISS builder (index/builder.py) writes versioned folders; these stores are updated in place,
file by file, so each builder only decides between updating and rebuilding and then hands the
changed files to `write_changes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from index.builder import BatchProgress, BuildReport, Progress
from index.chunking import CHUNKER_VERSION, Chunk, chunk_document
from index.documents import Document
from index.embedder import Embedder
from index.tokens import ENCODING


class FileStore(Protocol):
    """A store that takes a file's chunks in one call and drops a file's chunks in another."""

    def upsert_file(self, source: str, sha256: str, chunks: Sequence[Chunk], vectors: np.ndarray) -> None: ...

    def delete_file(self, source: str) -> None: ...


META_FORMAT = 1


def wanted_meta(embedder: Embedder, chunk_tokens: int, chunk_overlap: int) -> dict[str, Any]:
    """What an index must have been built with to be updated in place (as the FAISS manifest)."""
    return {
        "format": META_FORMAT,
        "chunker": CHUNKER_VERSION,
        "embedding_model": embedder.name,
        "dim": embedder.dim,
        "chunk_tokens": chunk_tokens,
        "chunk_overlap": chunk_overlap,
        "encoding": ENCODING,
    }


def rebuild_reason(
    stored_meta: dict[str, Any] | None, wanted: dict[str, Any], force: bool, exists: bool, what: str
) -> str | None:
    """Why a store's index must be rebuilt rather than updated (None when it can be updated): forced,
    built with other settings, or `what` (collections, tables) exist with no build record."""
    if force:
        return "forced rebuild"
    if stored_meta is not None and (why := meta_mismatch(stored_meta, wanted)):
        return "settings changed: " + "; ".join(why)
    if stored_meta is None and exists:
        return f"existing {what} have no build record"
    return None


def meta_mismatch(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    return [f"{k} changed ({stored.get(k)!r} -> {v!r})" for k, v in wanted.items() if stored.get(k) != v]


def write_changes(
    store: FileStore,
    fresh: list[Document],
    report: BuildReport,
    embedder: Embedder,
    chunk_tokens: int,
    chunk_overlap: int,
    progress: Progress | None,
) -> None:
    """Chunk and embed the new and changed files (one progress bar over all their chunks), write
    each in one call, drop the removed ones, and record whether anything was written."""
    per_doc = [(doc, chunk_document(doc, chunk_tokens, chunk_overlap)) for doc in fresh]
    on_batch = BatchProgress(sum(len(chunks) for _, chunks in per_doc), progress)

    for doc, chunks in per_doc:
        texts = [c.embed_text for c in chunks]
        vectors = (
            embedder.encode_documents(texts, progress=on_batch) if texts else np.zeros((0, embedder.dim), np.float32)
        )
        store.upsert_file(doc.source, doc.sha256, chunks, np.asarray(vectors, dtype=np.float32))
        report.n_embedded += len(texts)
    for source in report.removed:
        store.delete_file(source)
    report.written = bool(fresh or report.removed or report.rebuild_reason)
