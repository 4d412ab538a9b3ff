"""The pgvector store, builder and retriever against a real PostgreSQL server with the pgvector
extension (tests/pg_server.py): hybrid search finds a chunk by a rare word (the BM25 postings leg) and by
meaning (HNSW), updates re-embed only the changed file, citations survive the round trip, the idf
equals the local BM25's, and an unreachable server or a missing extension is a typed error."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]')")
pytest.importorskip("pgvector", reason="pgvector is not installed (pip install pgvector)")

from index.embedder import HashingEmbedder
from index.pgvector_build import build_pgvector
from index.pgvector_store import (
    DimensionMismatchError,
    PgvectorChunkStore,
    PgvectorStoreError,
    ivfflat_lists,
    ivfflat_probes,
)
from service.answer.pgvector_retriever import PgvectorRetriever
from service.answer.retrieval import BM25
from service.answer.words import content_words
from tests.index.test_milvus_store import DOCS, OVERLAP, TOKENS, CountingEmbedder, local_chunks, source_of
from tests.pg_server import PostgresServer, free_port, pg_server

__all__ = ["pg_server"]
_names = itertools.count()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    for name, text in DOCS.items():
        (root / name).write_text(text)
    return root


@pytest.fixture
def dsn(pg_server: PostgresServer) -> str:
    return pg_server.new_database(f"store_{next(_names)}")


@pytest.fixture
def embedder() -> CountingEmbedder:
    return CountingEmbedder()


@pytest.fixture
def built(corpus: Path, dsn: str, embedder: CountingEmbedder) -> Iterator[PgvectorChunkStore]:
    report = build_pgvector(corpus, dsn, embedder, TOKENS, OVERLAP)
    assert sorted(Path(s).name for s in report.added) == sorted(DOCS)
    assert report.n_embedded == report.n_chunks == len(embedder.embedded) > len(DOCS)
    store = PgvectorChunkStore(dsn, dim=embedder.dim)
    store.ensure()
    yield store
    store.close()


def test_rare_word_is_found_by_full_text_bm25(built: PgvectorChunkStore, embedder: CountingEmbedder) -> None:
    unrelated = embedder.encode_query("tomatoes compost kitchen garden stake")
    hits = built.hybrid_search(unrelated, "Quoxaldrin", k=3)
    assert "Quoxaldrin" in hits[0].chunk.text
    assert hits[0].chunk.heading.endswith("Night house")


def test_meaning_is_found_by_the_dense_leg(built: PgvectorChunkStore, embedder: CountingEmbedder) -> None:
    vector = embedder.encode_query("sleeping cars berths washbasin")
    hits = built.hybrid_search(vector, "what is it about", k=3)
    assert "berths" in hits[0].chunk.text
    assert hits[0].dense == pytest.approx(float(embedder.encode_query(hits[0].chunk.embed_text) @ vector), abs=1e-5)
    assert hits[0].dense > hits[-1].dense


def test_the_hnsw_index_and_ef_search_are_in_place(built: PgvectorChunkStore) -> None:
    indexes = [r[0] for r in built.conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (built.table,))]
    assert any("hnsw" in d and "vector_cosine_ops" in d for d in indexes), indexes
    postings = [
        r[0]
        for r in built.conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (built.postings_table,))
    ]
    assert any("(term, sel DESC)" in d for d in postings), postings
    assert (built.meta() or {})["ef_search"] == built.ef_search
    assert built.conn.execute("SHOW hnsw.ef_search").fetchone() == (str(built.ef_search),)


def test_another_kind_of_dense_index_is_rebuilt_from_the_stored_vectors(
    built: PgvectorChunkStore, corpus: Path, dsn: str, embedder: CountingEmbedder
) -> None:
    """Asking for IVFFlat replaces the HNSW index without re-embedding anything; a service started
    with defaults reads the kind and cells from the catalogue and scans the probes asked for; a
    running one re-reads them when the stored files' records change (stats()), and going back
    swaps again."""
    assert built.built_index == "hnsw" and built.dense_label() == "hnsw"
    reader = PgvectorChunkStore(dsn, dim=embedder.dim, probes=3)  # a running service
    vector = embedder.encode_query("Quoxaldrin")
    ivf = PgvectorChunkStore(dsn, dim=embedder.dim, vector_index="ivfflat")
    try:
        assert reader.hybrid_search(vector, "Quoxaldrin", k=3)  # its pool is open before the swap
        meaning = embedder.encode_query("sleeping cars berths washbasin")  # the dense leg alone
        by_hnsw = [h.chunk_id for h in reader.hybrid_search(meaning, "what is it about", k=3)]
        digest = reader.files_digest()
        report = build_pgvector(corpus, dsn, embedder, TOKENS, OVERLAP, store=ivf)
        assert report.rebuild_reason is None and report.n_embedded == 0
        assert report.dense_index_change == f"dense index HNSW -> IVFFlat with 1 cells ({built.count()} rows)"
        defs = [r[0] for r in ivf.conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (ivf.table,))]
        assert sum("_dense" in d for d in defs) == 1 and any("ivfflat" in d and "lists='1'" in d for d in defs), defs
        assert reader.files_digest() != digest  # what the StoreWatcher polls
        reader.stats()
        assert (reader.built_index, reader.lists) == ("ivfflat", 1)
        assert "Quoxaldrin" in reader.hybrid_search(vector, "Quoxaldrin", k=3)[0].chunk.text
        assert [h.chunk_id for h in reader.hybrid_search(meaning, "what is it about", k=3)] == by_hnsw
        with reader._search_pool().connection() as conn:
            assert conn.execute("SHOW ivfflat.probes").fetchone() == ("1",)  # 3 asked, 1 cell there
        again = build_pgvector(corpus, dsn, embedder, TOKENS, OVERLAP, store=ivf)
        assert again.dense_index_change is None and again.n_embedded == 0
        back = build_pgvector(
            corpus, dsn, embedder, TOKENS, OVERLAP, store=PgvectorChunkStore(dsn, vector_index="hnsw", dim=embedder.dim)
        )
        assert back.dense_index_change and back.dense_index_change.endswith(f"-> HNSW ({built.count()} rows)")
        reader.stats()
        assert reader.built_index == "hnsw" and (reader.meta() or {})["dense_index"] == "hnsw"
    finally:
        reader.close()
        ivf.close()
    with pytest.raises(ValueError, match="one of auto, hnsw, ivfflat"):
        PgvectorChunkStore(dsn, dim=embedder.dim, vector_index="flat")


def test_auto_follows_the_table_size(
    built: PgvectorChunkStore, corpus: Path, dsn: str, embedder: CountingEmbedder
) -> None:
    """`auto` builds IVFFlat once the table reaches `ivfflat_from_rows`, re-chooses its cells only
    when rows/cell is 2x off, and goes back to HNSW below half the threshold."""
    rows = built.count()
    auto = PgvectorChunkStore(dsn, dim=embedder.dim, ivfflat_from_rows=rows, rows_per_list=2)
    try:
        assert auto.dense_plan(rows - 1, ("hnsw", 0)) == ("hnsw", 0)
        assert auto.dense_plan(rows, ("hnsw", 0)) == ("ivfflat", rows // 2)
        assert auto.dense_plan(rows, ("ivfflat", rows // 2 + 1)) == ("ivfflat", rows // 2 + 1)  # within 2x: kept
        assert auto.dense_plan(rows * 3, ("ivfflat", rows // 2)) == ("ivfflat", rows * 3 // 2)
        assert auto.dense_plan(rows // 2, ("ivfflat", rows // 4)) == ("ivfflat", rows // 4)  # hysteresis
        assert auto.dense_plan(rows // 2 - 1, ("ivfflat", rows // 4)) == ("hnsw", 0)
        report = build_pgvector(corpus, dsn, embedder, TOKENS, OVERLAP, store=auto)
        assert report.n_embedded == 0 and report.dense_index_change
        assert (auto.built_index, auto.lists) == ("ivfflat", rows // 2)
        reader = PgvectorChunkStore(dsn, dim=embedder.dim, probes=3)
        try:
            assert reader.hybrid_search(embedder.encode_query("Quoxaldrin"), "Quoxaldrin", k=3)
            with reader._search_pool().connection() as conn:
                assert conn.execute("SHOW ivfflat.probes").fetchone() == ("3",)
        finally:
            reader.close()
        for name in sorted(DOCS)[1:]:  # most of the corpus goes
            (corpus / name).unlink()
        report = build_pgvector(corpus, dsn, embedder, TOKENS, OVERLAP, store=auto)
        assert auto.count() < rows // 2 and auto.built_index == "hnsw", report.dense_index_change
    finally:
        auto.close()


def test_ivfflat_cells_follow_pgvector_advice() -> None:
    assert [ivfflat_lists(n) for n in (10, 999, 100_000, 1_000_000, 4_000_000)] == [1, 1, 100, 1000, 2000]
    assert [ivfflat_probes(n) for n in (1, 100, 1000)] == [1, 20, 63]


def test_a_search_does_not_wait_for_a_busy_session(
    dsn: str, built: PgvectorChunkStore, embedder: CountingEmbedder
) -> None:
    """Searches draw from a pool, not the write connection: with one search connection held (a
    slow question) and the write lock taken, another search gets a second connection and
    returns the same hits."""
    store = PgvectorChunkStore(dsn, dim=embedder.dim, pool_size=2)
    vector = embedder.encode_query("Quoxaldrin")
    try:
        expected = [h.chunk_id for h in store.hybrid_search(vector, "Quoxaldrin", k=3)]
        # one search connection busy, and the write connection's lock held (a build's statement)
        with store._search_pool().connection() as busy, store._lock:
            busy.execute("SELECT 1")
            got = [h.chunk_id for h in store.hybrid_search(vector, "Quoxaldrin", k=3)]
        assert got == expected
        assert store.pool_stats()["pool_size"] == 2
    finally:
        store.close()


def test_a_new_ef_search_reaches_connections_opened_before_it(
    dsn: str, built: PgvectorChunkStore, embedder: CountingEmbedder
) -> None:
    store = PgvectorChunkStore(dsn, dim=embedder.dim, pool_size=1)
    vector = embedder.encode_query("Quoxaldrin")
    try:
        store.hybrid_search(vector, "Quoxaldrin", k=3)  # opens the pool's one connection
        store.set_ef_search(123)
        store.hybrid_search(vector, "Quoxaldrin", k=3)
        with store._search_pool().connection() as conn:
            assert conn.execute("SHOW hnsw.ef_search").fetchone() == ("123",)
    finally:
        store.close()


def test_no_free_connection_is_a_503(dsn: str, built: PgvectorChunkStore, embedder: CountingEmbedder) -> None:
    from service.errors import StoreUnavailable

    store = PgvectorChunkStore(dsn, dim=embedder.dim, pool_size=1, connect_timeout=1)
    retriever = PgvectorRetriever(store, embedder)
    try:
        with store._search_pool().connection(), pytest.raises(StoreUnavailable) as caught:
            retriever.retrieve("Quoxaldrin", top_k=3)
        assert caught.value.status_code == 503
        assert "CITEQA_PGVECTOR_POOL_SIZE" in caught.value.message
        assert retriever.retrieve("Quoxaldrin", top_k=3).hits  # freed: searches go on
    finally:
        store.close()


def test_a_closed_store_opens_no_new_pool(dsn: str, built: PgvectorChunkStore, embedder: CountingEmbedder) -> None:
    store = PgvectorChunkStore(dsn, dim=embedder.dim)
    vector = embedder.encode_query("Quoxaldrin")
    assert store.hybrid_search(vector, "Quoxaldrin", k=1)
    store.close()
    with pytest.raises(PgvectorStoreError, match="closed"):
        store.hybrid_search(vector, "Quoxaldrin", k=1)
    assert store.pool_stats() == {}


def test_retriever_returns_hits_with_citation_metadata(
    built: PgvectorChunkStore, embedder: CountingEmbedder, corpus: Path
) -> None:
    retriever = PgvectorRetriever(built, embedder)
    result = retriever.retrieve("When was the aye-aye Quoxaldrin born?", top_k=3)
    assert result.query_vector.shape == (embedder.dim,)
    assert len(result.hits) == 3
    assert [h.fused for h in result.hits] == sorted((h.fused for h in result.hits), reverse=True)
    top = result.hits[0]
    expected = next(c for c in local_chunks(corpus) if "Quoxaldrin" in c.text)
    assert top.chunk == expected  # source, lines, heading, anchor and sentence spans round-trip
    assert top.chunk.heading == "Animals › Night house"
    assert top.chunk.start_line == top.chunk.end_line == 11
    assert top.chunk.sentences and top.chunk.lines
    assert retriever.version.startswith("pgvector:citeqa_chunks@") and retriever.n_chunks == built.count()


def test_rarity_equals_the_local_bm25_idf(built: PgvectorChunkStore, embedder: CountingEmbedder, corpus: Path) -> None:
    chunks = local_chunks(corpus)
    local = BM25([content_words(c.embed_text) for c in chunks]).idf
    rarity = PgvectorRetriever(built, embedder).rarity
    assert set(rarity) == set(local)
    for word, idf in local.items():
        assert rarity[word] == pytest.approx(idf, rel=1e-12), word
    assert built.stats().n_chunks == len(chunks) == built.count()


def test_the_files_digest_follows_the_files_and_outlives_a_dropped_connection(
    built: PgvectorChunkStore, corpus: Path, dsn: str, pg_server: PostgresServer
) -> None:
    import psycopg

    digest = built.files_digest()
    assert built.files_digest() == digest and digest.startswith(f"{len(DOCS)}-")
    with psycopg.connect(dsn, autocommit=True) as admin:  # what a server restart does to the session
        admin.execute("SELECT pg_terminate_backend(%s)", (built.conn.info.backend_pid,))
    assert built.files_digest() == digest  # reconnected, same answer
    (corpus / "trains.txt").write_text("The funicular Brakkenlift climbs the hill every twenty minutes.\n")
    build_pgvector(corpus, dsn, CountingEmbedder(), TOKENS, OVERLAP)
    changed = built.files_digest()
    assert changed != digest and changed.startswith(f"{len(DOCS)}-")  # same files, one new sha256


def test_unchanged_corpus_embeds_nothing(built: PgvectorChunkStore, corpus: Path, dsn: str) -> None:
    again = CountingEmbedder()
    report = build_pgvector(corpus, dsn, again, TOKENS, OVERLAP)
    assert again.embedded == [] and report.n_embedded == 0
    assert len(report.unchanged) == len(DOCS) and not (report.added or report.updated or report.removed)
    assert not report.written


def test_changed_and_added_files_are_the_only_ones_re_embedded(
    built: PgvectorChunkStore, corpus: Path, dsn: str
) -> None:
    (corpus / "trains.txt").write_text("The funicular Brakkenlift climbs the hill every twenty minutes.\n")
    (corpus / "boats.txt").write_text("The ferry Ostravel crosses the lake twice a day.\n")
    again = CountingEmbedder()
    report = build_pgvector(corpus, dsn, again, TOKENS, OVERLAP)
    trains, boats = source_of(corpus, "trains.txt"), source_of(corpus, "boats.txt")
    assert report.updated == [trains] and report.added == [boats] and not report.removed
    assert sorted(again.embedded) == sorted(c.embed_text for c in local_chunks(corpus) if c.source in (trains, boats))
    hits = built.hybrid_search(again.encode_query("funicular"), "Brakkenlift", k=5)
    assert "Brakkenlift" in hits[0].chunk.text
    assert not any("Vienna" in h.chunk.text for h in hits)
    assert built.hybrid_search(again.encode_query("ferry"), "Ostravel", k=1)[0].chunk.source == boats
    assert built.count() == built.stats().n_chunks == len(local_chunks(corpus))
    local = BM25([content_words(c.embed_text) for c in local_chunks(corpus)]).idf
    assert PgvectorRetriever(built, again).rarity == pytest.approx(dict(local))


def test_deleted_file_leaves_search(built: PgvectorChunkStore, corpus: Path, dsn: str) -> None:
    zoo = source_of(corpus, "zoo.md")
    (corpus / "zoo.md").unlink()
    again = CountingEmbedder()
    report = build_pgvector(corpus, dsn, again, TOKENS, OVERLAP)
    assert report.removed == [zoo] and report.n_embedded == 0
    assert zoo not in built.files()
    hits = built.hybrid_search(again.encode_query("Quoxaldrin aye-aye"), "Quoxaldrin aye-aye", k=10)
    assert hits and all(h.chunk.source != zoo for h in hits)
    assert built.count() == built.stats().n_chunks == len(local_chunks(corpus))
    assert "quoxaldrin" not in built.stats().df


def test_other_dimension_is_refused_and_other_settings_rebuild(
    built: PgvectorChunkStore, corpus: Path, dsn: str
) -> None:
    with pytest.raises(DimensionMismatchError, match=r"holds 256-dim vectors .* 128-dim"):
        PgvectorChunkStore(dsn, dim=128).ensure()
    with pytest.raises(DimensionMismatchError, match="256-dim"):
        PgvectorRetriever(PgvectorChunkStore(dsn, dim=128), HashingEmbedder(128))
    report = build_pgvector(corpus, dsn, HashingEmbedder(128), TOKENS, OVERLAP)
    assert report.rebuild_reason and "dim changed (256 -> 128)" in report.rebuild_reason
    assert PgvectorChunkStore(dsn, dim=128).stored_dim() == 128


def test_an_unreachable_server_is_a_typed_error() -> None:
    dsn = f"postgresql://citeqa:secret@127.0.0.1:{free_port()}/citeqa"
    with pytest.raises(PgvectorStoreError, match="cannot connect to PostgreSQL at") as caught:
        PgvectorChunkStore(dsn, connect_timeout=2)
    assert "secret" not in str(caught.value)


def test_a_database_without_the_extension_is_a_typed_error(pg_server: PostgresServer) -> None:
    """The server has pgvector installed but this role may not create it: a plain user."""
    import psycopg

    dsn = pg_server.new_database("no_vector", vector=False)
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS plain")
        conn.execute("CREATE ROLE plain LOGIN")
    plain = dsn.replace(f"{pg_server.user}@", "plain@")
    with pytest.raises(PgvectorStoreError, match="pgvector extension is not available"):
        PgvectorChunkStore(plain)


def test_citeqa_index_builds_into_pgvector(corpus: Path, pg_server: PostgresServer, tmp_path: Path) -> None:
    """`citeqa index` with CITEQA_VECTOR_STORE=pgvector (the hashing embedder in place of the model)."""
    import os
    import subprocess
    import sys

    from service.testing import HASHING_CLI

    dsn = pg_server.new_database("cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITEQA_")}
    root = Path(__file__).parents[2]
    env.update(
        CITEQA_VECTOR_STORE="pgvector",
        CITEQA_PGVECTOR_DSN=dsn,
        CITEQA_CORPUS_DIR=str(corpus),
        CITEQA_INDEX_DIR=str(tmp_path / "index"),
        PYTHONPATH=str(root),
    )
    done = subprocess.run(
        [sys.executable, "-c", HASHING_CLI, "index", "--quiet"],
        env=env,
        cwd=root,  # the worktree's code first on the path, not an installed copy
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "-> PostgreSQL postgresql://" in done.stderr and "added 3" in done.stderr
    store = PgvectorChunkStore(dsn, dim=HashingEmbedder().dim)
    assert store.count() == store.stats().n_chunks == len(local_chunks(corpus))
    store.close()
    env["CITEQA_PGVECTOR_DSN"] = f"postgresql://citeqa@127.0.0.1:{free_port()}/citeqa"
    down = subprocess.run(
        [sys.executable, "-c", HASHING_CLI, "index", "--quiet"],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert down.returncode == 2 and "cannot connect to PostgreSQL" in down.stderr, down.stderr[-2000:]


def test_a_second_build_of_the_same_table_waits_for_the_first(corpus: Path, dsn: str) -> None:
    """The advisory lock: while one store holds the build lock, a build through another connection
    gives up after its timeout with a typed error, and goes through once the holder's session has
    ended (the lock went with it)."""
    holder = PgvectorChunkStore(dsn, dim=HashingEmbedder().dim)
    other = PgvectorChunkStore(dsn, dim=HashingEmbedder().dim)
    try:
        with holder.build_lock(timeout=1), pytest.raises(PgvectorStoreError, match="another `citeqa index`"):
            build_pgvector(corpus, dsn, HashingEmbedder(), TOKENS, OVERLAP, store=other, lock_timeout=0.5)
        holder.close()
        report = build_pgvector(corpus, dsn, HashingEmbedder(), TOKENS, OVERLAP, store=other, lock_timeout=5)
        assert report.n_chunks > 0
    finally:
        other.close()
        if not holder.conn.closed:
            holder.close()
