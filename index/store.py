"""The on-disk index: a FAISS file, chunk metadata, vectors and a manifest, written atomically.

Each build writes a fresh version folder and only then repoints the `CURRENT` file at it with an
atomic rename, so a build killed at any moment leaves the previous index loadable. The manifest
records checksums of every data file so a damaged index is refused at start-up, not half-served.

One writer at a time: builds hold `write_lock` (an flock on `.lock` in the index folder, which
the OS releases when the process dies). Pruning keeps the version `CURRENT` names and the one it
named before (`PREVIOUS`: a replica that read `CURRENT` a moment before the switch may still be
loading it); everything else of ours in the folder is the debris of a killed build.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index import vector_index
from index.chunking import Chunk, Span
from index.lexical import BM25

log = logging.getLogger("citeqa.index")

# 2: no per-sentence vectors (the service embeds a retrieved chunk's sentences when it needs them)
FORMAT = 2
POINTER = "CURRENT"
PREVIOUS = "PREVIOUS"  # the version CURRENT named before the last switch; kept on disk
LOCK = ".lock"
LOCK_TIMEOUT = 600.0  # seconds a build waits for another to finish before giving up
FILES = ("chunks.jsonl", "chunk_vectors.npy", "faiss.index")
LEXICAL_DIR = "bm25"  # the saved BM25 index (index/lexical.py): its files are checksummed as the rest
# Names of what a killed build can leave behind (never the lock file: see `write_lock`).
_DEBRIS = (".staging-", f".{POINTER}.tmp", f".{PREVIOUS}.tmp")


class IndexLoadError(RuntimeError):
    """Seen by whoever starts the service: the index is missing or damaged; the message names the fix."""


class IndexLockedError(TimeoutError):
    """Another build held the index folder's lock for longer than this one was willing to wait."""

    def __init__(self, lock_path: Path, waited: float, holder: str) -> None:
        self.lock_path = lock_path
        super().__init__(
            f"another build {holder}has held the index lock {lock_path} for more than {waited:.0f} s; "
            "let it finish and run `citeqa index` again (the lock is released when that process exits)"
        )


def _lock_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""
    return f"({text}) " if text else ""


@contextlib.contextmanager
def write_lock(index_dir: Path, timeout: float = LOCK_TIMEOUT, poll: float = 0.2) -> Iterator[Path]:
    """Hold the index folder's exclusive write lock: wait up to `timeout` seconds for it, saying
    so in the log, then raise `IndexLockedError`. The lock is an flock on `index_dir/.lock`, so the
    OS drops it when its holder dies, however it dies; the file itself stays (deleting it would let
    a waiter lock a file nobody else sees)."""
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            started = time.monotonic()
            log.warning(
                "waiting for the index lock %s: another build %sis writing this index (up to %.0f s)",
                path,
                _lock_holder(fd),
                timeout,
            )
            while True:
                remaining = started + timeout - time.monotonic()
                if remaining <= 0:
                    raise IndexLockedError(path, timeout, _lock_holder(fd)) from None
                time.sleep(min(poll, remaining))
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    continue
            log.warning("got the index lock %s after %.1f s", path, time.monotonic() - started)
        # Who holds it, for the message a waiting build prints (diagnostics only).
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock


@dataclass
class Manifest:
    embedding_model: str
    dim: int
    chunk_tokens: int
    chunk_overlap: int
    encoding: str
    files: dict[str, str]  # source -> sha256 of the raw file
    n_chunks: int = 0
    built_at: float = 0.0
    format: int = FORMAT
    chunker: int = 1  # index.chunking.CHUNKER_VERSION at build time
    vector_index: str = "Flat"  # the faiss.index_factory string the vectors are held in (index/vector_index.py)
    nprobe: int = 0  # IVF cells a search scans (0 for an exact index)
    checksums: dict[str, str] = field(default_factory=dict)

    def settings_mismatch(self, other: Manifest) -> list[str]:
        """Why an index built with `self` cannot be updated in place to `other` settings."""
        keys = ("format", "chunker", "embedding_model", "dim", "chunk_tokens", "chunk_overlap", "encoding")
        return [
            f"{k} changed ({getattr(self, k)!r} -> {getattr(other, k)!r})"
            for k in keys
            if getattr(self, k) != getattr(other, k)
        ]


