"""The feedback store's PostgreSQL path (`CITEQA_FEEDBACK_DB=postgresql+psycopg://...`) against a
real server (tests/pg_server.py): the core round trip of tests/api/test_feedback.py, with the rows
read back through plain psycopg and through the store, filtered by rating and time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]')")

from service.feedback.store import FeedbackStore
from service.testing import fake_settings
from tests.api.test_feedback import DOG, rating
from tests.conftest import make_client, wait_ready
from tests.pg_server import PostgresServer, pg_server

__all__ = ["pg_server"]


def test_feedback_round_trip_through_postgresql(index_dir: Path, pg_server: PostgresServer) -> None:
    import psycopg
    from psycopg.rows import dict_row

    dsn = pg_server.new_database("feedback", vector=False)
    url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    started = datetime.now(UTC)
    with make_client(fake_settings(index_dir.parent, feedback_db=url)) as client:
        wait_ready(client)
        body = rating(client, "down", "It left out that they were hunting dogs.", request_id="req-123")
        r = client.post("/feedback", json=body)
        assert r.status_code == 201, r.text
        first = r.json()["id"]
        r = client.post("/feedback", json=rating(client, "up"))
        assert r.status_code == 201, r.text
        assert r.json()["id"] != first

    with psycopg.connect(dsn, row_factory=dict_row) as conn:  # read with psycopg, not the store
        rows = conn.execute("SELECT * FROM citeqa_feedback ORDER BY id").fetchall()
    assert [row["rating"] for row in rows] == ["down", "up"]
    down = rows[0]
    assert down["id"] == first and down["question"] == DOG and down["answer"] == body["answer"]
    assert down["comment"] == "It left out that they were hunting dogs." and down["request_id"] == "req-123"
    assert down["citations"] == body["citations"] and body["citations"]
    assert down["created_at"].tzinfo is not None
    assert abs((datetime.now(UTC) - down["created_at"]).total_seconds()) < 60
    assert rows[1]["comment"] is None and rows[1]["refused"] is False

    store = FeedbackStore(url)
    try:
        stored = store.records()
        assert [x.rating for x in stored] == ["down", "up"]
        assert stored[0].citations == body["citations"] and stored[0].created_at.tzinfo == UTC
        assert [x.id for x in store.records(rating="down")] == [first]
        assert len(store.records(since=started - timedelta(seconds=5))) == 2
        assert store.records(since=datetime.now(UTC) + timedelta(hours=1)) == []
        assert store.check()  # the table exists: a second create_all leaves it alone
    finally:
        store.close()


def test_an_unreachable_postgresql_is_feedback_unavailable_not_a_crash() -> None:
    from service.errors import FeedbackUnavailable
    from service.schemas import FeedbackRequest
    from tests.pg_server import free_port

    store = FeedbackStore(f"postgresql+psycopg://citeqa:hunter2@127.0.0.1:{free_port()}/citeqa")
    try:
        assert store.check() is False
        item = FeedbackRequest(question=DOG, answer="A hunting dog.", rating="up", model="fake", citations=[])
        with pytest.raises(FeedbackUnavailable):
            store.add(item)
        assert "hunter2" not in store.safe_url
    finally:
        store.close()
