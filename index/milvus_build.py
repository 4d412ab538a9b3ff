"""Build or incrementally update the Milvus index: the FAISS builder's contract (re-embed only
changed files, drop deleted ones, rebuild when the settings changed) with Milvus as the store.

Only chunk vectors are embedded: search needs them, and the per-sentence vectors the FAISS index
also stores are an answer-pipeline concern that is not wired to Milvus yet.

Milvus applies each file's upsert on its own, so a build killed halfway leaves some files new and
some old; every file is consistent (its record is written last), and the next build finishes the
rest. There is no cross-process lock: run one build at a time per collection.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from index.builder import BatchProgress, BuildReport, Progress, read_documents, sort_changes
from index.chunking import CHUNKER_VERSION, chunk_document
from index.embedder import Embedder
from index.milvus_store import CHUNKS_DEFAULT, MilvusChunkStore
from index.tokens import ENCODING

log = logging.getLogger("citeqa.index")

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


def build_milvus(
    corpus_dir: Path,
    uri: str,
    embedder: Embedder,
    chunk_tokens: int,
    chunk_overlap: int,
    progress: Progress | None = None,
    force: bool = False,
    collection: str = CHUNKS_DEFAULT,
    store: MilvusChunkStore | None = None,
) -> BuildReport:
    """Raises FileNotFoundError when the corpus folder is missing."""
    started = time.perf_counter()
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"corpus folder {corpus_dir} does not exist")
    report = BuildReport()
    docs = read_documents(corpus_dir, report)
    store = store or MilvusChunkStore(uri, collection=collection, dim=embedder.dim)
    wanted = wanted_meta(embedder, chunk_tokens, chunk_overlap)

    stored_meta = store.meta()
    report.rebuild_reason = rebuild_reason(stored_meta, wanted, force, store.exists(), "collections")
    if report.rebuild_reason:
        log.info("rebuilding Milvus collection %s: %s", store.collection, report.rebuild_reason)
        store.reset()
        stored: dict[str, str] = {}
    else:
        store.ensure()  # raises DimensionMismatchError for a collection of another dim
        stored = store.files()
    store.set_meta(wanted)

    fresh = sort_changes(docs, stored, report)

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
    if report.written:
        store.flush()  # sealed segments are searched by their index; growing ones 10-15x slower
    report.n_chunks = store.stats().n_chunks
    report.seconds = time.perf_counter() - started
    return report