@dataclass
class IndexData:
    manifest: Manifest
    chunks: list[Chunk]
    chunk_vectors: np.ndarray  # (n_chunks, dim), L2-normalised
    faiss_index: Any = None
    # The lexical index (index/lexical.py), built with the vectors and saved beside them; None
    # for data read from a version written before it was saved, which the retriever builds at load.
    bm25: BM25 | None = None
    # The version folder's name (`v-...`) when read by `load`: what a running service compares
    # with `CURRENT` to notice a new build ("" for data built in memory).
    version: str = ""

    @classmethod
    def create(
        cls, manifest: Manifest, chunks: list[Chunk], chunk_vectors: np.ndarray, bm25: BM25 | None = None
    ) -> IndexData:
        """Index the vectors in the FAISS index the corpus size calls for, recorded in `manifest`,
        and the chunks' content words in BM25 (unless `bm25` is given, as the scale bench does)."""
        if len(chunks) != len(chunk_vectors):
            raise ValueError("vector counts do not match the chunks")
        spec = vector_index.choose(len(chunks))
        manifest.vector_index, manifest.nprobe = spec.factory, spec.nprobe
        manifest.n_chunks = len(chunks)
        faiss_index = vector_index.build(chunk_vectors, manifest.dim, spec)
        return cls(manifest, chunks, chunk_vectors, faiss_index, bm25 or BM25.of_texts(c.embed_text for c in chunks))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def _write_file(path: Path, write) -> None:  # type: ignore[no-untyped-def]
    with path.open("wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def _write_pointer(index_dir: Path, name: str, value: str) -> None:
    tmp = index_dir / f".{name}.tmp-{os.getpid()}"
    _write_file(tmp, lambda fh: fh.write(value.encode()))
    os.replace(tmp, index_dir / name)


def save(data: IndexData, index_dir: Path) -> Path:
    """Write a new version folder, then switch `CURRENT` to it atomically. Returns the folder.

    Call it holding `write_lock`: pruning assumes no other build is writing this folder."""
    index_dir.mkdir(parents=True, exist_ok=True)
    version = index_dir / f"v-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    staging = index_dir / f".staging-{version.name}"
    staging.mkdir()
    switched = False
    try:
        chunk_lines = "".join(json.dumps(asdict(c), ensure_ascii=False) + "\n" for c in data.chunks)
        _write_file(staging / "chunks.jsonl", lambda fh: fh.write(chunk_lines.encode()))
        _write_file(staging / "chunk_vectors.npy", lambda fh: np.save(fh, data.chunk_vectors))
        serialized = faiss.serialize_index(data.faiss_index)
        _write_file(staging / "faiss.index", lambda fh: fh.write(serialized.tobytes()))
        bm25 = data.bm25 or BM25.of_texts(c.embed_text for c in data.chunks)
        lexical = [p.relative_to(staging).as_posix() for p in bm25.save(staging / LEXICAL_DIR)]
        for path in lexical:
            _fsync_file(staging / path)
        data.manifest.checksums = {name: _sha256(staging / name) for name in (*FILES, *lexical)}
        data.manifest.built_at = time.time()
        manifest_json = json.dumps(asdict(data.manifest), indent=2, sort_keys=True).encode()
        _write_file(staging / "manifest.json", lambda fh: fh.write(manifest_json))
        _fsync_dir(staging)
        os.replace(staging, version)
        # Record the version being replaced before the switch, so it is never unprotected.
        old = current_version(index_dir)
        if old is not None and old.is_dir() and old != version:
            _write_pointer(index_dir, PREVIOUS, old.name)
        _write_pointer(index_dir, POINTER, version.name)
        switched = True
        _fsync_dir(index_dir)
    except BaseException:
        # Leave no debris; the next build's prune would catch any, but a failed build is tidy now.
        with contextlib.suppress(OSError):
            shutil.rmtree(staging, ignore_errors=True)
            if not switched and current_version(index_dir) != version:
                shutil.rmtree(version, ignore_errors=True)
            for name in (POINTER, PREVIOUS):
                (index_dir / f".{name}.tmp-{os.getpid()}").unlink(missing_ok=True)
        raise
    prune(index_dir)
    return version


def protected_versions(index_dir: Path) -> set[str]:
    """The version folders pruning must keep: the one `CURRENT` names and the one before it."""
    keep = set()
    for name in (POINTER, PREVIOUS):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if value := (index_dir / name).read_text().strip():
                keep.add(value)
    return keep


def prune(index_dir: Path) -> list[str]:
    """Remove old versions and what killed builds left (staging folders, pointer temp files).

    Keeps the versions `CURRENT` and `PREVIOUS` name, read from disk now, never from memory: a
    build that pruned with what it believed current deleted a later build's version. Run only
    holding `write_lock`, or a staging folder being written could go. Returns what it removed."""
    if not index_dir.is_dir():
        return []
    keep = protected_versions(index_dir)
    removed = []
    for path in sorted(index_dir.iterdir()):
        if path.name in keep or not path.name.startswith(("v-", *_DEBRIS)):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path.name)
    return removed


