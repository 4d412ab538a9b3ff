"""Build or incrementally update the Milvus index: the FAISS builder's contract (re-embed only
changed files, drop deleted ones, rebuild when the settings changed) with Milvus as the store.

Only chunk vectors are embedded: search needs them, and the per-sentence vectors the FAISS index
also stores are an answer-pipeline concern that is not wired to Milvus yet.

Milvus applies each file's upsert on its own, so a build killed halfway leaves some files new and
some old; every file is consistent (its record is written last), and the next build finishes the
rest. A Milvus Lite file is opened by one process at a time, which keeps two builds of it apart;
against a Milvus server there is no cross-process lock (Milvus has no compare-and-set to make one
from): run one build at a time per collection.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from index.builder import BuildReport, Progress, read_documents, sort_changes
from index.embedder import Embedder
from index.milvus_store import CHUNKS_DEFAULT, MilvusChunkStore
from index.served_build import rebuild_reason, wanted_meta, write_changes

log = logging.getLogger("citeqa.index")


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

    write_changes(store, fresh, report, embedder, chunk_tokens, chunk_overlap, progress)
    if report.written:
        store.flush()  # sealed segments are searched by their index; growing ones 10-15x slower
    report.n_chunks = store.stats().n_chunks
    report.seconds = time.perf_counter() - started
    return report
