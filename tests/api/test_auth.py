"""Access control over HTTP: API keys, widget tokens and the rate limit, against the real app with
the fake loader (hashing embedder, FakeLLM). Every refusal is a typed 4xx, never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.auth import issue_token
from service.settings import Settings
from service.testing import FakeLLM, fake_settings
from tests.conftest import make_client, wait_ready

QUESTION = {"question": "What breed of dog did Kim give Putin?"}
KEY = {"Authorization": "Bearer k1"}


def assert_typed_error(r, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert error["code"] == code and isinstance(error["message"], str) and error["message"]
    assert error["request_id"] == r.headers["x-request-id"]
    return error  # type: ignore[no-any-return]


@pytest.fixture
def keyed_settings(index_dir: Path) -> Settings:
    return fake_settings(index_dir.parent, api_keys="k1", rate_limit="3/minute")


@pytest.fixture
def keyed(keyed_settings: Settings) -> Iterator[TestClient]:
    with make_client(keyed_settings, FakeLLM()) as c:
        wait_ready(c)
        yield c


def test_api_keys_setting_accepts_a_comma_separated_list(index_dir: Path) -> None:
    s = fake_settings(index_dir.parent, api_keys=" k1, k2 ,,")
    assert [k.get_secret_value() for k in s.api_keys] == ["k1", "k2"]
    assert "k1" not in repr(s)  # keys are secrets, never printed


@pytest.mark.parametrize("path", ["/ask", "/ask/stream"])
def test_no_key_is_401_with_typed_body(keyed: TestClient, path: str) -> None:
    r = keyed.post(path, json=QUESTION)
    error = assert_typed_error(r, 401, "unauthorized")
    assert "Authorization" in error["message"]
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header",
    ["Bearer k2", "Bearer k1x", "Bearer K1", "Basic k1", "k1", "Bearer ", "Bearer", "Token k1"],
)
def test_wrong_key_is_401(keyed: TestClient, header: str) -> None:
    r = keyed.post("/ask", json=QUESTION, headers={"Authorization": header})
    assert_typed_error(r, 401, "unauthorized")


def test_right_key_is_200_and_scheme_is_case_insensitive(keyed: TestClient) -> None:
    assert keyed.post("/ask", json=QUESTION, headers=KEY).status_code == 200
    assert keyed.post("/ask", json=QUESTION, headers={"Authorization": "bearer k1"}).status_code == 200


def test_health_ready_and_schema_are_open(keyed: TestClient) -> None:
    assert keyed.get("/health").status_code == 200
    assert keyed.get("/ready").status_code == 200
    assert keyed.get("/openapi.json").status_code == 200
    assert keyed.get("/metrics").status_code == 200


def test_auth_is_checked_before_the_body(keyed: TestClient) -> None:
    """An unauthenticated caller learns nothing about validation: 401 even for a bad body."""
    r = keyed.post("/ask", json={"question": ""})
    assert_typed_error(r, 401, "unauthorized")
    r = keyed.post("/ask", json={"question": ""}, headers=KEY)
    assert_typed_error(r, 422, "invalid_request")


def test_burst_of_six_gets_three_200s_then_429_with_retry_after(keyed: TestClient) -> None:
    statuses = []
    for _ in range(6):
        r = keyed.post("/ask", json=QUESTION, headers=KEY)
        statuses.append(r.status_code)
        assert r.status_code < 500, r.text
        if r.status_code == 429:
            error = assert_typed_error(r, 429, "rate_limited")
            assert "3/minute" in error["message"]
            retry = int(r.headers["retry-after"])
            assert 1 <= retry <= 60
    assert statuses == [200, 200, 200, 429, 429, 429]


def test_rate_limit_is_per_key_and_unauthenticated_calls_do_not_spend_it(index_dir: Path) -> None:
    settings = fake_settings(index_dir.parent, api_keys="k1,k2", rate_limit="2/minute")
    with make_client(settings, FakeLLM()) as c:
        wait_ready(c)
        for _ in range(5):  # rejected before the limiter is charged
            assert c.post("/ask", json=QUESTION).status_code == 401
        k1 = [c.post("/ask", json=QUESTION, headers=KEY).status_code for _ in range(3)]
        k2 = [c.post("/ask", json=QUESTION, headers={"Authorization": "Bearer k2"}).status_code for _ in range(3)]
        assert c.get("/health").status_code == 200  # never limited
    assert k1 == [200, 200, 429]
    assert k2 == [200, 200, 429]


def test_rate_limit_without_keys_is_per_client_address(index_dir: Path) -> None:
    settings = fake_settings(index_dir.parent, rate_limit="2/minute")
    with make_client(settings, FakeLLM()) as c:
        wait_ready(c)
        statuses = [c.post("/ask", json=QUESTION).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_stream_endpoint_shares_the_rate_limit(keyed: TestClient) -> None:
    statuses = [keyed.post("/ask/stream", json=QUESTION, headers=KEY).status_code for _ in range(2)]
    statuses += [keyed.post("/ask", json=QUESTION, headers=KEY).status_code for _ in range(2)]
    assert statuses == [200, 200, 200, 429]


def test_widget_token_is_bound_to_its_origin(index_dir: Path) -> None:
    settings = fake_settings(index_dir.parent, api_keys="k1", cors_origins="https://shop.example")
    with make_client(settings, FakeLLM()) as c:
        wait_ready(c)
        r = c.post("/widget/token", headers={"Origin": "https://evil.example"})
        assert_typed_error(r, 401, "unauthorized")
        r = c.post("/widget/token", headers={"Origin": "https://shop.example"})
        assert r.status_code == 200, r.text
        token = r.json()["token"]
        assert token and r.json()["expires_in"] == settings.token_ttl_seconds
        auth = {"Authorization": f"Bearer {token}"}
        ok = c.post("/ask", json=QUESTION, headers={**auth, "Origin": "https://shop.example"})
        assert ok.status_code == 200, ok.text
        foreign = c.post("/ask", json=QUESTION, headers={**auth, "Origin": "https://evil.example"})
        assert_typed_error(foreign, 401, "unauthorized")
        assert_typed_error(c.post("/ask", json=QUESTION, headers=auth), 401, "unauthorized")  # no origin
        tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        r = c.post(
            "/ask",
            json=QUESTION,
            headers={"Authorization": f"Bearer {tampered}", "Origin": "https://shop.example"},
        )
        assert_typed_error(r, 401, "unauthorized")


def test_expired_widget_token_is_401(index_dir: Path) -> None:
    settings = fake_settings(index_dir.parent, api_keys="k1", cors_origins="https://shop.example")
    old = issue_token(settings, "https://shop.example", now=1_000_000.0)
    with make_client(settings, FakeLLM()) as c:
        wait_ready(c)
        r = c.post(
            "/ask",
            json=QUESTION,
            headers={"Authorization": f"Bearer {old}", "Origin": "https://shop.example"},
        )
    assert_typed_error(r, 401, "unauthorized")
