"""Structured JSON logs carrying a request id, and Prometheus metrics.

The request id comes from the client's `X-Request-ID` (if sane) or is generated, is returned in the
same header, and appears on every log line written while serving that request.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.schemas import ran

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id_var.get(),
        }
        for key in ("route", "status", "duration_ms", "method"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # replaced by our access line with request id
    logging.getLogger("LiteLLM").setLevel(logging.WARNING)


class Metrics:
    """One registry per app, so several apps (tests) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("citeqa_requests_total", "HTTP requests", ["route", "status"], registry=self.registry)
        self.latency = Histogram(
            "citeqa_stage_seconds",
            "Latency per stage",
            ["stage"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
        )
        self.tokens = Counter("citeqa_llm_tokens_total", "LLM tokens", ["direction"], registry=self.registry)
        self.refusals = Counter("citeqa_refusals_total", "Answers refused", registry=self.registry)
        self.answers = Counter("citeqa_answers_total", "Answers produced", registry=self.registry)
        self.second_looks = Counter(
            "citeqa_second_look_total",
            "Second looks at checked answers (service/answer/second_look.py), by outcome: kept, vetoed, failed",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in ("kept", "vetoed", "failed"):  # every series exists from the start, at 0
            self.second_looks.labels(outcome)
        self.index_reloads = Counter(
            "citeqa_index_reloads_total",
            "New index versions seen in CURRENT while serving, or for Milvus and pgvector changed stored files "
            "whose statistics were re-read (service/api/reload.py), by outcome: ok, failed",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in ("ok", "failed"):
            self.index_reloads.labels(outcome)
        self.feedback = Counter(
            "citeqa_feedback_total",
            "Ratings received at POST /feedback, by rating: up, down",
            ["rating"],
            registry=self.registry,
        )
        for rating in ("up", "down"):
            self.feedback.labels(rating)
        self.index = Info("citeqa_index", "The index version being served", registry=self.registry)

    def record_index(self, version: str, chunks: int) -> None:
        """Say which index version is served now (at start and after every swap)."""
        self.index.info({"version": version, "chunks": str(chunks)})

    def record_answer(
        self,
        timings_ms: dict[str, float],
        refused: bool,
        prompt_tokens: int,
        completion_tokens: int,
        second_look: str | None = None,
    ) -> None:
        for stage in ("rewrite", "retrieve", "generate", "confirm", "total"):
            if ran(stage, timings_ms):
                self.latency.labels(stage).observe(timings_ms[stage] / 1000)
        self.tokens.labels("in").inc(prompt_tokens)
        self.tokens.labels("out").inc(completion_tokens)
        self.answers.inc()
        if refused:
            self.refusals.inc()
        if second_look:
            self.second_looks.labels(second_look).inc()


class RequestContextMiddleware:
    """Request id, access log and request metrics, as pure ASGI (so streaming responses pass
    through untouched). The body-size limit is `body_limit.BodyLimitMiddleware`, inside this one,
    so its 413s carry a request id and are logged and counted like any other response."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.log = logging.getLogger("citeqa.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = given if _SAFE_ID.match(given) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._finish(scope, status, started)
            request_id_var.reset(token)

    def _finish(self, scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        self.metrics.requests.labels(path, str(status)).inc()
        self.log.info(
            "%s %s %d",
            scope.get("method"),
            scope.get("path"),
            status,
            extra={
                "route": path,
                "status": status,
                "method": scope.get("method"),
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
