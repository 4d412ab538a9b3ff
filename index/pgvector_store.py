"""Chunks in PostgreSQL with pgvector: an HNSW or IVFFlat index on the dense vectors (`auto`: HNSW
below 150k rows, IVFFlat from there, re-chosen at the end of every build), a BM25 postings table
for the lexical leg, the citation metadata as JSON, and one SQL statement that runs both legs and fuses
them by reciprocal rank fusion. The Milvus store's design (index/milvus_store.py), on an engine
that has an approximate index and real transactions.

Three tables:

* `<table>` holds one row per chunk: a bigint id derived from (source, position); `source` (what a
  file's chunks are deleted by); the L2-normalised `dense` vector (HNSW or IVFFlat, `vector_cosine_ops`);
  `n_terms`, its length in BM25 terms; and the whole `Chunk` as JSONB (`chunk`), so a hit carries
  lines, heading and sentence spans.
* `<table>_postings` is the lexical index: one row per (term, chunk) with the term's count `tf`,
  the chunk's length `dl`, and `sel`, the BM25 term weight at a reference length, under a b-tree
  on (term, sel DESC) that covers the rest. The terms are `content_words(embed_text)`, the very
  terms (and idf keys) of the local BM25.
* `<table>_files` holds per-file records, keyed (kind, source): `file` rows (sha256 and number of
  chunks), `df` rows (that file's term document frequencies, so the exact idf of the local BM25 is
  a sum over files) and one `meta` row: what the index was built with, and the HNSW parameters,
  `ef_search` among them (set on every search: the recall/latency knob, like FAISS's nprobe), and
  the dense index there now (`dense_index`, so a swap changes the records a service watches).

A file's update (delete its rows, insert the new ones, its df and file records) is one transaction.

Writes, builds and the statistics go through one connection (writes behind a lock; psycopg runs a
connection's statements one at a time), reopened if the server drops it; searches take a
connection from a pool (`psycopg_pool`, `pool_size` connections at most, opened at the first
search), so the service's worker threads search in parallel instead of queueing on one session.

The lexical leg is Okapi BM25 (Lucene's variant, k1 1.2, b 0.75, the retriever's idf) over the
`POSTINGS_PER_TERM` best postings of each query term, read off the b-tree in order, then scored
exactly and summed per chunk: exact for every term in at most that many chunks, and for commoner
terms (low idf, little weight) the chunks where the term weighs most. The first design, a tsvector
column with a GIN index ranked in SQL (ts_rank_cd or BM25 over the matches), scores every chunk
that matches any word: measured 145/226 ms p50/p95 at 10k chunks of the PostgreSQL corpus, where
"postgres" or "database" match 43% of the chunks; a GIN index returns matches unordered, so no
top-k can stop early.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from index.chunk_records import Stats, StoredHit, chunk_from_json, chunk_id, int63
from index.chunking import Chunk
from service.answer.words import content_words

log = logging.getLogger("citeqa.index")

TABLE_DEFAULT = "citeqa_chunks"
POSTINGS_PER_TERM = 1000
REFERENCE_DL = 60.0  # the chunk length `sel` is computed at (the order of postings, not their score)
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
EF_SEARCH = 300  # recall@10 0.990 at 100k (80: 0.887, 200: 0.962), SQL time unchanged: docs/scaling.md
VECTOR_INDEXES = ("auto", "hnsw", "ivfflat")
ROWS_PER_LIST = 1000  # IVFFlat: pgvector's advice, lists = rows / 1000 (up to 1M rows)
# `auto` builds IVFFlat from this many rows (HNSW below): at 100k chunks HNSW is the faster of the
# two at recall@10 0.99; at 300k its recall is 0.88 at ef_search 300, IVFFlat's 1.000, and the
# interpolated crossing of 0.95 is near 150k (docs/scaling.md).
IVFFLAT_FROM_ROWS = 150_000


def ivfflat_lists(rows: int, rows_per_list: int = ROWS_PER_LIST) -> int:
    """IVFFlat cells for a table of `rows`: rows / 1000 up to 1M rows, sqrt(rows) above (pgvector's
    advice); one cell, an exact scan, for a small corpus."""
    return max(1, rows // rows_per_list if rows <= 1_000_000 else int(math.sqrt(rows)))


def ivfflat_probes(lists: int) -> int:
    """Cells a search scans by default: 2·sqrt(lists) (63 of 1,000 at 1M rows: docs/scaling.md)."""
    return min(lists, max(1, round(2 * math.sqrt(lists))))


K1, B = 1.2, 0.75
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,40}")


class PgvectorStoreError(RuntimeError):
    """The PostgreSQL tables cannot serve this index; the message says why and what to do."""


class DimensionMismatchError(PgvectorStoreError):
    """The stored vectors have another dimension than the embedder produces."""


def _unreachable(dsn: str, exc: Exception) -> PgvectorStoreError:
    """The typed error for a server that cannot be reached (or went away), naming it without its password."""
    return PgvectorStoreError(f"cannot connect to PostgreSQL at {_safe_dsn(dsn)}: {str(exc).strip()}")


def _safe_dsn(dsn: str) -> str:
    """The DSN with any password masked."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", dsn)


