"""`CITEQA_VECTOR_STORE=pgvector`: the service answers from real PostgreSQL + pgvector tables
(tests/pg_server.py), with the answers and citations it gives from the FAISS index (the SQL BM25
reads the same terms and idf as the in-process one; HNSW finds the exact neighbours on a corpus
this small), and a store that is empty or unreachable stops start-up naming the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]')")
pytest.importorskip("pgvector", reason="pgvector is not installed (pip install pgvector)")

from index.store import IndexLoadError
from service.answer.loading import check_index
from service.testing import fake_settings
from tests.api.test_milvus_serving import _answers
from tests.pg_server import PostgresServer, free_port, pg_server

__all__ = ["pg_server"]


def test_answers_from_pgvector_match_the_faiss_index(tmp_path: Path, pg_server: PostgresServer) -> None:
    dsn = pg_server.new_database("serving")
    pg = fake_settings(tmp_path / "p", vector_store="pgvector", pgvector_dsn=dsn)
    faiss = fake_settings(tmp_path / "f")
    from_pg, from_faiss = _answers(pg), _answers(faiss)
    assert from_pg == from_faiss
    assert from_pg[0][2] and from_pg[0][2][0][0] == "seeds/000_cfe940b0310ddd85.txt"
    assert from_pg[-1][1] is True  # the question the seeds cannot answer is refused either way
    check_index(pg)  # built: start-up goes ahead


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
