"""The on-disk index: a FAISS file, chunk metadata, vectors and a manifest, written atomically.

Each build writes a fresh version folder and only then repoints the `CURRENT` file at it with an
atomic rename, so a build killed at any moment leaves the previous index loadable. The manifest
records checksums of every data file so a damaged index is refused at start-up, not half-served.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index.chunking import Chunk, Span

FORMAT = 1
POINTER = "CURRENT"
FILES = ("chunks.jsonl", "chunk_vectors.npy", "sentence_vectors.npy", "faiss.index")


class IndexLoadError(RuntimeError):
    """Seen by whoever starts the service: the index is missing or damaged; the message names the fix."""


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
    sentence_vectors: np.ndarray  # (n_sentences, dim), rows in chunk order
    sentence_offsets: list[int]  # first sentence row of each chunk
    faiss_index: Any = None

    @classmethod
    def create(
        cls, manifest: Manifest, chunks: list[Chunk], chunk_vectors: np.ndarray, sentence_vectors: np.ndarray
    ) -> IndexData:
        offsets, total = [], 0
        for chunk in chunks:
            offsets.append(total)
            total += len(chunk.sentences)
        if total != len(sentence_vectors) or len(chunks) != len(chunk_vectors):
            raise ValueError("vector counts do not match the chunks")
        index = faiss.IndexFlatIP(manifest.dim)
        if len(chunk_vectors):
            index.add(np.ascontiguousarray(chunk_vectors, dtype=np.float32))
        manifest.n_chunks = len(chunks)
        return cls(manifest, chunks, chunk_vectors, sentence_vectors, offsets, index)

    def sentence_rows(self, chunk_id: int) -> np.ndarray:
        start = self.sentence_offsets[chunk_id]
        return self.sentence_vectors[start : start + len(self.chunks[chunk_id].sentences)]


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


def _write_file(path: Path, write) -> None:  # type: ignore[no-untyped-def]
    with path.open("wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def save(data: IndexData, index_dir: Path) -> Path:
    """Write a new version folder, then switch `CURRENT` to it atomically. Returns the folder."""
    index_dir.mkdir(parents=True, exist_ok=True)
    version = index_dir / f"v-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    staging = index_dir / f".staging-{version.name}"
    staging.mkdir()
    try:
        chunk_lines = "".join(json.dumps(asdict(c), ensure_ascii=False) + "\n" for c in data.chunks)
        _write_file(staging / "chunks.jsonl", lambda fh: fh.write(chunk_lines.encode()))
        _write_file(staging / "chunk_vectors.npy", lambda fh: np.save(fh, data.chunk_vectors))
        _write_file(staging / "sentence_vectors.npy", lambda fh: np.save(fh, data.sentence_vectors))
        serialized = faiss.serialize_index(data.faiss_index)
        _write_file(staging / "faiss.index", lambda fh: fh.write(serialized.tobytes()))
        data.manifest.checksums = {name: _sha256(staging / name) for name in FILES}
        data.manifest.built_at = time.time()
        manifest_json = json.dumps(asdict(data.manifest), indent=2, sort_keys=True).encode()
        _write_file(staging / "manifest.json", lambda fh: fh.write(manifest_json))
        _fsync_dir(staging)
        os.replace(staging, version)
        pointer_tmp = index_dir / f".{POINTER}.tmp-{os.getpid()}"
        _write_file(pointer_tmp, lambda fh: fh.write(version.name.encode()))
        os.replace(pointer_tmp, index_dir / POINTER)
        _fsync_dir(index_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _prune(index_dir, keep={version.name})
    return version


def _prune(index_dir: Path, keep: set[str]) -> None:
    """Remove older versions and leftovers of killed builds. Readers that already loaded an old
    version hold it in memory, so deleting its files is safe."""
    for path in index_dir.iterdir():
        if path.name in keep or path.name == POINTER:
            continue
        if path.name.startswith(("v-", ".staging-", f".{POINTER}.tmp")):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


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
        sentence_vectors = np.load(version / "sentence_vectors.npy")
        faiss_index = faiss.deserialize_index(np.frombuffer((version / "faiss.index").read_bytes(), np.uint8))
    except IndexLoadError:
        raise
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise IndexLoadError(f"index in {version} cannot be read ({exc}): {fix}") from exc
    data = IndexData.create(manifest, chunks, chunk_vectors, sentence_vectors)
    if data.faiss_index.ntotal != faiss_index.ntotal:
        raise IndexLoadError(f"index in {version} is inconsistent: {fix}")
    data.faiss_index = faiss_index
    return data
