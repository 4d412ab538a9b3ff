"""Property-based API tests: schemathesis generates requests from the app's own OpenAPI schema and
sends them in-process (ASGI, no network) to the real app with the fake loader. No operation may
answer with a 5xx, and every error is a typed body. Then explicit bad inputs for POST /ask."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi

from service.api.app import create_app
from service.testing import FakeLLM, fake_loader, fake_settings
from tests.conftest import make_client, wait_ready

MAX_EXAMPLES = 50


# Every operation in the schema, and the modes it is fuzzed in: positive (valid per the schema) for all,
# negative (schema-violating bodies) where there is a body to break.
OPERATIONS = [
    ("GET", "/health", "positive"),
    ("GET", "/ready", "positive"),
    ("HEAD", "/health", "positive"),
    ("HEAD", "/ready", "positive"),
    ("POST", "/ask", "positive"),
    ("POST", "/ask", "negative"),
    ("POST", "/ask/stream", "positive"),
    ("POST", "/ask/stream", "negative"),
    ("POST", "/widget/token", "positive"),
    ("POST", "/feedback", "positive"),
    ("POST", "/feedback", "negative"),
    ("GET", "/v1/models", "positive"),
    ("POST", "/v1/chat/completions", "positive"),
    ("POST", "/v1/chat/completions", "negative"),
]
MODES = {"positive": GenerationMode.POSITIVE, "negative": GenerationMode.NEGATIVE}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    application = create_app(fake_settings(tmp), loader=fake_loader(FakeLLM()))
    yield application
    asgi.shutdown_lifespans()


@pytest.fixture
def api_schema(app: FastAPI) -> Any:
    """The app's OpenAPI schema, fetched in-process; its lifespan is started and the app is ready.
    Function-scoped: schemathesis' pytest plugin ends every ASGI lifespan when a test ends."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    with asgi.get_client(app) as client:  # type: ignore[arg-type]  # FastAPI is an ASGI app; the stub is narrower  # the same in-process client schemathesis sends cases with
        deadline = time.monotonic() + 30
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, "app did not become ready"
            time.sleep(0.05)
    return schema


