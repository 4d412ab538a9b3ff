"""Rate limits shared through a REAL Redis (`CITEQA_REDIS_URL`): two app instances, as two replicas
would be, charge one budget; the /ask and widget token budgets stay apart; Redis going away turns
the limited routes into a typed 503 while the process keeps serving. Each test starts its own
`redis-server` (Debian package) on a free loopback port, with no persistence, in a temp dir."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from pydantic import ValidationError

from service.api.rate_limit import RateLimiter
from service.api.shared_rate_limit import SharedRateLimiter, make_limiters
from service.settings import Settings
from service.testing import FakeLLM, fake_settings
from tests.api.test_auth import QUESTION, assert_typed_error
from tests.conftest import make_client, wait_ready

REDIS_SERVER = shutil.which("redis-server")
needs_redis = pytest.mark.skipif(
    REDIS_SERVER is None, reason="redis-server is not installed (Debian: apt-get install -y redis-server)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    """One redis-server process; `stop` and `start` again on the same port to simulate an outage."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    return
            except redis.exceptions.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"redis-server did not start: {(self.workdir / 'redis.log').read_text()}"
                    ) from None
                time.sleep(0.02)
            finally:
                client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def keys(self) -> list[str]:
        client = redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)
        try:
            return sorted(str(k) for k in client.scan_iter("*"))
        finally:
            client.close()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install -y redis-server)")
    server = RedisServer(free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def shared_settings(index_dir: Path, url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"api_keys": "k1", "rate_limit": "3/minute", "redis_url": url, **overrides}
    return fake_settings(index_dir.parent, **values)


KEY = {"Authorization": "Bearer k1"}


@needs_redis
def test_two_app_instances_share_one_budget(index_dir: Path, redis_server: RedisServer) -> None:
    settings = shared_settings(index_dir, redis_server.url)
    with make_client(settings, FakeLLM()) as a, make_client(settings, FakeLLM()) as b:
        wait_ready(a)
        wait_ready(b)
        assert a.post("/ask", json=QUESTION, headers=KEY).status_code == 200
        assert a.post("/ask", json=QUESTION, headers=KEY).status_code == 200
        assert b.post("/ask", json=QUESTION, headers=KEY).status_code == 200
        for client in (a, b):  # the 4th, on either replica, is over the shared 3/minute
            r = client.post("/ask", json=QUESTION, headers=KEY)
            error = assert_typed_error(r, 429, "rate_limited")
            assert "3/minute" in error["message"]
            assert 1 <= int(r.headers["retry-after"]) <= 60
    keys = redis_server.keys()
    assert keys and all(k.startswith("citeqa:") for k in keys), keys
    assert any("/ask/" in k for k in keys), keys


@needs_redis
def test_ask_and_widget_token_budgets_do_not_mix(index_dir: Path, redis_server: RedisServer) -> None:
    # Without API keys the token route answers an empty token: enough to count its hits.
    settings = fake_settings(
        index_dir.parent, rate_limit="2/minute", token_rate_limit="2/minute", redis_url=redis_server.url
    )
    with make_client(settings, FakeLLM()) as a, make_client(settings, FakeLLM()) as b:
        wait_ready(a)
        wait_ready(b)
        assert [a.post("/ask", json=QUESTION).status_code, b.post("/ask", json=QUESTION).status_code] == [200, 200]
        assert a.post("/ask", json=QUESTION).status_code == 429
        # The same client address, the other limiter: its budget is untouched by /ask.
        tokens = [c.post("/widget/token").status_code for c in (b, a, b)]
        assert tokens == [200, 200, 429]
    keys = redis_server.keys()
    assert any("/ask/" in k for k in keys) and any("/widget-token/" in k for k in keys), keys


def test_without_redis_url_each_process_keeps_its_own_buckets(index_dir: Path) -> None:
    settings = fake_settings(index_dir.parent, api_keys="k1", rate_limit="2/minute")
    ask, token = make_limiters(settings)
    assert isinstance(ask, RateLimiter) and isinstance(token, RateLimiter)
    with make_client(settings, FakeLLM()) as a, make_client(settings, FakeLLM()) as b:
        wait_ready(a)
        wait_ready(b)
        statuses = [c.post("/ask", json=QUESTION, headers=KEY).status_code for c in (a, a, a, b, b, b)]
    assert statuses == [200, 200, 429, 200, 200, 429]


def test_make_limiters_with_redis_url_builds_shared_limiters(index_dir: Path) -> None:
    settings = fake_settings(index_dir.parent, rate_limit="5/10s", redis_url="redis://127.0.0.1:1/0")
    ask, token = make_limiters(settings)
    assert isinstance(ask, SharedRateLimiter) and isinstance(token, SharedRateLimiter)
    assert (ask.name, token.name) == ("ask", "widget-token")
    assert (ask.item.amount, ask.item.get_expiry()) == (5, 10)
    assert fake_settings(index_dir.parent, redis_url="  ").redis_url is None


@pytest.mark.parametrize(
    "url", ["localhost:6379", "http://127.0.0.1:6379/0", "redis://", "redis://host:notaport/0", "6379"]
)
def test_an_invalid_redis_url_fails_at_start_up_naming_the_setting(url: str) -> None:
    with pytest.raises(ValidationError, match="redis_url"):
        Settings(redis_url=url, _env_file=None)  # type: ignore[call-arg]


@needs_redis
def test_redis_stopped_mid_way_is_a_typed_503_and_the_process_keeps_serving(
    index_dir: Path, redis_server: RedisServer
) -> None:
    settings = shared_settings(index_dir, redis_server.url, rate_limit="100/minute")
    with make_client(settings, FakeLLM()) as c:
        wait_ready(c)
        assert c.post("/ask", json=QUESTION, headers=KEY).status_code == 200
        redis_server.stop()
        for path in ("/ask", "/ask/stream"):
            started = time.monotonic()
            r = c.post(path, json=QUESTION, headers=KEY)
            assert time.monotonic() - started < 5, "a Redis that is down must not hold the request"
            error = assert_typed_error(r, 503, "rate_limit_unavailable")
            assert "CITEQA_REDIS_URL" in error["message"]
            assert int(r.headers["retry-after"]) >= 1
        assert_typed_error(c.post("/widget/token"), 503, "rate_limit_unavailable")
        health = c.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert c.get("/ready").status_code == 200
        assert c.post("/ask", json=QUESTION).status_code == 401  # refused before the limiter, as before
        redis_server.start()  # back on the same port: the next request reconnects
        assert c.post("/ask", json=QUESTION, headers=KEY).status_code == 200


def test_redis_down_at_start_up_does_not_stop_the_app(index_dir: Path) -> None:
    settings = shared_settings(index_dir, f"redis://127.0.0.1:{free_port()}/0")
    with make_client(settings, FakeLLM()) as c:
        wait_ready(c)
        assert c.get("/health").status_code == 200
        assert_typed_error(c.post("/ask", json=QUESTION, headers=KEY), 503, "rate_limit_unavailable")
