"""Which FAISS index holds the chunk vectors, chosen by corpus size and recorded in the manifest.

An exact scan (`IndexFlatIP`) costs about 0.12 ms per 1,000 chunks per search on one core: nothing
next to an LLM call for a handbook, but 115 ms at a million chunks. Past `FLAT_MAX` chunks the
vectors go into an inverted file (`IVF<nlist>,Flat`): k-means cells, of which a search scans the
`nprobe` nearest. IVF rather than HNSW because it trains in seconds and adds a million vectors in
about as long, where an HNSW graph takes minutes to build on two cores and needs more memory per
vector; its vectors stay uncompressed, so the scores it returns are exact cosines.

`nprobe` is chosen so that the top 10 agree with exact search at least `RECALL_TARGET` of the time
(`bench/scale.py` measures it at 10k, 100k and 1M chunks); it is stored in the manifest and applied
at load, so a replica searches the way the build measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

FLAT_MAX = 50_000  # up to here an exact scan takes under 10 ms on one core
RECALL_TARGET = 0.95  # recall@10 against exact search that nprobe is set for
TRAIN_PER_CELL = 64  # k-means training points per cell (FAISS warns under 39)


@dataclass(frozen=True)
class VectorIndexSpec:
    """What `faiss.index_factory` builds (`factory`) and how it is searched (`nprobe`, IVF only)."""

    factory: str = "Flat"
    nprobe: int = 0

    @property
    def exact(self) -> bool:
        return self.factory == "Flat"


def choose(n: int) -> VectorIndexSpec:
    """Flat up to `FLAT_MAX` chunks; above, about 4·√n cells (a power of two), of which a search
    scans 1/32: at 100k chunks 1,024 cells and 32 probed, at 1M 4,096 and 128."""
    if n <= FLAT_MAX:
        return VectorIndexSpec()
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    return VectorIndexSpec(f"IVF{nlist},Flat", max(8, nlist // 32))


def build(vectors: np.ndarray, dim: int, spec: VectorIndexSpec, seed: int = 1234) -> Any:
    """An index of `vectors` (L2-normalised rows) searched by inner product, i.e. cosine."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.index_factory(dim, spec.factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        nlist = faiss.extract_index_ivf(index).nlist
        sample = vectors
        if len(vectors) > nlist * TRAIN_PER_CELL:
            rows = np.random.default_rng(seed).choice(len(vectors), nlist * TRAIN_PER_CELL, replace=False)
            sample = vectors[np.sort(rows)]
        index.train(sample)
    if len(vectors):
        index.add(vectors)
    configure(index, spec)
    return index


def configure(index: Any, spec: VectorIndexSpec) -> None:
    """Apply the search-time settings, which FAISS does not serialise with the index."""
    if not spec.exact:
        faiss.extract_index_ivf(index).nprobe = spec.nprobe
