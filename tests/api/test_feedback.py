"""POST /feedback and `citeqa feedback export`, against the real SQLite file: what is stored reads
back, the route is guarded like /ask, bad input is a 422, an unusable database a 503, ratings are
counted, and thumbs-down come out as eval drafts the eval loader takes once a person fills them in."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from evals.corpora import parse_case
from service.cli import main as cli_main
from service.feedback.export import TODO
from service.feedback.store import FeedbackStore, database_url
from service.settings import Settings
from service.testing import fake_settings
from tests.conftest import make_client, wait_ready

DOG = "What breed of dog did Kim give Putin?"
API_KEY = "sk-feedback-test-0123456789abcdef"
ALLOWED = "https://allowed.example"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "fb" / "feedback.db"  # the folder does not exist yet: the store makes it


@pytest.fixture
def fb_client(index_dir: Path, db: Path) -> Iterator[TestClient]:
    with make_client(fake_settings(index_dir.parent, feedback_db=str(db))) as c:
        wait_ready(c)
        yield c


def rating(client: TestClient, rating: str, comment: str | None = None, **extra: Any) -> dict[str, Any]:
    """Ask, then rate the answer with what /ask returned."""
    answer = client.post("/ask", json={"question": DOG}).json()
    body = {k: answer[k] for k in ("answer", "citations", "model", "refused")}
    body.update(question=DOG, rating=rating, **extra)
    if comment is not None:
        body["comment"] = comment
    return body


def rows(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM citeqa_feedback ORDER BY id")]


def test_feedback_is_stored_in_the_sqlite_file(fb_client: TestClient, db: Path) -> None:
    body = rating(fb_client, "down", "It left out that they were hunting dogs.", request_id="req-123")
    r = fb_client.post("/feedback", json=body)
    assert r.status_code == 201, r.text
    feedback_id = r.json()["id"]
    assert isinstance(feedback_id, int)

    [row] = rows(db)  # read with plain sqlite3, not through the store
    assert row["id"] == feedback_id
    assert row["rating"] == "down" and row["question"] == DOG
    assert row["answer"] == body["answer"] and row["model"] == body["model"]
    assert row["comment"] == "It left out that they were hunting dogs."
    assert row["request_id"] == "req-123"
    assert json.loads(row["citations"]) == body["citations"] and body["citations"]
    created = datetime.fromisoformat(row["created_at"]).replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60

    r = fb_client.post("/feedback", json=rating(fb_client, "up"))
    assert r.status_code == 201 and r.json()["id"] != feedback_id
    stored = FeedbackStore(str(db)).records()
    assert [x.rating for x in stored] == ["down", "up"]
    assert stored[1].comment is None


def test_feedback_needs_the_same_credentials_as_asking(index_dir: Path, tmp_path: Path) -> None:
    settings = fake_settings(
        index_dir.parent, api_keys=API_KEY, cors_origins=ALLOWED, feedback_db=str(tmp_path / "f.db")
    )
    body = {"question": DOG, "answer": "Pungsan dogs [1].", "citations": [], "model": "m", "rating": "up"}
    with make_client(settings) as c:
        wait_ready(c)
        r = c.post("/feedback", json=body)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert c.post("/feedback", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.post("/feedback", json=body, headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 201
        token = c.post("/widget/token", headers={"Origin": ALLOWED}).json()["token"]
        widget = {"Origin": ALLOWED, "Authorization": f"Bearer {token}"}
        assert c.post("/feedback", json=body, headers=widget).status_code == 201
        foreign = {"Origin": "https://evil.example", "Authorization": f"Bearer {token}"}
        assert c.post("/feedback", json=body, headers=foreign).status_code == 401
    assert len(rows(tmp_path / "f.db")) == 2


def test_feedback_shares_the_ask_rate_limit(index_dir: Path, tmp_path: Path) -> None:
    settings = fake_settings(index_dir.parent, rate_limit="2/minute", feedback_db=str(tmp_path / "f.db"))
    body = {"question": DOG, "answer": "a", "citations": [], "model": "m", "rating": "up"}
    with make_client(settings) as c:
        wait_ready(c)
        assert c.post("/ask", json={"question": DOG}).status_code == 200
        assert c.post("/feedback", json=body).status_code == 201
        r = c.post("/feedback", json=body)
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"


@pytest.mark.parametrize(
    "change",
    [
        {"rating": "meh"},
        {"rating": None},
        {"comment": "x" * 2001},
        {"question": "   "},
        {"citations": [{"id": 1}]},
        {"unexpected": True},
        {"request_id": "no spaces allowed"},
    ],
)
def test_bad_feedback_is_a_typed_422(fb_client: TestClient, db: Path, change: dict[str, Any]) -> None:
    body = {"question": DOG, "answer": "a", "citations": [], "model": "m", "rating": "down", **change}
    body = {k: v for k, v in body.items() if v is not None}
    r = fb_client.post("/feedback", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request" and error["details"]
    assert not db.exists() or rows(db) == []


def test_a_comment_of_2000_characters_is_accepted(fb_client: TestClient, db: Path) -> None:
    body = {"question": DOG, "answer": "a", "citations": [], "model": "m", "rating": "down", "comment": "x" * 2000}
    assert fb_client.post("/feedback", json=body).status_code == 201
    assert rows(db)[0]["comment"] == "x" * 2000


def test_an_unwritable_database_is_a_503_not_a_crash(index_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database folder should be")  # root ignores chmod; this it cannot
    settings = fake_settings(index_dir.parent, feedback_db=str(blocker / "feedback.db"))
    body = {"question": DOG, "answer": "a", "citations": [], "model": "m", "rating": "down"}
    with make_client(settings) as c:
        wait_ready(c)  # start-up went on without the database
        r = c.post("/feedback", json=body)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "feedback_unavailable"
        assert c.post("/ask", json={"question": DOG}).status_code == 200  # asking is unaffected
        blocker.unlink()  # the database becomes usable: the next rating is stored, no restart needed
        assert c.post("/feedback", json=body).status_code == 201
    assert len(rows(blocker / "feedback.db")) == 1


def test_ratings_are_counted_in_metrics(fb_client: TestClient) -> None:
    def count(r: str) -> float:
        for line in fb_client.get("/metrics").text.splitlines():
            if line.startswith(f'citeqa_feedback_total{{rating="{r}"}}'):
                return float(line.split()[-1])
        raise AssertionError(f"no citeqa_feedback_total for {r}")

    assert (count("up"), count("down")) == (0, 0)
    body = {"question": DOG, "answer": "a", "citations": [], "model": "m"}
    for r in ("up", "down", "down"):
        assert fb_client.post("/feedback", json={**body, "rating": r}).status_code == 201
    assert fb_client.post("/feedback", json={**body, "rating": "bad"}).status_code == 422
    assert (count("up"), count("down")) == (1, 2)


def test_database_setting_takes_a_path_or_a_url(tmp_path: Path) -> None:
    assert database_url(str(tmp_path / "x.db")) == f"sqlite:///{tmp_path / 'x.db'}"
    url = "postgresql+psycopg://citeqa:secret@db:5432/citeqa"
    assert database_url(url) == url
    assert "secret" not in FeedbackStore(url).safe_url
    assert Settings(_env_file=None, feedback_db=f"  {url} ").feedback_db == url  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="feedback_db"):
        Settings(_env_file=None, feedback_db=" ")  # type: ignore[call-arg]


# ------------------------------------------------------------------ export


def export(db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    monkeypatch.setenv("CITEQA_FEEDBACK_DB", str(db))
    assert cli_main(["feedback", "export", *args]) == 0
    return capsys.readouterr().err


def test_export_writes_only_thumbs_down_as_eval_drafts(
    fb_client: TestClient, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    down = rating(fb_client, "down", "Wrong dogs.")
    for body in (down, rating(fb_client, "up"), {**down, "comment": None, "question": "Who won in 2022?"}):
        assert fb_client.post("/feedback", json={k: v for k, v in body.items() if v is not None}).status_code == 201

    out = tmp_path / "drafts.jsonl"
    err = export(db, monkeypatch, capsys, "--out", str(out))
    assert "wrote 2 " in err
    drafts = [json.loads(line) for line in out.read_text().splitlines()]
    assert [d["question"] for d in drafts] == [DOG, "Who won in 2022?"]
    first = drafts[0]
    assert first["reference"] == TODO and first["answerable"] is None
    assert first["key_facts"] == [] and first["gold_sources"] == []
    assert first["feedback"]["answer"] == down["answer"]
    assert first["feedback"]["comment"] == "Wrong dogs."
    assert first["feedback"]["citations"] == down["citations"]
    assert first["feedback"]["model"] == down["model"]
    assert first["feedback"]["rating"] == "down"
    assert len({d["id"] for d in drafts}) == 2

    # A draft as exported is refused by the eval loader: nobody has decided what the answer is.
    with pytest.raises(ValueError, match="answerable"):
        parse_case(first)
    # A person fills in the TODO fields; the `feedback` field may stay.
    filled = {
        **first,
        "answerable": True,
        "reference": "Kim gave Putin a pair of Pungsan hunting dogs.",
        "key_facts": [["Pungsan"]],
        "gold_sources": first["feedback"]["cited_sources"],
    }
    case = parse_case(filled)
    assert case.question == DOG and case.answerable and case.key_facts == [["Pungsan"]]
    assert parse_case({**drafts[1], "answerable": False, "reference": "Not covered."}).answerable is False
    with pytest.raises(ValueError, match="reference"):
        parse_case({**first, "answerable": True, "key_facts": [["Pungsan"]]})  # reference still TODO
    with pytest.raises(TypeError):
        parse_case({**filled, "refrence": "a misspelt field is still an error"})


def test_export_since_and_to_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.schemas import FeedbackRequest

    db = tmp_path / "f.db"
    store = FeedbackStore(str(db))
    item = {"answer": "a", "citations": [], "model": "m", "rating": "down"}
    store.add(FeedbackRequest(question="old one", **item), now=datetime(2024, 5, 1, tzinfo=UTC))
    store.add(FeedbackRequest(question="new one", **item), now=datetime(2025, 3, 2, 12, tzinfo=UTC))
    store.close()

    monkeypatch.setenv("CITEQA_FEEDBACK_DB", str(db))
    assert cli_main(["feedback", "export", "--since", "2025-01-01"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(x)["question"] for x in captured.out.splitlines()] == ["new one"]
    assert "wrote 1 " in captured.err
    assert cli_main(["feedback", "export"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    with pytest.raises(SystemExit):
        cli_main(["feedback", "export", "--since", "last tuesday"])


def test_export_from_an_unusable_database_fails_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("CITEQA_FEEDBACK_DB", str(blocker / "f.db"))
    assert cli_main(["feedback", "export", "--out", str(tmp_path / "out.jsonl")]) == 1
    assert "feedback database is unavailable" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()
