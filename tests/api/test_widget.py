"""The embeddable widget without a browser: what the page and script serve, widget tokens and CORS.
The event stream it reads is tests/api/test_stream.py; the widget in a real browser,
tests/system/test_widget_browser.py."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.auth import issue_token
from service.settings import Settings
from service.testing import fake_settings, parse_sse
from tests.conftest import make_client, wait_ready

ALLOWED = "https://allowed.example"
FOREIGN = "https://evil.example"
API_KEY = "sk-widget-test-0123456789abcdef"
TOKEN_SECRET = "widget-token-secret-fedcba9876543210"
DOG = "What breed of dog did Kim give Putin?"
FIFA = "Who won the 2022 FIFA World Cup?"
FOLLOW_UP = "What else did he receive?"
SCRIPT_TAG = re.compile(r"<script\b[^>]*>", re.I)


@pytest.fixture
def keyed_settings(index_dir: Path) -> Settings:
    return fake_settings(index_dir.parent, api_keys=API_KEY, cors_origins=ALLOWED)


@pytest.fixture
def keyed(keyed_settings: Settings) -> Iterator[TestClient]:
    with make_client(keyed_settings) as c:
        wait_ready(c)
        yield c


@pytest.fixture
def open_cors(index_dir: Path) -> Iterator[TestClient]:
    """API keys off, one allowed cross-origin embedder."""
    with make_client(fake_settings(index_dir.parent, cors_origins=ALLOWED)) as c:
        wait_ready(c)
        yield c


# ------------------------------------------------------------------ page and script


def test_page_embeds_the_widget_exactly_once(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "citeqa — internal demo" in r.text
    tags = [t for t in SCRIPT_TAG.findall(r.text) if "widget.js" in t]
    assert len(tags) == 1, tags
    assert re.search(r'\bsrc="[^"]*/widget\.js"', tags[0])
    assert re.search(r'\bdata-api=""', tags[0])  # same origin
    assert len(SCRIPT_TAG.findall(r.text)) == 1  # and no other script


def test_widget_script_is_served_as_javascript(client: TestClient) -> None:
    r = client.get("/widget.js")
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] in {"application/javascript", "text/javascript"}
    body = r.text
    for needle in ("attachShadow", "/ask/stream", "/widget/token", "data-testid", "aria-live"):
        assert needle in body
    assert "http://" not in body.replace("http://www.w3.org/2000/svg", "")  # no external resources
    assert "https://" not in body.split("*/", 1)[1]  # past the header comment: nothing fetched from elsewhere


def test_page_and_script_never_carry_a_key(index_dir: Path) -> None:
    s = fake_settings(
        index_dir.parent,
        api_keys=f"{API_KEY},second-key-abcdef",
        token_secret=TOKEN_SECRET,
        cors_origins=ALLOWED,
    )
    with make_client(s) as c:
        wait_ready(c)
        for path in ("/", "/widget.js"):
            r = c.get(path)
            assert r.status_code == 200
            for secret in (API_KEY, "second-key-abcdef", TOKEN_SECRET):
                assert secret not in r.text, f"{secret!r} leaked in {path}"
                assert secret not in json.dumps(dict(r.headers))


# ------------------------------------------------------------------ widget tokens


def test_allowed_origin_gets_a_token_that_works_for_ask(keyed: TestClient, keyed_settings: Settings) -> None:
    r = keyed.post("/widget/token", headers={"Origin": ALLOWED})
    assert r.status_code == 200
    body = r.json()
    assert body["token"] and body["expires_in"] == keyed_settings.token_ttl_seconds
    assert API_KEY not in body["token"]
    assert r.headers["access-control-allow-origin"] == ALLOWED  # the browser may read it

    auth = {"Origin": ALLOWED, "Authorization": f"Bearer {body['token']}"}
    r = keyed.post("/ask", json={"question": DOG}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["citations"]
    with keyed.stream("POST", "/ask/stream", json={"question": FIFA}, headers=auth) as s:
        assert s.status_code == 200
        assert parse_sse(s.read().decode())[-1][0] == "done"


def test_without_a_token_ask_is_refused(keyed: TestClient) -> None:
    assert keyed.post("/ask", json={"question": DOG}, headers={"Origin": ALLOWED}).status_code == 401
    assert keyed.post("/ask/stream", json={"question": DOG}, headers={"Origin": ALLOWED}).status_code == 401


def test_expired_token_is_refused(keyed: TestClient, keyed_settings: Settings) -> None:
    old = issue_token(keyed_settings, ALLOWED, now=time.time() - keyed_settings.token_ttl_seconds - 60)
    r = keyed.post("/ask", json={"question": DOG}, headers={"Origin": ALLOWED, "Authorization": f"Bearer {old}"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"


def test_token_from_another_origin_is_refused(keyed: TestClient, keyed_settings: Settings) -> None:
    token = issue_token(keyed_settings, ALLOWED)
    for headers in ({"Origin": FOREIGN}, {}):  # another page, or no Origin at all
        r = keyed.post("/ask", json={"question": DOG}, headers={**headers, "Authorization": f"Bearer {token}"})
        assert r.status_code == 401, headers


def test_tampered_token_is_refused(keyed: TestClient, keyed_settings: Settings) -> None:
    body, sig = issue_token(keyed_settings, ALLOWED).split(".")
    forged = f"{body}.{sig[:-2]}{'AA' if not sig.endswith('AA') else 'BB'}"
    r = keyed.post("/ask", json={"question": DOG}, headers={"Origin": ALLOWED, "Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


def test_disallowed_origin_gets_no_token(keyed: TestClient) -> None:
    for headers in ({"Origin": FOREIGN}, {}):
        r = keyed.post("/widget/token", headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"]["code"] == "unauthorized"
        assert "access-control-allow-origin" not in r.headers


def test_own_page_gets_a_token_when_its_public_url_is_configured(index_dir: Path) -> None:
    """The internal demo page is served by the service itself: its origin needs no CORS entry,
    only CITEQA_PUBLIC_URL, never the request's own Host header."""
    own = "http://testserver"
    settings = fake_settings(index_dir.parent, api_keys=API_KEY, cors_origins=ALLOWED, public_url=own + "/")
    with make_client(settings) as c:
        wait_ready(c)
        r = c.post("/widget/token", headers={"Origin": own})
        assert r.status_code == 200 and r.json()["token"]
        token = r.json()["token"]
        r = c.post("/ask", json={"question": FIFA}, headers={"Origin": own, "Authorization": f"Bearer {token}"})
        assert r.status_code == 200


