"""Build or incrementally update the pgvector index: the Milvus builder's contract (re-embed only
changed files, drop deleted ones, rebuild when the settings changed) with PostgreSQL as the store.

Each file's update is one transaction, so a build killed halfway leaves every file either old or
new, and the next build finishes the rest. A rebuild loads every row first and builds the dense
index once at the end; any build ends by re-choosing it for the table's size (from the stored
vectors). A build holds the table's advisory lock (`PgvectorChunkStore.build_lock`), so a
second `citeqa index` on the same table waits for the first instead of interleaving with it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from index.builder import BuildReport, Progress, read_documents, sort_changes
from index.embedder import Embedder
from index.pgvector_store import TABLE_DEFAULT, PgvectorChunkStore
from index.served_build import rebuild_reason, wanted_meta, write_changes

log = logging.getLogger("citeqa.index")


def build_pgvector(
    corpus_dir: Path,
    dsn: str,
    embedder: Embedder,
    chunk_tokens: int,
    chunk_overlap: int,
    progress: Progress | None = None,
    force: bool = False,
    table: str = TABLE_DEFAULT,
    store: PgvectorChunkStore | None = None,
    lock_timeout: float = 600.0,
) -> BuildReport:
    """Raises FileNotFoundError when the corpus folder is missing, PgvectorStoreError when the
    database cannot hold the index."""
    started = time.perf_counter()
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"corpus folder {corpus_dir} does not exist")
    store = store or PgvectorChunkStore(dsn, table=table, dim=embedder.dim)
    with store.build_lock(lock_timeout):
        return _build(corpus_dir, store, embedder, chunk_tokens, chunk_overlap, progress, force, started)


def _build(
    corpus_dir: Path,
    store: PgvectorChunkStore,
    embedder: Embedder,
    chunk_tokens: int,
    chunk_overlap: int,
    progress: Progress | None,
    force: bool,
    started: float,
) -> BuildReport:
    report = BuildReport()
    docs = read_documents(corpus_dir, report)
    wanted = wanted_meta(embedder, chunk_tokens, chunk_overlap)
    # The HNSW graph's shape is part of what the index was built with; its kind (HNSW or IVFFlat)
    # and cells are re-chosen by build_indexes from the stored vectors, and ef_search and probes are
    # only query knobs.
    wanted.update(store.index_shape())

    stored_meta = store.meta()
    report.rebuild_reason = rebuild_reason(stored_meta, wanted, force, store.exists(), "tables")
    if report.rebuild_reason:
        log.info("rebuilding pgvector table %s: %s", store.table, report.rebuild_reason)
        store.reset()
        stored: dict[str, str] = {}
    else:
        store.ensure()  # raises DimensionMismatchError for a table of another dim
        stored = store.files()
    # ef_search is the operator's; the dense index's name is kept only while the index is (after a
    # reset the new one is recorded once built, so a running service's watcher notices it then).
    keep = ("ef_search",) if report.rebuild_reason else ("ef_search", "dense_index")
    kept = {k: v for k, v in (stored_meta or {}).items() if k in keep}
    store.set_meta({"ef_search": store.ef_search, **kept, **wanted})

    fresh = sort_changes(docs, stored, report)
    write_changes(store, fresh, report, embedder, chunk_tokens, chunk_overlap, progress)
    # No-ops when they exist and suit the table (incremental rows went into them).
    report.dense_index_change = store.build_indexes()
    report.n_chunks = store.stats().n_chunks
    report.seconds = time.perf_counter() - started
    return report
