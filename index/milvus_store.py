"""Chunks in Milvus: dense vectors, an in-engine BM25 sparse vector and the citation metadata, so
one engine-side hybrid search replaces FAISS plus the in-process BM25 of the local index.

The same code serves Milvus Lite (`uri` is a local path such as `.citeqa/milvus.db`) and a
standalone or cluster server (`http://host:19530`).

Two collections:

* `<collection>` holds one row per chunk: an int64 id derived from (source, position) so ids stay
  unique across files and a retried upsert is idempotent; `source` (filterable, what a file's
  chunks are deleted by); `text` = `chunk.embed_text` with an analyzer, which the BM25 function
  turns into the `sparse` vector inside the engine; the L2-normalised `dense` vector (COSINE); and
  the whole `Chunk` as JSON (`chunk`), so a hit carries its lines, heading and sentence spans.
* `<collection>_files` holds per-file records: `kind="file"` rows (source -> sha256 and number of
  chunks, written last, so a build killed halfway leaves the file looking stale and redone), and
  `kind="df"` rows with that file's term document frequencies over `content_words(embed_text)`,
  split into parts because a Milvus JSON value is capped at 64 KiB. Summed over files they give the
  exact idf the local BM25 computes, without scanning every chunk. One `kind="meta"` row records
  what the index was built with (embedding model, dim, chunker settings).

Milvus wants a vector field in every collection, so the files collection has a 2-dim dummy one.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from index.chunk_records import (
    Stats,
    StoredHit,
    bm25_terms,
    chunk_from_json,
    chunk_id,
    document_frequencies,
    files_fingerprint,
)
from index.chunk_records import int63 as _int63
from index.chunking import Chunk

CHUNKS_DEFAULT = "citeqa_chunks"
MAX_VARCHAR = 65535  # bytes: Milvus's VARCHAR ceiling
MAX_JSON = 60000  # bytes per JSON value, under Milvus's 64 KiB cap with room for the envelope
MAX_SOURCE = 4096
QUERY_PAGE = 1000  # rows per page when listing records (Milvus caps a query's result window)
_PAD_DIM = 2  # the files collection's dummy vector
# The engine's BM25 reads the very terms the local BM25 does: `content_words` (lemmatised, stop
# words out), each made one word for the engine's standard tokenizer (Milvus Lite has no whitespace
# tokenizer; "_" joins a word, so "x-utf8" stays one term). With its default k1 = 1.2, b = 0.75 and
# the same idf formula, the lexical leg ranks as `HybridRetriever`'s does (the engine's own
# analyzers do not lemmatise, so "flew" would miss "fly").
ANALYZER = {"tokenizer": "standard"}


class MilvusStoreError(RuntimeError):
    """The Milvus collections cannot serve this index; the message says why and what to do."""


class DimensionMismatchError(MilvusStoreError):
    """The stored vectors have another dimension than the embedder produces."""


def _literal(value: str) -> str:
    """A Milvus filter string literal (JSON's escaping is what the expression parser reads)."""
    return json.dumps(value, ensure_ascii=False)


def _df_parts(df: dict[str, int], limit: int = MAX_JSON) -> list[dict[str, int]]:
    """Split a df table into dicts whose JSON stays under `limit` bytes."""
    parts: list[dict[str, int]] = [{}]
    size = 2
    for word, count in sorted(df.items()):
        item = len(json.dumps({word: count}, ensure_ascii=False).encode())
        if parts[-1] and size + item > limit:
            parts.append({})
            size = 2
        parts[-1][word] = count
        size += item
    return parts


class MilvusChunkStore:
    """Chunks and per-file records of one corpus in a Milvus (or Milvus Lite) database."""

    def __init__(self, uri: str, collection: str = CHUNKS_DEFAULT, dim: int = 384, client: Any = None) -> None:
        from pymilvus import MilvusClient  # optional dependency: imported only when this store is used

        self.uri = uri
        self.collection = collection
        self.files_collection = f"{collection}_files"
        self.dim = dim
        if client is None:
            from pymilvus.exceptions import MilvusException

            try:
                client = MilvusClient(uri)
            except MilvusException as exc:  # unreachable server, or a Lite file another process holds
                held = (
                    ""
                    if uri.startswith(("http://", "https://", "tcp://"))
                    else (" (a Milvus Lite file is opened by one process at a time: is `citeqa serve` using it?)")
                )
                raise MilvusStoreError(f"cannot open Milvus at {uri}: {exc.message}{held}") from exc
        self.client = client

    # -- collections --------------------------------------------------------------------------

    def exists(self) -> bool:
        return bool(self.client.has_collection(self.collection) and self.client.has_collection(self.files_collection))

    def stored_dim(self) -> int | None:
        """The dense vector dimension of the existing chunks collection, or None if there is none."""
        if not self.client.has_collection(self.collection):
            return None
        for f in self.client.describe_collection(self.collection)["fields"]:
            if f["name"] == "dense":
                return int(f["params"]["dim"])
        raise MilvusStoreError(f"collection {self.collection!r} at {self.uri} has no 'dense' field: not a citeqa index")

    def ensure(self) -> None:
        """Create the collections if missing; refuse a chunks collection of another dimension."""
        stored = self.stored_dim()
        if stored is not None and stored != self.dim:
            raise DimensionMismatchError(
                f"Milvus collection {self.collection!r} at {self.uri} holds {stored}-dim vectors but the "
                f"embedder produces {self.dim}-dim ones; rebuild it (`citeqa index --force`) or point "
                "CITEQA_MILVUS_URI at another database"
            )
        if stored is None:
            self._create_chunks()
        if not self.client.has_collection(self.files_collection):
            self._create_files()
        for name in (self.collection, self.files_collection):
            self.client.load_collection(name)

    def drop(self) -> None:
        for name in (self.collection, self.files_collection):
            if self.client.has_collection(name):
                self.client.drop_collection(name)

    def reset(self) -> None:
        """Drop everything and start empty (a rebuild with other settings)."""
        self.drop()
        self.ensure()

    def _create_chunks(self) -> None:
        from pymilvus import DataType, Function, FunctionType

        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("source", DataType.VARCHAR, max_length=MAX_SOURCE)
        schema.add_field(
            "text", DataType.VARCHAR, max_length=MAX_VARCHAR, enable_analyzer=True, analyzer_params=ANALYZER
        )
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("chunk", DataType.JSON)
        schema.add_function(
            Function(
                name="text_bm25",
                function_type=FunctionType.BM25,
                input_field_names=["text"],
                output_field_names=["sparse"],
            )
        )
        index = self.client.prepare_index_params()
        # FLAT: exact search, like the FAISS IndexFlatIP it replaces; corpora here are small.
        index.add_index(field_name="dense", index_type="FLAT", metric_type="COSINE")
        index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        index.add_index(field_name="source", index_type="INVERTED")
        self.client.create_collection(self.collection, schema=schema, index_params=index, consistency_level="Strong")

    def _create_files(self) -> None:
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("kind", DataType.VARCHAR, max_length=16)  # "file", "df" or "meta"
        schema.add_field("source", DataType.VARCHAR, max_length=MAX_SOURCE)
        schema.add_field("sha256", DataType.VARCHAR, max_length=64)
        schema.add_field("n_chunks", DataType.INT64)
        schema.add_field("data", DataType.JSON)
        schema.add_field("pad", DataType.FLOAT_VECTOR, dim=_PAD_DIM)
        index = self.client.prepare_index_params()
        index.add_index(field_name="pad", index_type="FLAT", metric_type="L2")
        self.client.create_collection(
            self.files_collection, schema=schema, index_params=index, consistency_level="Strong"
        )

    # -- records ------------------------------------------------------------------------------

    def _records(self, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every files-collection row matching `expr`, a batch at a time. An iterator, not offset
        paging: Milvus refuses a query whose offset + limit passes its result window (16,384 rows
        by default), which a corpus of more files than that would reach."""
        rows: list[dict[str, Any]] = []
        iterator = self.client.query_iterator(
            self.files_collection, batch_size=QUERY_PAGE, filter=expr, output_fields=fields
        )
        try:
            while page := iterator.next():
                rows.extend(dict(r) for r in page)
        finally:
            iterator.close()
        return rows

    def _record(self, kind: str, source: str, *, part: int = 0, **values: Any) -> dict[str, Any]:
        row = {"id": _int63(kind, source, str(part)), "kind": kind, "source": source, "sha256": "", "n_chunks": 0}
        row.update(values)
        row.setdefault("data", {})
        row["pad"] = [0.0] * _PAD_DIM
        return row

    def meta(self) -> dict[str, Any] | None:
        """What the stored index was built with (None before the first build)."""
        if not self.client.has_collection(self.files_collection):
            return None
        # A database opened afresh (a new process, a restarted server) has its collections
        # released, and Milvus refuses queries until they are loaded.
        self.client.load_collection(self.files_collection)
        rows = self._records('kind == "meta"', ["data"])
        return dict(rows[0]["data"]) if rows else None

    def set_meta(self, meta: dict[str, Any]) -> None:
        self.client.upsert(self.files_collection, [self._record("meta", "", data=meta)])

    def files(self) -> dict[str, str]:
        """source -> sha256 of every file whose chunks are fully stored."""
        return {r["source"]: r["sha256"] for r in self._records('kind == "file"', ["source", "sha256"])}

    def files_digest(self) -> str:
        """A digest of the stored file records and the build record: it changes exactly when a
        file is added, changed or removed or the index is rebuilt with other settings (what a
        running service polls, service/answer/served_lexicon.py)."""
        meta = json.dumps(self.meta() or {}, sort_keys=True)
        return files_fingerprint({**self.files(), "\0meta": meta})

    def upsert_file(self, source: str, sha256: str, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Replace one file's chunks. The file record goes last: it marks the file complete."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors for {source}")
        if len(vectors) and vectors.shape[1] != self.dim:
            raise DimensionMismatchError(f"vectors for {source} have dim {vectors.shape[1]}, the store {self.dim}")
        if len(source.encode()) > MAX_SOURCE:
            raise ValueError(f"source path longer than {MAX_SOURCE} bytes: {source[:80]}...")
        self.delete_file(source)
        rows = []
        for i, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True)):
            if chunk.source != source:
                raise ValueError(f"chunk of {chunk.source} passed as part of {source}")
            text = bm25_terms(chunk.embed_text)
            raw = asdict(chunk)
            if len(text.encode()) > MAX_VARCHAR or len(json.dumps(raw, ensure_ascii=False).encode()) > MAX_JSON:
                raise ValueError(f"a chunk of {source} is too large for Milvus (lower CITEQA_CHUNK_TOKENS)")
            norm = float(np.linalg.norm(vector)) or 1.0
            dense = (np.asarray(vector, dtype=np.float32) / norm).tolist()
            rows.append({"id": chunk_id(source, i), "source": source, "text": text, "dense": dense, "chunk": raw})
        if rows:
            self.client.upsert(self.collection, rows)
        parts = _df_parts(document_frequencies(chunks)) if chunks else []
        records = [self._record("df", source, part=p, data=part) for p, part in enumerate(parts)]
        records.append(self._record("file", source, sha256=sha256, n_chunks=len(chunks)))
        self.client.upsert(self.files_collection, records)

    def flush(self) -> None:
        """Seal what was written into indexed segments. Until then Milvus searches the rows as a
        growing segment: measured on Milvus Lite at 10k chunks, a dense search took 570 ms before
        a flush and 40 ms after, a BM25 search 1,100 ms and 8 ms."""
        self.client.flush(self.collection)
        self.client.flush(self.files_collection)

    def delete_file(self, source: str) -> None:
        """Remove a file's record first (so a half-deleted file is never taken as stored), then its
        df parts and chunks."""
        expr = f"source == {_literal(source)}"
        self.client.delete(self.files_collection, filter=f'kind == "file" and {expr}')
        self.client.delete(self.files_collection, filter=expr)
        self.client.delete(self.collection, filter=expr)

    def stats(self) -> Stats:
        """Total chunks and the df table summed over the stored files."""
        complete = {r["source"]: int(r["n_chunks"]) for r in self._records('kind == "file"', ["source", "n_chunks"])}
        df: Counter[str] = Counter()
        for row in self._records('kind == "df"', ["source", "data"]):
            if row["source"] in complete:
                df.update(row["data"])
        return Stats(sum(complete.values()), dict(df))

    def count(self) -> int:
        """Chunk rows actually in the collection (a check against `stats().n_chunks`)."""
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    # -- search -------------------------------------------------------------------------------

    def hybrid_search(
        self, query_vector: np.ndarray, query_text: str, k: int, candidates: int = 30, rrf_k: int = 60
    ) -> list[StoredHit]:
        """Dense top-`candidates` and BM25 top-`candidates`, fused by RRF (`rrf_k`) in the engine.

        The engine returns only the fused score, so the dense cosine is recomputed here from the
        stored (normalised) vector. A question with no searchable word runs the dense leg alone."""
        from pymilvus import AnnSearchRequest, RRFRanker

        query = np.asarray(query_vector, dtype=np.float32)
        query = query / (float(np.linalg.norm(query)) or 1.0)
        depth = max(candidates, k)
        requests = [AnnSearchRequest(data=[query.tolist()], anns_field="dense", param={}, limit=depth)]
        if terms := bm25_terms(query_text):
            requests.append(AnnSearchRequest(data=[terms], anns_field="sparse", param={}, limit=depth))
        result = self.client.hybrid_search(
            self.collection, requests, RRFRanker(rrf_k), limit=k, output_fields=["chunk", "dense"]
        )
        hits = []
        for row in result[0] if result else []:
            entity = row["entity"]
            dense = float(np.asarray(entity["dense"], dtype=np.float32) @ query)
            hits.append(StoredHit(int(row["id"]), chunk_from_json(entity["chunk"]), dense, float(row["distance"])))
        return hits