class PgvectorChunkStore:
    """Chunks and per-file records of one corpus in a PostgreSQL database with pgvector."""

    def __init__(
        self,
        dsn: str,
        table: str = TABLE_DEFAULT,
        dim: int = 384,
        *,
        m: int = HNSW_M,
        ef_construction: int = HNSW_EF_CONSTRUCTION,
        ef_search: int = EF_SEARCH,
        vector_index: str = "auto",
        probes: int = 0,
        ivfflat_from_rows: int = IVFFLAT_FROM_ROWS,
        rows_per_list: int = ROWS_PER_LIST,
        connect_timeout: float = 10.0,
        pool_size: int = 4,
    ) -> None:
        import psycopg  # the store's dependencies are imported only when it is used

        if not _NAME.fullmatch(table):
            raise ValueError(f"table name {table!r}: lower-case letters, digits and _ only")
        self.dsn = dsn
        self.table = table
        self.files_table = f"{table}_files"
        self.postings_table = f"{table}_postings"
        self.dim = dim
        self.m, self.ef_construction, self.ef_search = m, ef_construction, ef_search
        if vector_index not in VECTOR_INDEXES:
            raise ValueError(f"vector index {vector_index!r}: one of {', '.join(VECTOR_INDEXES)}")
        self.vector_index = vector_index
        self.probes = int(probes)  # IVFFlat cells scanned per search; 0: ivfflat_probes(lists)
        self.ivfflat_from_rows, self.rows_per_list = int(ivfflat_from_rows), max(1, int(rows_per_list))
        self._lock = threading.Lock()  # the write connection, shared by the service's worker threads
        self.connect_timeout = max(1, int(connect_timeout))
        self.pool_size = max(1, int(pool_size))
        self._pool: Any = None  # the search connections, opened at the first search
        self._pool_lock = threading.Lock()
        self._closed = False
        try:
            self.conn = psycopg.connect(dsn, autocommit=True, connect_timeout=self.connect_timeout)
        except psycopg.OperationalError as exc:
            raise _unreachable(dsn, exc) from exc
        self._vector_ready()
        meta = self.meta() or {}
        self.set_ef_search(int(meta.get("ef_search", ef_search)))
        self.dense = self._dense_index()

    @property
    def built_index(self) -> str:
        """The dense index's access method as last read ("" before the first build)."""
        return self.dense[0]

    @property
    def lists(self) -> int:
        """IVFFlat's cells as last read (0 for HNSW)."""
        return self.dense[1]

    @property
    def safe_dsn(self) -> str:
        return _safe_dsn(self.dsn)

    def _vector_ready(self) -> None:
        """The `vector` extension in this database (created if the role may), and its adapter."""
        import psycopg
        from pgvector.psycopg import register_vector

        has = self.conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
        if not has:
            try:
                self.conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.Error as exc:
                raise PgvectorStoreError(
                    f"the pgvector extension is not available in PostgreSQL at {self.safe_dsn}: "
                    f"{str(exc).strip()}. Install pgvector on the server (scripts/install_pgvector.sh, or the "
                    "pgvector/pgvector image) and run `CREATE EXTENSION vector` as a superuser"
                ) from exc
        register_vector(self.conn)

    def close(self) -> None:
        with self._pool_lock:
            self._closed = True
            if self._pool is not None:
                self._pool.close()
                self._pool = None
        self.conn.close()

    def _search_pool(self) -> Any:
        """The pool the searches draw from, opened on first use (a build never opens it). Each
        connection gets the vector adapter when it is made; `hnsw.ef_search` and `ivfflat.probes`
        are set per search, so a change of them reaches connections opened before it."""
        with self._pool_lock:
            if self._closed:
                raise PgvectorStoreError(f"the store for {self.safe_dsn} is closed")
            if self._pool is None:
                import psycopg
                from pgvector.psycopg import register_vector
                from psycopg_pool import ConnectionPool, PoolTimeout

                pool = ConnectionPool(
                    self.dsn,
                    min_size=1,
                    max_size=self.pool_size,
                    kwargs={"autocommit": True, "connect_timeout": self.connect_timeout},
                    configure=register_vector,
                    check=ConnectionPool.check_connection,  # a server restart costs no failed search
                    timeout=float(self.connect_timeout),
                    name=f"citeqa-search-{self.table}",
                    open=False,
                )
                try:
                    pool.open(wait=True, timeout=float(self.connect_timeout))
                except (PoolTimeout, psycopg.OperationalError) as exc:
                    pool.close()
                    raise _unreachable(self.dsn, exc) from exc
                self._pool = pool
            return self._pool

    def pool_stats(self) -> dict[str, int]:
        """psycopg_pool's counters for the search pool ({} before the first search)."""
        with self._pool_lock:
            return dict(self._pool.get_stats()) if self._pool is not None else {}

    def _dense_index(self, name: str | None = None) -> tuple[str, int]:
        """The dense index as PostgreSQL holds it: its access method ("" when there is none) and,
        for IVFFlat, its cells. Read from the catalogue, not the build record, so a service searches
        with the knob of the index that is there, whatever it was started with."""
        row = self.conn.execute(
            "SELECT am.amname, c.reloptions FROM pg_class c JOIN pg_am am ON am.oid = c.relam "
            "WHERE c.oid = to_regclass(%s)",
            (name or f"{self.table}_dense",),
        ).fetchone()
        if row is None:
            return "", 0
        options = dict(o.split("=", 1) for o in (row[1] or []))
        return str(row[0]), int(options.get("lists", 0))

    def dense_plan(self, rows: int, current: tuple[str, int] = ("", 0)) -> tuple[str, int]:
        """The dense index a table of `rows` should have, given the one it has: (kind, IVFFlat cells).
        `auto` turns to IVFFlat at `ivfflat_from_rows` and back to HNSW only below half of it, and
        IVFFlat's cells are re-chosen only once the rows/1000 rule is 2x off, so a build that adds
        or removes a few files never rebuilds the index."""
        kind, lists = current
        wanted = self.vector_index
        if wanted == "auto":
            back = kind == "ivfflat" and rows >= self.ivfflat_from_rows // 2
            wanted = "ivfflat" if rows >= self.ivfflat_from_rows or back else "hnsw"
        if wanted == "hnsw":
            return "hnsw", 0
        target = ivfflat_lists(rows, self.rows_per_list)
        if kind == "ivfflat" and lists > 0 and lists / 2 < target < lists * 2:
            return "ivfflat", lists
        return "ivfflat", target

    def _dense_sql(self, name: str, kind: str, lists: int, concurrently: bool) -> str:
        if kind == "ivfflat":
            how = f"ivfflat (dense vector_cosine_ops) WITH (lists = {int(lists)})"
        else:
            shape = f"m = {int(self.m)}, ef_construction = {int(self.ef_construction)}"
            how = f"hnsw (dense vector_cosine_ops) WITH ({shape})"
        return f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}{name} ON {self.table} USING {how}"

    def _search_settings(self) -> str:
        """Both dense knobs, set before each search: whichever index the table holds (a build may
        have swapped one for the other since this service last looked) is searched with its own."""
        kind, lists = self.dense  # one read: a refresh on another thread replaces the pair whole
        probes = self.probes or ivfflat_probes(lists or 1)
        if kind == "ivfflat" and lists:
            probes = min(probes, lists)  # more than there are scans them all anyway
        return (
            f"SELECT set_config('hnsw.ef_search', '{int(self.ef_search)}', false), "
            f"set_config('ivfflat.probes', '{int(probes)}', false)"
        )

    def index_shape(self) -> dict[str, Any]:
        """What the build record holds of the dense index: another graph shape means a rebuild. The
        kind (HNSW or IVFFlat) and IVFFlat's cells are not in it: `build_indexes` rebuilds the
        dense index from the stored vectors when they should change, with nothing re-embedded."""
        return {"hnsw_m": self.m, "hnsw_ef_construction": self.ef_construction}

    def set_ef_search(self, ef_search: int) -> None:
        """HNSW's candidate list at query time for this session (recall up, latency up)."""
        self.ef_search = int(ef_search)
        self.conn.execute(f"SET hnsw.ef_search = {self.ef_search}")

    @contextlib.contextmanager
    def build_lock(self, timeout: float = 600.0, poll: float = 0.5) -> Iterator[None]:
        """One build of this table at a time, across processes and machines: a session-level
        advisory lock, which PostgreSQL drops when the holder's connection ends, however the
        holder dies. Waits up to `timeout` seconds, then raises `PgvectorStoreError`."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                row = self.conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (self.table,)).fetchone()
            if row and row[0]:
                break
            if time.monotonic() >= deadline:
                raise PgvectorStoreError(
                    f"another `citeqa index` is building table {self.table} at {self.safe_dsn} "
                    f"(waited {timeout:.0f} s): let it finish, then run it again"
                )
            time.sleep(poll)
        try:
            yield
        finally:
            with self._lock, contextlib.suppress(Exception):  # a closed connection has dropped it already
                self.conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (self.table,))

    # -- tables -------------------------------------------------------------------------------

    def _has_table(self, name: str) -> bool:
        return self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]  # type: ignore[index,no-any-return]

    def exists(self) -> bool:
        return self._has_table(self.table) and self._has_table(self.files_table)

    def stored_dim(self) -> int | None:
        """The dense vector dimension of the existing chunks table, or None if there is none."""
        if not self._has_table(self.table):
            return None
        row = self.conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass "
            "AND attname = 'dense' AND NOT attisdropped",
            (self.table,),
        ).fetchone()
        found = re.fullmatch(r"vector\((\d+)\)", row[0]) if row else None
        if not found:
            raise PgvectorStoreError(
                f"table {self.table!r} at {self.safe_dsn} has no 'dense' vector: not a citeqa index"
            )
        return int(found.group(1))

    def ensure(self) -> None:
        """Create the tables if missing; refuse a chunks table of another dimension."""
        stored = self.stored_dim()
        if stored is not None and stored != self.dim:
            raise DimensionMismatchError(
                f"PostgreSQL table {self.table!r} at {self.safe_dsn} holds {stored}-dim vectors but the "
                f"embedder produces {self.dim}-dim ones; rebuild it (`citeqa index --rebuild`) or point "
                "CITEQA_PGVECTOR_DSN at another database"
            )
        with self._lock, self.conn.transaction():
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (id bigint PRIMARY KEY, source text NOT NULL, "
                f"dense vector({self.dim}) NOT NULL, n_terms integer NOT NULL, chunk jsonb NOT NULL)"
            )
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.postings_table} (term text NOT NULL, sel real NOT NULL, "
                "tf integer NOT NULL, dl integer NOT NULL, chunk bigint NOT NULL, file bigint NOT NULL)"
            )
            self.conn.execute(f"CREATE INDEX IF NOT EXISTS {self.table}_source ON {self.table} (source)")
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.files_table} (kind text NOT NULL, source text NOT NULL, "
                "sha256 text NOT NULL DEFAULT '', n_chunks integer NOT NULL DEFAULT 0, "
                "data jsonb NOT NULL DEFAULT '{}', PRIMARY KEY (kind, source))"
            )

    def build_indexes(self, maintenance_work_mem: str = "1GB") -> str | None:
        """The postings b-trees and the dense index (`dense_plan`: HNSW, or IVFFlat with rows/1000
        cells), where missing. A rebuild loads the rows first and builds these once at the end:
        several times quicker than growing them one insert at a time. Later incremental updates go
        into the existing indexes, unless the table has grown or shrunk past what its dense index
        suits: then a new one is built beside it (CONCURRENTLY, so searches and writes go on) and
        swapped in. Returns what changed in the dense index, or None."""
        with self._lock:
            self.conn.execute(f"SET maintenance_work_mem = '{maintenance_work_mem}'")
            self.conn.execute("SET max_parallel_maintenance_workers = 2")
            p = self.postings_table
            self.conn.execute(f"CREATE INDEX IF NOT EXISTS {p}_term ON {p} (term, sel DESC) INCLUDE (chunk, tf, dl)")
            self.conn.execute(f"CREATE INDEX IF NOT EXISTS {p}_file ON {p} (file)")
            changed = self._reconcile_dense(self.count())
            # VACUUM sets the visibility map, so the postings are read by index-only scans.
            self.conn.execute(f"VACUUM ANALYZE {self.table}")
            self.conn.execute(f"VACUUM ANALYZE {p}")
            self.dense = self._dense_index()
            # In the build record too, so a running service's watcher sees a swap and re-reads the
            # index's kind and cells (stats()).
            self.conn.execute(
                f"UPDATE {self.files_table} SET data = data || %s::jsonb WHERE kind = 'meta' AND source = ''",
                (json.dumps({"dense_index": self.dense_label()}),),
            )
            return changed

    def dense_label(self) -> str:
        """The dense index there now, as the build record and `citeqa index` name it."""
        return f"ivfflat {self.lists}" if self.built_index == "ivfflat" else self.built_index

    def _reconcile_dense(self, rows: int) -> str | None:
        """Create the dense index, or replace it with the one `dense_plan` asks for (under the write
        lock)."""
        name, spare = f"{self.table}_dense", f"{self.table}_dense_next"
        self.conn.execute(f"DROP INDEX IF EXISTS {spare}")  # left by a build that was interrupted
        current = self._dense_index()
        kind, lists = self.dense_plan(rows, current)
        shape = f"IVFFlat with {lists} cells" if kind == "ivfflat" else "HNSW"
        if not current[0]:
            log.info("building the dense index of %s over %d rows: %s", self.table, rows, shape)
            self.conn.execute(self._dense_sql(name, kind, lists, concurrently=False))
            return None  # a first build: nothing was replaced
        if (kind, lists) == current:
            return None
        was = f"IVFFlat with {current[1]} cells" if current[0] == "ivfflat" else current[0].upper()
        log.info("%s has %d rows: replacing its dense index (%s) with %s", self.table, rows, was, shape)
        self.conn.execute(self._dense_sql(spare, kind, lists, concurrently=True))
        with self.conn.transaction():
            self.conn.execute(f"DROP INDEX {name}")
            self.conn.execute(f"ALTER INDEX {spare} RENAME TO {name}")
        return f"dense index {was} -> {shape} ({rows} rows)"

    def drop(self) -> None:
        with self._lock, self.conn.transaction():
            self.conn.execute(f"DROP TABLE IF EXISTS {self.table}")
            self.conn.execute(f"DROP TABLE IF EXISTS {self.files_table}")
            self.conn.execute(f"DROP TABLE IF EXISTS {self.postings_table}")

    def reset(self) -> None:
        """Drop everything and start empty (a rebuild with other settings); the search indexes
        are built by `build_indexes` once the rows are in."""
        self.drop()
        self.ensure()

    # -- records ------------------------------------------------------------------------------

    def meta(self) -> dict[str, Any] | None:
        """What the stored index was built with (None before the first build)."""
        if not self._has_table(self.files_table):
            return None
        row = self.conn.execute(f"SELECT data FROM {self.files_table} WHERE kind = 'meta' AND source = ''").fetchone()
        return dict(row[0]) if row else None

    def set_meta(self, meta: dict[str, Any]) -> None:
        from psycopg.types.json import Jsonb

        with self._lock:
            self.conn.execute(
                f"INSERT INTO {self.files_table} (kind, source, data) VALUES ('meta', '', %s) "
                "ON CONFLICT (kind, source) DO UPDATE SET data = EXCLUDED.data",
                (Jsonb(meta),),
            )
        if "ef_search" in meta:
            self.set_ef_search(int(meta["ef_search"]))

    def files(self) -> dict[str, str]:
        """source -> sha256 of every file whose chunks are fully stored."""
        rows = self.conn.execute(f"SELECT source, sha256 FROM {self.files_table} WHERE kind = 'file'").fetchall()
        return {str(s): str(h) for s, h in rows}

    def files_digest(self) -> str:
        """A digest of the stored file records and the build record, computed in the server (one
        short row comes back however many files there are): it changes exactly when a file is
        added, changed or removed or the index is rebuilt with other settings, which is what a
        running service polls (service/answer/served_lexicon.py). The
        connection is reopened if the server dropped it (a restart, an idle kill), so polling
        outlives that."""
        import psycopg

        try:
            return self._files_digest()
        except psycopg.OperationalError:
            self._reopen_if_broken()
            return self._files_digest()

    def _files_digest(self) -> str:
        row = self.conn.execute(
            "SELECT count(*) FILTER (WHERE kind = 'file'), coalesce(md5(string_agg(kind || E'\\t' || source || E'\\t' "
            "|| CASE WHEN kind = 'meta' THEN data::text ELSE sha256 END, E'\\n' ORDER BY kind, source)), '') "
            f"FROM {self.files_table} WHERE kind IN ('file', 'meta')"
        ).fetchone()
        return f"{row[0]}-{row[1][:16]}" if row else "0-"

    def _reopen_if_broken(self) -> None:
        """Replace the statistics/write connection if a server restart or an idle kill broke it."""
        import psycopg

        with self._lock:
            if self._closed or not (self.conn.broken or self.conn.closed):
                return
            try:
                conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=self.connect_timeout)
            except psycopg.OperationalError as exc:
                raise _unreachable(self.dsn, exc) from exc
            from pgvector.psycopg import register_vector

            register_vector(conn)
            self.conn = conn
            log.info("reconnected to PostgreSQL at %s", self.safe_dsn)

    def upsert_file(self, source: str, sha256: str, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Replace one file's chunks, df and file records in one transaction."""
        from psycopg.types.json import Jsonb

        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors for {source}")
        if len(vectors) and vectors.shape[1] != self.dim:
            raise DimensionMismatchError(f"vectors for {source} have dim {vectors.shape[1]}, the store {self.dim}")
        rows = []
        postings: list[tuple[str, float, int, int, int, int]] = []
        file_key = int63("file", source)
        df: Counter[str] = Counter()
        for i, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True)):
            if chunk.source != source:
                raise ValueError(f"chunk of {chunk.source} passed as part of {source}")
            words = content_words(chunk.embed_text)  # once: the postings and the df table
            counts = Counter(words)
            df.update(counts.keys())
            key, dl = chunk_id(source, i), len(words)
            norm = K1 * (1 - B + B * dl / REFERENCE_DL)
            postings.extend((t, tf / (tf + norm), tf, dl, key, file_key) for t, tf in counts.items())
            dense = np.asarray(vector, dtype=np.float32)
            dense = dense / (float(np.linalg.norm(dense)) or 1.0)
            rows.append((key, source, dense, dl, Jsonb(asdict(chunk))))
        with self._lock, self.conn.transaction():
            self._delete(source)
            if rows:
                with (
                    self.conn.cursor() as cur,
                    cur.copy(f"COPY {self.table} (id, source, dense, n_terms, chunk) FROM STDIN") as copy,
                ):
                    for row in rows:
                        copy.write_row(row)
                with (
                    self.conn.cursor() as cur,
                    cur.copy(f"COPY {self.postings_table} (term, sel, tf, dl, chunk, file) FROM STDIN") as copy,
                ):
                    for posting in postings:
                        copy.write_row(posting)
            self.conn.execute(
                f"INSERT INTO {self.files_table} (kind, source, data) VALUES ('df', %s, %s)",
                (source, Jsonb(dict(df))),
            )
            self.conn.execute(
                f"INSERT INTO {self.files_table} (kind, source, sha256, n_chunks) VALUES ('file', %s, %s, %s)",
                (source, sha256, len(chunks)),
            )

    def _delete(self, source: str) -> None:
        """Drop a file's rows and records. A file with no record has no rows (they are written in
        one transaction), so a new file skips the two row deletes: during a rebuild the postings
        table has no index on `file` yet, and each delete scanned all of it (quadratic in the
        corpus: a 1M-chunk rebuild spent its time in these scans)."""
        records = self.conn.execute(
            f"DELETE FROM {self.files_table} WHERE source = %s AND kind <> 'meta' RETURNING kind", (source,)
        ).fetchall()
        if not any(kind == "file" for (kind,) in records):
            return
        self.conn.execute(f"DELETE FROM {self.table} WHERE source = %s", (source,))
        self.conn.execute(f"DELETE FROM {self.postings_table} WHERE file = %s", (int63("file", source),))

    def delete_file(self, source: str) -> None:
        with self._lock, self.conn.transaction():
            self._delete(source)

    def stats(self) -> Stats:
        """Total chunks and the df table summed over the stored files. Read again whenever the stored
        files change, so it also re-reads the dense index's kind and cells (a rebuild may have
        replaced them under a running service)."""
        self.dense = self._dense_index()
        n = self.conn.execute(f"SELECT coalesce(sum(n_chunks), 0) FROM {self.files_table} WHERE kind = 'file'")
        df: Counter[str] = Counter()
        rows = self.conn.execute(
            f"SELECT d.key, sum(d.value::bigint) FROM {self.files_table} f "
            f"JOIN {self.files_table} r ON r.kind = 'file' AND r.source = f.source, jsonb_each_text(f.data) d "
            "WHERE f.kind = 'df' GROUP BY d.key"
        ).fetchall()
        df.update({str(k): int(v) for k, v in rows})
        return Stats(int(n.fetchone()[0]), dict(df))  # type: ignore[index]

    def average_terms(self) -> float:
        """The mean chunk length in terms (BM25's avgdl)."""
        row = self.conn.execute(f"SELECT avg(n_terms) FROM {self.table}").fetchone()
        return float(row[0]) if row and row[0] is not None else 1.0

    def count(self) -> int:
        """Chunk rows actually in the table (a check against `stats().n_chunks`)."""
        return int(self.conn.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0])  # type: ignore[index]

    # -- search -------------------------------------------------------------------------------

    def hybrid_search(
        self,
        query_vector: np.ndarray,
        query_text: str,
        k: int,
        candidates: int = 30,
        rrf_k: int = 60,
        idf: Mapping[str, float] | None = None,
        avgdl: float | None = None,
    ) -> list[StoredHit]:
        """Dense (HNSW or IVFFlat) top-`candidates` and BM25 top-`candidates`, fused by RRF (`rrf_k`), in one
        statement. `idf` and `avgdl` are the corpus statistics (the retriever keeps them; read
        from the tables when not given). A question with no known word runs the dense leg alone."""
        import psycopg
        from psycopg_pool import PoolTimeout

        query = np.asarray(query_vector, dtype=np.float32)
        query = query / (float(np.linalg.norm(query)) or 1.0)
        pool = self._search_pool()  # raises for a closed store
        try:
            if idf is None:
                idf = self.stats().idf()
            if avgdl is None:
                avgdl = self.average_terms()
        except psycopg.OperationalError as exc:
            raise _unreachable(self.dsn, exc) from exc
        terms = [t for t in dict.fromkeys(content_words(query_text)) if t in idf]
        depth = max(candidates, k)
        params: dict[str, Any] = {
            "q": query,
            "depth": depth,
            "k": k,
            "rrf": rrf_k,
            "terms": terms,
            "idf": [float(idf[t]) for t in terms],
            "per_term": max(POSTINGS_PER_TERM, depth),
            "k1": K1,
            "b": B,
            "avgdl": max(avgdl, 1e-9),
        }
        lexical = (
            f"""lexical AS (
                SELECT chunk AS id, row_number() OVER (ORDER BY score DESC, chunk) AS rank FROM (
                    SELECT p.chunk, sum(q.idf * p.tf / (p.tf + %(k1)s * (1 - %(b)s + %(b)s * p.dl / %(avgdl)s)))
                        AS score
                    FROM unnest(%(terms)s::text[], %(idf)s::float8[]) AS q(term, idf)
                    CROSS JOIN LATERAL (
                        SELECT chunk, tf, dl FROM {self.postings_table}
                        WHERE term = q.term ORDER BY sel DESC LIMIT %(per_term)s
                    ) p
                    GROUP BY p.chunk ORDER BY score DESC, p.chunk LIMIT %(depth)s
                ) s
            )"""
            if terms
            else "lexical AS (SELECT NULL::bigint AS id, NULL::bigint AS rank WHERE false)"
        )
        sql = f"""
            WITH dense AS (
                SELECT id, row_number() OVER (ORDER BY distance, id) AS rank FROM (
                    SELECT id, dense <=> %(q)s AS distance FROM {self.table}
                    ORDER BY dense <=> %(q)s LIMIT %(depth)s
                ) s
            ),
            {lexical},
            fused AS (
                SELECT coalesce(d.id, l.id) AS id,
                       coalesce(1.0 / (%(rrf)s + d.rank), 0) + coalesce(1.0 / (%(rrf)s + l.rank), 0) AS score
                FROM dense d FULL OUTER JOIN lexical l ON d.id = l.id
            )
            SELECT c.id, c.chunk, 1 - (c.dense <=> %(q)s), f.score
            FROM fused f JOIN {self.table} c ON c.id = f.id
            ORDER BY f.score DESC, c.id LIMIT %(k)s
        """
        try:
            with pool.connection() as conn:
                conn.execute(self._search_settings())
                rows = conn.execute(sql, params).fetchall()
        except PoolTimeout as exc:
            raise PgvectorStoreError(
                f"no connection to PostgreSQL at {self.safe_dsn} within {self.connect_timeout} s: the server is "
                f"unreachable, or all {self.pool_size} of the pool's are busy (CITEQA_PGVECTOR_POOL_SIZE)"
            ) from exc
        except psycopg.OperationalError as exc:
            raise _unreachable(self.dsn, exc) from exc
        return [
            StoredHit(int(i), chunk_from_json(_as_dict(raw)), float(cos), float(score)) for i, raw, cos, score in rows
        ]


def _as_dict(raw: Any) -> dict[str, Any]:
    return raw if isinstance(raw, dict) else dict(json.loads(raw))
