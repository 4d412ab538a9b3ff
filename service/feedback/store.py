"""The feedback table, through SQLAlchemy Core so that one code path serves the embedded SQLite
file and a shared PostgreSQL (`postgresql+psycopg://...`) alike.

Every call blocks (the route runs it in a thread) and writes in one transaction: a rating is stored
whole or not at all. Any database failure comes out as `FeedbackUnavailable` (a 503 to clients),
never as a crash; the table is created on first use, so a database that was down at start-up is
picked up once it is back.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    insert,
    select,
)
from sqlalchemy.engine import make_url

from service.errors import FeedbackUnavailable
from service.schemas import FeedbackRequest

log = logging.getLogger(__name__)

metadata = MetaData()
feedback_table = Table(
    "citeqa_feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("rating", String(4), nullable=False, index=True),
    Column("question", Text, nullable=False),
    Column("answer", Text, nullable=False),
    Column("citations", JSON, nullable=False),
    Column("model", String(200), nullable=False),
    Column("refused", Boolean, nullable=False, default=False),
    Column("comment", Text, nullable=True),
    Column("request_id", String(64), nullable=True),
)


@dataclass(frozen=True)
class FeedbackRecord:
    """One stored rating, as read back."""

    id: int
    created_at: datetime  # UTC
    rating: Literal["up", "down"]
    question: str
    answer: str
    model: str
    refused: bool = False
    comment: str | None = None
    request_id: str | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)


def database_url(setting: str) -> str:
    """`CITEQA_FEEDBACK_DB` as a SQLAlchemy URL: a URL (it has `://`) is taken as it is, anything
    else is a SQLite file path."""
    if "://" in setting:
        return setting
    return f"sqlite:///{Path(setting).expanduser().resolve()}"


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class FeedbackStore:
    def __init__(self, setting: str) -> None:
        self.url = database_url(setting)
        self._engine: Engine | None = None
        self._ready = False
        self._lock = threading.Lock()

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for messages and logs."""
        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:  # a URL SQLAlchemy cannot parse: say so without echoing it
            return "<unparsable URL>"

    def _connect(self) -> Engine:
        """The engine, with the table created if missing; done once, retried after a failure."""
        with self._lock:
            if self._engine is not None and self._ready:
                return self._engine
            url = make_url(self.url)
            if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            if self._engine is None:
                # SQLite: wait up to 30 s for another process's write lock instead of failing at once.
                connect_args = {"timeout": 30} if url.get_backend_name() == "sqlite" else {}
                self._engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
            metadata.create_all(self._engine)  # checks first: an existing table is left alone
            self._ready = True
            return self._engine

    def _unavailable(self, exc: Exception, doing: str) -> FeedbackUnavailable:
        log.error("feedback database %s: %s failed: %s: %s", self.safe_url, doing, type(exc).__name__, exc)
        return FeedbackUnavailable(f"feedback could not be {doing}: the feedback database is unavailable")

    def check(self) -> bool:
        """Create the table at start-up; False (and a log line) when the database is unusable."""
        try:
            self._connect()
        except Exception as exc:
            self._unavailable(exc, "prepared")
            return False
        return True

    def add(self, item: FeedbackRequest, now: datetime | None = None) -> int:
        """Store one rating in its own transaction; returns its id."""
        values = {
            "created_at": _as_utc(now or datetime.now(UTC)),
            "rating": item.rating,
            "question": item.question,
            "answer": item.answer,
            "citations": [c.model_dump(mode="json") for c in item.citations],
            "model": item.model,
            "refused": item.refused,
            "comment": item.comment or None,
            "request_id": item.request_id,
        }
        try:
            engine = self._connect()
            with engine.begin() as conn:  # commits on success, rolls back on any error
                result = conn.execute(insert(feedback_table).values(**values))
                key = result.inserted_primary_key
                assert key is not None
                return int(key[0])
        except Exception as exc:
            raise self._unavailable(exc, "stored") from exc

    def records(self, rating: str | None = None, since: datetime | None = None) -> list[FeedbackRecord]:
        """Stored ratings, oldest first; only `rating` ones and those from `since` on, when given."""
        query = select(feedback_table).order_by(feedback_table.c.created_at, feedback_table.c.id)
        if rating is not None:
            query = query.where(feedback_table.c.rating == rating)
        if since is not None:
            query = query.where(feedback_table.c.created_at >= _as_utc(since))
        try:
            with self._connect().connect() as conn:
                rows = conn.execute(query).mappings().all()
        except Exception as exc:
            raise self._unavailable(exc, "read") from exc
        return [
            FeedbackRecord(
                id=row["id"],
                created_at=_as_utc(row["created_at"]),
                rating=row["rating"],
                question=row["question"],
                answer=row["answer"],
                model=row["model"],
                refused=bool(row["refused"]),
                comment=row["comment"],
                request_id=row["request_id"],
                citations=list(row["citations"] or []),
            )
            for row in rows
        ]

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._engine, self._ready = None, False
