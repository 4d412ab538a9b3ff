"""Vectors of the retrieved chunks' sentences, embedded when a question first needs them.

The context selector ranks sentences by their cosine with the question, and the citation check
compares an answer sentence with the sentences of the passage it cites. Both only ever look at
the sentences of the few chunks retrieved for a question, so the index no longer stores a vector
for every sentence of the corpus: that made a build embed every text about five times (each
sentence as well as its chunk) and kept five vectors per chunk in every replica's memory. Here
they cost one batch per question of the chunks not seen recently, kept in an LRU cache.

The cache key is the chunk's source and text, not its id alone, so a store whose ids outlive a
change to the file (an engine upserting by file) never serves the vectors of the old text.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from index.chunking import Chunk

Encode = Callable[[Sequence[str]], np.ndarray]  # texts -> (n, dim) L2-normalised rows

DEFAULT_MAX_CHUNKS = 4096  # about 7 MB of float32 at 4.8 sentences of 384 dims per chunk


def sentence_texts(chunk: Chunk) -> list[str]:
    return [chunk.text[s.start : s.end] for s in chunk.sentences]


class SentenceVectors:
    """`rows(chunk)` gives one row per sentence of `chunk`, in order. Thread-safe: the answer path
    and the eval harness may call it from worker threads."""

    def __init__(self, encode: Encode, max_chunks: int = DEFAULT_MAX_CHUNKS) -> None:
        self._encode = encode
        self._max = max_chunks
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.embedded = 0  # sentences embedded so far (the cost the cache saves)

    @staticmethod
    def _key(chunk: Chunk) -> tuple[str, str]:
        return chunk.source, chunk.text

    def prefetch(self, chunks: Iterable[Chunk]) -> None:
        """Embed, in one batch, the sentences of every chunk not in the cache."""
        with self._lock:
            missing: dict[tuple[str, str], Chunk] = {}
            for chunk in chunks:
                key = self._key(chunk)
                if key in self._cache:
                    self._cache.move_to_end(key)
                elif key not in missing:
                    missing[key] = chunk
        if not missing:
            return
        texts = [t for chunk in missing.values() for t in sentence_texts(chunk)]
        vectors = np.asarray(self._encode(texts), dtype=np.float32) if texts else np.zeros((0, 0), np.float32)
        with self._lock:
            self.embedded += len(texts)
            row = 0
            for key, chunk in missing.items():
                n = len(chunk.sentences)
                self._cache[key] = vectors[row : row + n]
                row += n
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)

    def rows(self, chunk: Chunk) -> np.ndarray:
        key = self._key(chunk)
        for _ in range(2):
            with self._lock:
                if (cached := self._cache.get(key)) is not None:
                    self._cache.move_to_end(key)
                    return cached
            self.prefetch([chunk])
        texts = sentence_texts(chunk)  # only when the cache is smaller than one question's chunks
        return np.asarray(self._encode(texts), dtype=np.float32) if texts else np.zeros((0, 0), np.float32)
