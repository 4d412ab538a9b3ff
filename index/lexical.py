"""The lexical index: Okapi BM25 over each chunk's content words, built with the vectors and saved
beside them, so a service starts by reading a matrix rather than lemmatising every chunk again
(39 s at a million chunks when it was rebuilt at every start).

`bm25s` does the work: every term's score in every chunk is computed once, into a sparse matrix,
so a query costs a sparse row sum and a partial sort, not a Python loop over postings and a full
argsort (44 ms of sorting alone at 1M chunks). Lucene's variant, with the idf
`log(1 + (N - df + 0.5) / (df + 0.5))`; `idf` is that table, the word rarity the context selector
and the citation check weigh words by, saved with the matrix (`rarity.json`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from service.answer.words import Rarity, content_words

RARITY_FILE = "rarity.json"


class BM25:
    def __init__(self, docs: list[list[str]], k1: float = 1.2, b: float = 0.75) -> None:
        import bm25s  # imported here: its import pulls scipy

        self.n = len(docs)
        df: Counter[str] = Counter()
        for doc in docs:
            df.update(set(doc))
        self.idf = Rarity({t: math.log(1 + (self.n - c + 0.5) / (c + 0.5)) for t, c in df.items()})
        self._engine: Any = bm25s.BM25(k1=k1, b=b, method="lucene")
        if self.n:
            self._engine.index(docs, show_progress=False)

    @classmethod
    def of_texts(cls, texts: Iterable[str]) -> BM25:
        """The index of these texts' content words (lemmatised, stop words out)."""
        return cls([content_words(text) for text in texts])

    def scores(self, terms: list[str]) -> np.ndarray:
        known = [t for t in dict.fromkeys(terms) if t in self.idf]  # each term once, as BM25 sums
        if not known or not self.n:
            return np.zeros(self.n, dtype=np.float32)
        return np.asarray(self._engine.get_scores(known), dtype=np.float32)

    def top(self, terms: list[str], k: int) -> list[int]:
        """The `k` best-scoring chunks with any of `terms`, best first (a partial sort)."""
        scores = self.scores(terms)
        k = min(k, self.n)
        if k <= 0:
            return []
        best = np.argpartition(-scores, k - 1)[:k] if k < self.n else np.arange(self.n)
        best = best[np.argsort(-scores[best], kind="stable")]
        return [int(i) for i in best if scores[i] > 0]

    def save(self, folder: Path) -> list[Path]:
        """Write the matrix and the idf table into `folder` (created); returns the files written,
        for the caller's checksums."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RARITY_FILE).write_text(json.dumps({"n": self.n, "idf": dict(self.idf)}, ensure_ascii=False))
        if self.n:
            self._engine.save(str(folder), show_progress=False)
        return sorted(p for p in folder.iterdir() if p.is_file())

    @classmethod
    def load(cls, folder: Path) -> BM25:
        """The index `save` wrote. Raises OSError or ValueError when it cannot be read."""
        import bm25s

        meta = json.loads((folder / RARITY_FILE).read_text())
        bm = cls.__new__(cls)
        bm.n = int(meta["n"])
        bm.idf = Rarity({str(t): float(v) for t, v in meta["idf"].items()})
        if bm.n:
            bm._engine = bm25s.BM25.load(str(folder), show_progress=False)
            if int(bm._engine.scores["num_docs"]) != bm.n:
                raise ValueError(f"BM25 matrix in {folder} holds {bm._engine.scores['num_docs']} chunks, not {bm.n}")
        else:
            bm._engine = bm25s.BM25(method="lucene")
        return bm