def current_version(index_dir: Path) -> Path | None:
    pointer = index_dir / POINTER
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    return index_dir / name if name else None


def read_manifest(index_dir: Path) -> Manifest | None:
    version = current_version(index_dir)
    if version is None or not (version / "manifest.json").is_file():
        return None
    try:
        return Manifest(**json.loads((version / "manifest.json").read_text()))
    except (ValueError, TypeError):
        return None


def load(index_dir: Path) -> IndexData:
    fix = "run `citeqa index` (or `make index`) to build it"
    version = current_version(index_dir)
    if version is None:
        raise IndexLoadError(f"no index found in {index_dir}: {fix}")
    if not version.is_dir():
        raise IndexLoadError(f"index {index_dir} points at missing folder {version.name}: {fix}")
    try:
        manifest = Manifest(**json.loads((version / "manifest.json").read_text()))
        for name in FILES:
            if _sha256(version / name) != manifest.checksums.get(name):
                raise IndexLoadError(f"index file {version / name} is damaged (checksum mismatch): {fix}")
        chunks = []
        for line in (version / "chunks.jsonl").read_text().splitlines():
            raw = json.loads(line)
            raw["sentences"] = [Span(**s) for s in raw["sentences"]]
            chunks.append(Chunk(**raw))
        chunk_vectors = np.load(version / "chunk_vectors.npy")
        faiss_index = faiss.deserialize_index(np.frombuffer((version / "faiss.index").read_bytes(), np.uint8))
        bm25 = _load_lexical(version, manifest)
    except IndexLoadError:
        raise
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise IndexLoadError(f"index in {version} cannot be read ({exc}): {fix}") from exc
    if faiss_index.ntotal != len(chunks) or len(chunk_vectors) != len(chunks) or faiss_index.d != manifest.dim:
        raise IndexLoadError(f"index in {version} is inconsistent: {fix}")
    vector_index.configure(faiss_index, vector_index.VectorIndexSpec(manifest.vector_index, manifest.nprobe))
    if bm25 is not None and bm25.n != len(chunks):
        raise IndexLoadError(f"index in {version} is inconsistent (lexical index): {fix}")
    return IndexData(manifest, chunks, chunk_vectors, faiss_index, bm25, version=version.name)


def _load_lexical(version: Path, manifest: Manifest) -> BM25 | None:
    """The saved BM25 index, checked like the other files; None for a version saved without one."""
    lexical = sorted(name for name in manifest.checksums if name.startswith(LEXICAL_DIR + "/"))
    if not lexical:
        return None
    for name in lexical:
        if _sha256(version / name) != manifest.checksums[name]:
            raise IndexLoadError(f"index file {version / name} is damaged (checksum mismatch): run `citeqa index`")
    return BM25.load(version / LEXICAL_DIR)


def current_name(index_dir: Path) -> str | None:
    """The version `CURRENT` names, or None when there is none or it cannot be read. Cheap (one
    small file), for a service that polls it to notice a new build."""
    try:
        return (index_dir / POINTER).read_text().strip() or None
    except (OSError, UnicodeDecodeError):
        return None
