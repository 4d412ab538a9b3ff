"""Build or incrementally update the index: re-embed only changed files, drop deleted ones, and
rebuild from scratch when the stored index was made with other settings.

A build holds the index folder's write lock from before it reads the stored index until after it
has pruned, so two builds (two replicas starting, a cron job and an operator) run one after the
other, the second on top of the first's result, instead of deleting each other's versions."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index import store
from index.chunking import CHUNKER_VERSION, Chunk, chunk_document
from index.documents import Document, Skipped, load_corpus
from index.embedder import Embedder
from index.tokens import ENCODING

log = logging.getLogger("citeqa.index")

Progress = Callable[[int, int], None]  # (done, total) chunks embedded
Plan = Callable[[int, int], None]  # (files, chunks) about to be embedded, called once before embedding


@dataclass
class BuildReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    rebuild_reason: str | None = None
    dense_index_change: str | None = None  # pgvector: the dense index was replaced to suit the table
    n_chunks: int = 0
    n_embedded: int = 0
    written: bool = False
    seconds: float = 0.0


def _embed(chunks: list[Chunk], embedder: Embedder, on_batch: Callable[[int], None]) -> np.ndarray:
    """One vector per chunk, of what it is searched by. Sentences are not embedded here: the
    service embeds a retrieved chunk's sentences when a question needs them
    (service/answer/sentence_vectors.py), which made builds about five times quicker."""
    texts = [c.embed_text for c in chunks]
    vectors = embedder.encode_documents(texts, progress=on_batch) if texts else np.zeros((0, embedder.dim))
    return vectors.astype(np.float32)


def read_documents(corpus_dir: Path, report: BuildReport) -> list[Document]:
    """The corpus's documents, one per source (load_corpus reads each real file once; the
    assembly of an index relies on it), with what was skipped recorded in `report`."""
    docs, report.skipped = load_corpus(corpus_dir)
    unique: dict[str, Document] = {}
    for doc in docs:
        unique.setdefault(doc.source, doc)
    return list(unique.values())


def sort_changes(docs: list[Document], stored: dict[str, str], report: BuildReport) -> list[Document]:
    """Record in `report` which documents are added, updated, unchanged or removed against the
    `stored` source -> sha256 table; returns the ones to (re-)embed."""
    fresh: list[Document] = []
    for doc in docs:
        previous = stored.get(doc.source)
        if previous == doc.sha256:
            report.unchanged.append(doc.source)
        else:
            (report.updated if previous else report.added).append(doc.source)
            fresh.append(doc)
    current = {d.source for d in docs}
    report.removed = sorted(s for s in stored if s not in current)
    return fresh


class BatchProgress:
    """Turns the embedder's per-batch counts into `progress(done, total)` calls."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.done, self.total, self.progress = 0, total, progress

    def __call__(self, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, self.total)


def build(
    corpus_dir: Path,
    index_dir: Path,
    embedder: Embedder,
    chunk_tokens: int,
    chunk_overlap: int,
    progress: Progress | None = None,
    force: bool = False,
    lock_timeout: float = store.LOCK_TIMEOUT,
    plan: Plan | None = None,
) -> BuildReport:
    """Raises FileNotFoundError when the corpus folder is missing, and `store.IndexLockedError`
    when another build keeps the index locked for more than `lock_timeout` seconds."""
    started = time.perf_counter()
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"corpus folder {corpus_dir} does not exist")
    with store.write_lock(index_dir, timeout=lock_timeout):
        if removed := store.prune(index_dir):
            log.info("removed what earlier builds left in %s: %s", index_dir, ", ".join(removed))
        report = _build_locked(corpus_dir, index_dir, embedder, chunk_tokens, chunk_overlap, progress, force, plan)
    report.seconds = time.perf_counter() - started
    return report


def _build_locked(
    corpus_dir: Path,
    index_dir: Path,
    embedder: Embedder,
    chunk_tokens: int,
    chunk_overlap: int,
    progress: Progress | None,
    force: bool,
    plan: Plan | None = None,
) -> BuildReport:
    report = BuildReport()
    docs = read_documents(corpus_dir, report)
    wanted = store.Manifest(
        embedding_model=embedder.name,
        dim=embedder.dim,
        chunk_tokens=chunk_tokens,
        chunk_overlap=chunk_overlap,
        encoding=ENCODING,
        chunker=CHUNKER_VERSION,
        files={d.source: d.sha256 for d in docs},
    )

    old: store.IndexData | None = None
    if force:
        report.rebuild_reason = "forced rebuild"
    elif store.current_version(index_dir) is not None:
        try:
            old = store.load(index_dir)
        except store.IndexLoadError as exc:
            report.rebuild_reason = f"existing index unusable: {exc}"
        if old is not None and (why := old.manifest.settings_mismatch(wanted)):
            report.rebuild_reason = "settings changed: " + "; ".join(why)
            old = None

    old_by_source: dict[str, list[int]] = {}
    if old is not None:
        for i, chunk in enumerate(old.chunks):
            old_by_source.setdefault(chunk.source, []).append(i)

    fresh = sort_changes(docs, old.manifest.files if old else {}, report)

    if old is not None and not fresh and not report.removed:
        report.n_chunks = len(old.chunks)
        return report

    new_chunks = [c for doc in fresh for c in chunk_document(doc, chunk_tokens, chunk_overlap)]
    total = len(new_chunks)
    if plan:
        plan(len(fresh), total)
    new_chunk_vecs = _embed(new_chunks, embedder, BatchProgress(total, progress))
    report.n_embedded = total

    # Assemble in corpus order: kept chunks reuse their stored vectors, fresh ones use new vectors.
    chunks: list[Chunk] = []
    chunk_rows: list[np.ndarray] = []
    fresh_by_source: dict[str, list[int]] = {}
    for i, chunk in enumerate(new_chunks):
        fresh_by_source.setdefault(chunk.source, []).append(i)
    for doc in docs:
        if doc.source in fresh_by_source:
            for i in fresh_by_source[doc.source]:
                chunks.append(new_chunks[i])
                chunk_rows.append(new_chunk_vecs[i : i + 1])
        elif old is not None:
            for i in old_by_source.get(doc.source, []):
                chunks.append(old.chunks[i])
                chunk_rows.append(old.chunk_vectors[i : i + 1])
    dim = embedder.dim
    data = store.IndexData.create(
        wanted,
        chunks,
        np.concatenate(chunk_rows) if chunk_rows else np.zeros((0, dim), np.float32),
    )
    store.save(data, index_dir)
    report.written = True
    report.n_chunks = len(chunks)
    return report