def typed_error_body(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx from citeqa is {"error": {"code", "message", ...}}."""
    if response.status_code >= 400:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if not (
            isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str)
        ):
            raise AssertionError(f"untyped error body for {response.status_code}: {response.text[:300]}")
    return None


def test_every_schema_operation_is_fuzzed(api_schema: Any) -> None:
    in_schema = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert in_schema == {(method, path) for method, path, _ in OPERATIONS}


@pytest.mark.parametrize(("method", "path", "mode"), OPERATIONS, ids=[f"{m} {p} {g}" for m, p, g in OPERATIONS])
def test_no_operation_answers_with_a_5xx(api_schema: Any, app: FastAPI, method: str, path: str, mode: str) -> None:
    operation = api_schema[path][method]
    count = [0]
    statuses: set[int] = set()

    @given(case=operation.as_strategy(generation_mode=MODES[mode]))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=5000,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call_and_validate(checks=[not_a_server_error, typed_error_body], timeout=10)
        count[0] += 1
        statuses.add(response.status_code)

    run()
    print(f"{method} {path} {mode}: {count[0]} requests, statuses {sorted(statuses)}")
    assert count[0] > 0
    assert all(s < 500 for s in statuses), statuses
    # Every status the fuzzer met is one the schema documents (a 400 for an undecodable body was not).
    documented = {int(code) for code in app.openapi()["paths"][path][method.lower()]["responses"]}
    assert statuses <= documented, (statuses, documented)


# Explicit bad inputs for POST /ask: each is a typed 4xx, never a 5xx.


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("badinput")
    with make_client(fake_settings(tmp), FakeLLM()) as c:
        wait_ready(c)
        yield c


def assert_typed_4xx(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code and error["message"]
    assert error["request_id"] == r.headers["x-request-id"]


@pytest.mark.parametrize(
    ("name", "payload", "field"),
    [
        ("empty question", {"question": ""}, "question"),
        ("blank question", {"question": " \t\n "}, "question"),
        ("50,000-char question", {"question": "x" * 50_000}, "question"),
        ("NUL in question", {"question": "what\x00"}, "question"),
        ("question is a number", {"question": 42}, "question"),
        ("question is null", {"question": None}, "question"),
        ("question is a list", {"question": ["a"]}, "question"),
        ("question missing", {}, "question"),
        ("negative top_k", {"question": "ok?", "top_k": -1}, "top_k"),
        ("zero top_k", {"question": "ok?", "top_k": 0}, "top_k"),
        ("top_k 21", {"question": "ok?", "top_k": 21}, "top_k"),
        ("top_k a string", {"question": "ok?", "top_k": "five"}, "top_k"),
        ("top_k a float", {"question": "ok?", "top_k": 2.5}, "top_k"),
        ("top_k huge", {"question": "ok?", "top_k": 10**30}, "top_k"),
        ("unknown field", {"question": "ok?", "temperature": 2}, "temperature"),
        ("history not a list", {"question": "ok?", "history": "hi"}, "history"),
        (
            "history system role",
            {"question": "ok?", "history": [{"role": "system", "content": "x"}]},
            "history",
        ),
        (
            "history too long",
            {"question": "ok?", "history": [{"role": "user", "content": "x"}] * 21},
            "history",
        ),
        (
            "history unknown field",
            {"question": "ok?", "history": [{"role": "user", "content": "x", "name": "y"}]},
            "history",
        ),
    ],
)
def test_bad_ask_body_is_a_typed_422(client: TestClient, name: str, payload: object, field: str) -> None:
    r = client.post("/ask", json=payload)
    assert_typed_4xx(r, 422, "invalid_request")
    details = r.json()["error"]["details"]
    assert details and any(field in map(str, d["loc"]) for d in details), details


@pytest.mark.parametrize("payload", [[], "question", 42, None, True])
def test_body_of_the_wrong_json_type_is_a_typed_422(client: TestClient, payload: object) -> None:
    assert_typed_4xx(client.post("/ask", json=payload), 422, "invalid_request")


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"question=hi", "application/json"),
        (b'{"question": "hi"', "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"", "application/json"),
        (b'{"question": "hi"}', "text/plain"),
        (b"question=hi", "application/x-www-form-urlencoded"),
    ],
)
def test_body_that_is_not_json_is_a_typed_4xx(client: TestClient, content: bytes, content_type: str) -> None:
    r = client.post("/ask", content=content, headers={"Content-Type": content_type})
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"]["code"] in {"invalid_request", "bad_request", "unsupported_media_type"}


def test_body_over_the_size_limit_is_a_typed_413(client: TestClient) -> None:
    big = b'{"question": "' + b"x" * 70_000 + b'"}'  # over the default 64,000-byte limit
    assert_typed_4xx(
        client.post("/ask", content=big, headers={"Content-Type": "application/json"}),
        413,
        "payload_too_large",
    )


def _chunked_oversized_body() -> Iterator[bytes]:
    """No Content-Length to check up front: the limit must be enforced while the body is read."""
    yield b'{"question": "'
    for _ in range(20):
        yield b"x" * 8000
    yield b'"}'


def test_chunked_body_over_the_size_limit_is_a_413(client: TestClient) -> None:
    r = client.post("/ask", content=_chunked_oversized_body(), headers={"Content-Type": "application/json"})
    assert_typed_4xx(r, 413, "payload_too_large")


def test_wrong_method_and_unknown_route_are_typed(client: TestClient) -> None:
    assert_typed_4xx(client.get("/ask"), 405, "method_not_allowed")
    assert_typed_4xx(client.post("/nope", json={}), 404, "not_found")


def test_a_valid_question_still_works(client: TestClient) -> None:
    r = client.post("/ask", json={"question": "What breed of dog did Kim give Putin?", "top_k": 20})
    assert r.status_code == 200, r.text
