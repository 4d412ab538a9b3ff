"""Request ids and Prometheus metrics, over HTTP against the real app with the fake loader."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.api.observability import JsonFormatter, request_id_var
from service.testing import FakeLLM
from tests.conftest import FOLLOW_UP, make_client, wait_ready

ANSWERABLE = {"question": "What breed of dog did Kim give Putin?"}
OFF_CORPUS = {"question": "Who won the 2022 FIFA World Cup?"}
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, parsed with prometheus_client's own parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(parsed: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return parsed.get((name, tuple(sorted(labels.items()))), 0.0)  # type: ignore[no-any-return]


# --- X-Request-ID ------------------------------------------------------------------------------


def test_request_id_is_generated_when_absent(client: TestClient) -> None:
    ids = {client.get("/health").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3 and all(HEX32.match(i) for i in ids)


@pytest.mark.parametrize("given", ["abc-123", "req_1.2.3", "A" * 64, "0f" * 16])
def test_sane_request_id_is_echoed(client: TestClient, given: str) -> None:
    r = client.post("/ask", json=ANSWERABLE, headers={"X-Request-ID": given})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == given


@pytest.mark.parametrize(
    "given",
    ["", "has space", "A" * 65, "semi;colon", "new\\nline", "<script>", "ünïcode", "a/b", "x" * 1000],
)
def test_insane_request_id_is_replaced(client: TestClient, given: str) -> None:
    r = client.get("/health", headers=[(b"X-Request-ID", given.encode("utf-8"))])
    assert r.status_code == 200
    assert HEX32.match(r.headers["x-request-id"]), r.headers["x-request-id"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("post", "/ask", {"json": {"question": ""}}, 422),
        ("get", "/nope", {}, 404),
        ("get", "/ask", {}, 405),
        ("post", "/ask", {"content": b"x" * 70_000, "headers": {"Content-Type": "application/json"}}, 413),
    ],
)
def test_errors_carry_the_request_id_in_header_and_body(
    client: TestClient, method: str, path: str, kwargs: dict, status: int
) -> None:  # type: ignore[type-arg]
    headers = {**kwargs.pop("headers", {}), "X-Request-ID": "trace-me-42"}
    r = getattr(client, method)(path, headers=headers, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["x-request-id"] == "trace-me-42"
    assert r.json()["error"]["request_id"] == "trace-me-42"


def test_streaming_response_carries_the_request_id(client: TestClient) -> None:
    r = client.post("/ask/stream", json=ANSWERABLE, headers={"X-Request-ID": "stream-1"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "stream-1"
    assert "event: done" in r.text


def test_access_log_line_is_json_with_the_request_id(client: TestClient) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("citeqa.access")
    old_level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        client.post("/ask", json=ANSWERABLE, headers={"X-Request-ID": "log-me-7"})
    finally:
        access.removeHandler(handler)
        access.setLevel(old_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = [e for e in lines if e["request_id"] == "log-me-7"]
    assert mine, lines
    entry = mine[-1]
    assert entry["route"] == "/ask" and entry["status"] == 200 and entry["method"] == "POST"
    assert entry["duration_ms"] >= 0 and entry["level"] == "INFO"


def test_json_formatter_outside_a_request_has_a_null_id() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    assert request_id_var.get() is None
    entry = json.loads(JsonFormatter().format(record))
    assert entry == {**entry, "msg": "hello world", "level": "WARNING", "request_id": None}


# --- /metrics ----------------------------------------------------------------------------------


def test_metrics_is_prometheus_text(client: TestClient) -> None:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert "version=" in r.headers["content-type"]
    families = {f.name for f in text_string_to_metric_families(r.text)}
    assert {"citeqa_requests", "citeqa_stage_seconds", "citeqa_llm_tokens", "citeqa_refusals"} <= families


def test_metrics_count_requests_by_route_and_status(client: TestClient) -> None:
    before = samples(client.get("/metrics").text)
    for _ in range(3):
        assert client.post("/ask", json=ANSWERABLE).status_code == 200
    assert client.post("/ask", json={"question": ""}).status_code == 422
    for n in range(5):
        assert client.get(f"/no-such-page-{n}").status_code == 404
    after = samples(client.get("/metrics").text)

    def delta(**labels: str) -> float:
        return value(after, "citeqa_requests_total", **labels) - value(before, "citeqa_requests_total", **labels)

    assert delta(route="/ask", status="200") == 3
    assert delta(route="/ask", status="422") == 1
    assert delta(route="/metrics", status="200") == 1  # the scrape itself
    # Unknown paths share one label, so a scanner cannot blow up the label cardinality.
    assert delta(route="unmatched", status="404") == 5
    assert not any("no-such-page" in str(key) for key in after)


def test_metrics_have_stage_latency_histograms_and_token_counters(client: TestClient) -> None:
    before = samples(client.get("/metrics").text)
    assert client.post("/ask", json=ANSWERABLE).status_code == 200
    after = samples(client.get("/metrics").text)
    for stage in ("retrieve", "generate", "confirm", "total"):
        count = value(after, "citeqa_stage_seconds_count", stage=stage)
        assert count - value(before, "citeqa_stage_seconds_count", stage=stage) == 1, stage
        assert value(after, "citeqa_stage_seconds_bucket", stage=stage, le="+Inf") == count
        assert value(after, "citeqa_stage_seconds_sum", stage=stage) > 0
    assert value(after, "citeqa_stage_seconds_count", stage="rewrite") == 0  # no history, no rewrite
    tokens_in = value(after, "citeqa_llm_tokens_total", direction="in") - value(
        before, "citeqa_llm_tokens_total", direction="in"
    )
    tokens_out = value(after, "citeqa_llm_tokens_total", direction="out") - value(
        before, "citeqa_llm_tokens_total", direction="out"
    )
    assert tokens_in > 20 and tokens_out > 0
    assert value(after, "citeqa_answers_total") - value(before, "citeqa_answers_total") == 1
    kept = value(after, "citeqa_second_look_total", outcome="kept")
    assert kept - value(before, "citeqa_second_look_total", outcome="kept") == 1
    for outcome in ("vetoed", "failed"):  # present at 0, so an alert on them has a series to watch
        assert ("citeqa_second_look_total", (("outcome", outcome),)) in after


def test_metrics_count_refusals(client: TestClient, fake_llm: FakeLLM) -> None:
    before = samples(client.get("/metrics").text)
    body = client.post("/ask", json=OFF_CORPUS).json()
    assert body["refused"] is True
    after = samples(client.get("/metrics").text)
    assert value(after, "citeqa_refusals_total") - value(before, "citeqa_refusals_total") == 1
    assert value(after, "citeqa_answers_total") - value(before, "citeqa_answers_total") == 1
    assert fake_llm.calls == []  # refused before the LLM: no tokens either
    assert value(after, "citeqa_llm_tokens_total", direction="out") == value(
        before, "citeqa_llm_tokens_total", direction="out"
    )


def test_streamed_answers_are_counted_too(client: TestClient) -> None:
    before = samples(client.get("/metrics").text)
    assert "event: done" in client.post("/ask/stream", json=ANSWERABLE).text
    after = samples(client.get("/metrics").text)
    assert (
        value(after, "citeqa_requests_total", route="/ask/stream", status="200")
        - value(before, "citeqa_requests_total", route="/ask/stream", status="200")
        == 1
    )
    assert value(after, "citeqa_answers_total") - value(before, "citeqa_answers_total") == 1


def test_rewrite_stage_is_observed_for_follow_ups(client: TestClient) -> None:
    r = client.post("/ask", json=FOLLOW_UP)
    assert r.status_code == 200
    parsed = samples(client.get("/metrics").text)
    assert value(parsed, "citeqa_stage_seconds_count", stage="rewrite") == 1


def test_each_app_has_its_own_registry(settings) -> None:  # type: ignore[no-untyped-def]
    with make_client(settings, FakeLLM()) as a, make_client(settings, FakeLLM()) as b:
        wait_ready(a)
        wait_ready(b)
        a.post("/ask", json=ANSWERABLE)
        count_a = value(samples(a.get("/metrics").text), "citeqa_requests_total", route="/ask", status="200")
        count_b = value(samples(b.get("/metrics").text), "citeqa_requests_total", route="/ask", status="200")
    assert (count_a, count_b) == (1, 0)
