"""`CITEQA_VECTOR_STORE=pgvector`: the service answers from real PostgreSQL + pgvector tables
(tests/pg_server.py), with the answers and citations it gives from the FAISS index (the SQL BM25
reads the same terms and idf as the in-process one; HNSW finds the exact neighbours on a corpus
this small), a store that is empty or unreachable stops start-up naming the fix, and a running
service re-reads word rarity when `citeqa index` changes the stored files."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]')")
pytest.importorskip("pgvector", reason="pgvector is not installed (pip install pgvector)")

from index.embedder import HashingEmbedder
from index.pgvector_build import build_pgvector
from index.pgvector_store import PgvectorStoreError
from index.store import IndexLoadError
from service.answer.loading import check_index
from service.answer.pgvector_retriever import PgvectorRetriever
from service.api.reload import StoreWatcher
from service.api.state import AppState
from service.testing import fake_settings
from tests.api.test_milvus_serving import _answers
from tests.conftest import make_client, wait_ready
from tests.pg_server import PostgresServer, free_port, pg_server

__all__ = ["pg_server"]
ROOT = Path(__file__).resolve().parents[2]


def test_answers_from_pgvector_match_the_faiss_index(tmp_path: Path, pg_server: PostgresServer) -> None:
    dsn = pg_server.new_database("serving")
    pg = fake_settings(tmp_path / "p", vector_store="pgvector", pgvector_dsn=dsn)
    faiss = fake_settings(tmp_path / "f")
    from_pg, from_faiss = _answers(pg), _answers(faiss)
    assert from_pg == from_faiss
    assert from_pg[0][2] and from_pg[0][2][0][0] == "seeds/000_cfe940b0310ddd85.txt"
    assert from_pg[-1][1] is True  # the question the seeds cannot answer is refused either way
    check_index(pg)  # built: start-up goes ahead


def test_a_named_table_with_ivfflat_serves_the_same_answers(tmp_path: Path, pg_server: PostgresServer) -> None:
    """CITEQA_PGVECTOR_TABLE keeps a corpus's tables apart in a shared database, and the service
    answers from an IVFFlat index as from HNSW (one cell on a corpus this small: an exact scan)."""
    dsn = pg_server.new_database("named")
    pg = fake_settings(
        tmp_path / "p", vector_store="pgvector", pgvector_dsn=dsn, pgvector_table="seeds_a", pgvector_index="ivfflat"
    )
    assert _answers(pg) == _answers(fake_settings(tmp_path / "f"))
    import psycopg

    with psycopg.connect(dsn) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        kind = conn.execute(
            "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam WHERE c.relname = 'seeds_a_dense'"
        ).fetchone()
    assert tables == {"seeds_a", "seeds_a_postings", "seeds_a_files"} and kind == ("ivfflat",)
    with pytest.raises(IndexLoadError, match="no index found"):  # the default table is not there
        check_index(fake_settings(tmp_path / "d", vector_store="pgvector", pgvector_dsn=dsn))


def test_an_empty_pgvector_store_stops_start_up_naming_the_fix(tmp_path: Path, pg_server: PostgresServer) -> None:
    settings = fake_settings(tmp_path, vector_store="pgvector", pgvector_dsn=pg_server.new_database("empty"))
    with pytest.raises(IndexLoadError, match="citeqa index"):
        check_index(settings)


def test_an_unreachable_pgvector_store_stops_start_up(tmp_path: Path) -> None:
    dsn = f"postgresql://citeqa:hunter2@127.0.0.1:{free_port()}/citeqa"
    settings = fake_settings(tmp_path, vector_store="pgvector", pgvector_dsn=dsn)
    with pytest.raises(IndexLoadError, match="cannot connect to PostgreSQL") as caught:
        check_index(settings)
    assert "hunter2" not in str(caught.value)


def _reloads(text: str, outcome: str) -> float:
    match = re.search(rf'^citeqa_index_reloads_total{{outcome="{outcome}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


LIFT = "# Lift\n\nThe Brakkenlift funicular climbs the hill every twenty minutes.\n"


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    corpus = tmp_path / "seeds"
    shutil.copytree(ROOT / "seeds", corpus)
    return corpus


def test_a_running_service_re_reads_word_rarity_after_citeqa_index(
    tmp_path: Path, seeds: Path, pg_server: PostgresServer
) -> None:
    """`citeqa index` updates the tables under a running service; within two polls the service's
    word rarity and chunk count are those of the new files (before StoreWatcher they stayed as at
    start until a restart)."""
    dsn = pg_server.new_database("rarity")
    settings = fake_settings(
        tmp_path, corpus_dir=seeds, vector_store="pgvector", pgvector_dsn=dsn, index_reload_interval=0.05
    )
    with make_client(settings) as c:
        wait_ready(c, timeout=120)
        retriever = c.app.state.citeqa.answerer.retriever  # type: ignore[attr-defined]
        before, chunks_before = retriever.version, retriever.n_chunks
        assert "funicular" not in retriever.rarity

        (seeds / "lift.md").write_text(LIFT)
        build_pgvector(seeds, dsn, HashingEmbedder(), settings.chunk_tokens, settings.chunk_overlap)
        deadline = time.monotonic() + 10
        while _reloads(c.get("/metrics").text, "ok") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _reloads(c.get("/metrics").text, "ok") == 1
        assert retriever.version != before
        assert retriever.n_chunks == chunks_before + 1
        assert retriever.rarity["funicular"] == retriever.rarity.unseen  # one chunk holds it: the rarest
        r = c.post("/ask", json={"question": "How often does the Brakkenlift funicular climb the hill?"})
        assert r.status_code == 200 and r.json()["citations"][0]["source"].endswith("lift.md"), r.text


def _served(c: TestClient) -> tuple[AppState, PgvectorRetriever]:
    state = c.app.state.citeqa  # type: ignore[attr-defined]
    return state, state.answerer.retriever


def test_a_change_is_read_once_it_has_settled(tmp_path: Path, seeds: Path, pg_server: PostgresServer) -> None:
    dsn = pg_server.new_database("settle")
    settings = fake_settings(
        tmp_path, corpus_dir=seeds, vector_store="pgvector", pgvector_dsn=dsn, index_reload_interval=0
    )
    with make_client(settings) as c:
        wait_ready(c, timeout=120)
        state, retriever = _served(c)
        watcher = StoreWatcher(state)
        lexicon = retriever._lexicon
        assert asyncio.run(watcher.check()) is False and retriever._lexicon is lexicon  # nothing changed
        (seeds / "lift.md").write_text(LIFT)
        build_pgvector(seeds, dsn, HashingEmbedder(), settings.chunk_tokens, settings.chunk_overlap)
        assert asyncio.run(watcher.check()) is False  # seen, not read yet: a build may still be writing
        assert "funicular" not in retriever.rarity
        assert asyncio.run(watcher.check()) is True  # the same digest again: settled, read
        assert "funicular" in retriever.rarity and watcher.polls == 3


class _FailingStore:
    def files_digest(self) -> str:
        raise PgvectorStoreError("cannot connect to PostgreSQL at postgresql://127.0.0.1:1/x")


def test_a_store_that_fails_the_poll_keeps_its_statistics_and_recovers(
    tmp_path: Path, pg_server: PostgresServer
) -> None:
    dsn = pg_server.new_database("failing")
    settings = fake_settings(tmp_path, vector_store="pgvector", pgvector_dsn=dsn, index_reload_interval=0)
    with make_client(settings) as c:
        wait_ready(c, timeout=120)
        state, retriever = _served(c)
        watcher = StoreWatcher(state)
        rarity, chunks = retriever.rarity, retriever.n_chunks
        working = retriever.store
        retriever.store = _FailingStore()  # type: ignore[assignment]
        try:
            assert asyncio.run(watcher.check()) is False
            assert asyncio.run(watcher.check()) is False
        finally:
            retriever.store = working
        assert retriever.rarity is rarity and retriever.n_chunks == chunks
        assert "cannot connect to PostgreSQL" in (c.get("/ready").json()["reload_error"] or "")
        assert _reloads(c.get("/metrics").text, "failed") == 1  # one problem, counted once
        assert c.get("/ready").status_code == 200  # the service keeps answering
        assert asyncio.run(watcher.check()) is False
        assert c.get("/ready").json()["reload_error"] is None  # readable again: the error is cleared


class _OtherModel(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.name = "another-embedding-model"


def test_a_store_rebuilt_with_another_embedding_model_is_reported_not_served(
    tmp_path: Path, seeds: Path, pg_server: PostgresServer
) -> None:
    dsn = pg_server.new_database("rebuilt")
    settings = fake_settings(
        tmp_path, corpus_dir=seeds, vector_store="pgvector", pgvector_dsn=dsn, index_reload_interval=0
    )
    with make_client(settings) as c:
        wait_ready(c, timeout=120)
        state, retriever = _served(c)
        watcher = StoreWatcher(state)
        lexicon = retriever._lexicon
        build_pgvector(seeds, dsn, _OtherModel(), settings.chunk_tokens, settings.chunk_overlap)
        assert not asyncio.run(watcher.check()) and not asyncio.run(watcher.check())
        assert retriever._lexicon is lexicon
        assert "CITEQA_EMBEDDING_MODEL" in (state.reload_error or "")
        assert _reloads(c.get("/metrics").text, "failed") == 1