def test_a_forged_host_does_not_make_an_origin_the_services_own(keyed: TestClient) -> None:
    """Reproduction: Host: evil.example with Origin: http://evil.example got a token that /ask took."""
    r = keyed.post("/widget/token", headers={"Host": "evil.example", "Origin": "http://evil.example"})
    assert r.status_code == 401
    assert keyed.post("/widget/token", headers={"Origin": "http://testserver"}).status_code == 401


def test_widget_tokens_can_be_switched_off(index_dir: Path) -> None:
    settings = fake_settings(index_dir.parent, api_keys=API_KEY, cors_origins=ALLOWED, widget_tokens=False)
    with make_client(settings) as c:
        wait_ready(c)
        r = c.post("/widget/token", headers={"Origin": ALLOWED})
        assert r.status_code == 401 and "switched off" in r.json()["error"]["message"]


def test_the_token_endpoint_has_its_own_rate_limit(index_dir: Path) -> None:
    settings = fake_settings(index_dir.parent, api_keys=API_KEY, cors_origins=ALLOWED, token_rate_limit="3/minute")
    with make_client(settings) as c:
        wait_ready(c)
        codes = [c.post("/widget/token", headers={"Origin": FOREIGN}).status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]  # refused or not, every request is charged
        r = c.post("/widget/token", headers={"Origin": ALLOWED})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1


def test_with_keys_off_the_token_is_empty_and_no_header_is_needed(open_cors: TestClient) -> None:
    r = open_cors.post("/widget/token", headers={"Origin": ALLOWED})
    assert r.status_code == 200
    assert r.json() == {"token": "", "expires_in": 0}
    assert open_cors.post("/ask", json={"question": FIFA}, headers={"Origin": ALLOWED}).status_code == 200


# ------------------------------------------------------------------ CORS


def _preflight(c: TestClient, origin: str):  # type: ignore[no-untyped-def]
    return c.options(
        "/ask/stream",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )


def test_preflight_from_an_allowed_origin(keyed: TestClient) -> None:
    r = _preflight(keyed, ALLOWED)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ALLOWED
    allowed_headers = r.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers
    assert "POST" in r.headers["access-control-allow-methods"]


def test_preflight_from_a_foreign_origin_is_not_allowed(keyed: TestClient) -> None:
    r = _preflight(keyed, FOREIGN)
    assert "access-control-allow-origin" not in r.headers
    assert r.status_code >= 400


def test_cross_origin_stream_response_carries_cors_headers(open_cors: TestClient) -> None:
    with open_cors.stream("POST", "/ask/stream", json={"question": FIFA}, headers={"Origin": ALLOWED}) as s:
        assert s.status_code == 200
        assert s.headers["access-control-allow-origin"] == ALLOWED
        s.read()
    with open_cors.stream("POST", "/ask/stream", json={"question": FIFA}, headers={"Origin": FOREIGN}) as s:
        assert "access-control-allow-origin" not in s.headers
        s.read()
