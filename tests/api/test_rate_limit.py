"""Unit tests of service/api/rate_limit.py: the rate parser and the token bucket, driven by the `now`
parameter (no sleeps)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.api.rate_limit import RateLimiter, parse_rate
from service.settings import Settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3/minute", (3, 60.0)),
        ("10/second", (10, 1.0)),
        ("100/hour", (100, 3600.0)),
        ("1000/day", (1000, 86400.0)),
        ("10/5s", (10, 5.0)),
        ("5/10min", (5, 600.0)),
        ("2/h", (2, 3600.0)),
        ("  7 / Minute ", (7, 60.0)),
        ("1/sec", (1, 1.0)),
        ("4/m", (4, 60.0)),
    ],
)
def test_parse_rate_accepts(text: str, expected: tuple[int, float]) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "3",
        "3/",
        "/minute",
        "0/minute",
        "-1/minute",
        "3/fortnight",
        "three/minute",
        "3.5/minute",
        "3 per minute",
        "3/minute/2",
        "3/-5s",
    ],
)
def test_parse_rate_rejects_with_a_helpful_message(text: str) -> None:
    with pytest.raises(ValueError, match="must look like"):
        parse_rate(text)


def test_bad_rate_limit_setting_fails_at_start_up() -> None:
    with pytest.raises(ValidationError, match="rate limit"):
        Settings(rate_limit="3/fortnight", _env_file=None)  # type: ignore[call-arg]
    assert Settings(rate_limit="", _env_file=None).rate_limit is None  # type: ignore[call-arg]
    assert Settings(rate_limit="3/minute", _env_file=None).rate_limit == "3/minute"  # type: ignore[call-arg]


def test_bucket_allows_a_burst_of_capacity_then_says_how_long_to_wait() -> None:
    limiter = RateLimiter("3/minute")
    assert [limiter.hit("a", now=0.0) for _ in range(3)] == [None, None, None]
    # One token refills every 20 s; the bucket is empty, so the wait is a whole 20 s.
    assert limiter.hit("a", now=0.0) == 20
    assert limiter.hit("a", now=5.0) == 15
    assert limiter.hit("a", now=19.5) == 1  # rounded up, never 0
    assert limiter.hit("a", now=20.0) is None
    assert limiter.hit("a", now=20.0) == 20


def test_rejected_hits_do_not_spend_tokens() -> None:
    limiter = RateLimiter("1/10s")
    assert limiter.hit("a", now=0.0) is None
    for t in (1.0, 2.0, 3.0, 9.0):
        assert limiter.hit("a", now=t) is not None
    assert limiter.hit("a", now=10.0) is None


def test_bucket_refills_continuously_but_never_above_capacity() -> None:
    limiter = RateLimiter("3/minute")
    for _ in range(3):
        assert limiter.hit("a", now=0.0) is None
    assert limiter.hit("a", now=40.0) is None  # 2 tokens back after 40 s
    assert limiter.hit("a", now=40.0) is None
    assert limiter.hit("a", now=40.0) == 20
    # After an hour idle the bucket holds 3 tokens, not 180.
    assert [limiter.hit("a", now=3640.0) for _ in range(4)] == [None, None, None, 20]


def test_clients_have_separate_buckets() -> None:
    limiter = RateLimiter("2/minute")
    assert [limiter.hit("a", now=0.0) for _ in range(3)] == [None, None, 30]
    assert [limiter.hit("b", now=0.0) for _ in range(3)] == [None, None, 30]


def test_retry_after_is_at_least_one_second_for_fast_rates() -> None:
    limiter = RateLimiter("100/second")
    for _ in range(100):
        assert limiter.hit("a", now=0.0) is None
    assert limiter.hit("a", now=0.0) == 1
    assert limiter.hit("a", now=0.01) is None


def test_least_recently_seen_clients_are_forgotten_past_max_clients() -> None:
    limiter = RateLimiter("1/minute", max_clients=2)
    assert limiter.hit("a", now=0.0) is None
    assert limiter.hit("b", now=0.0) is None
    assert limiter.hit("a", now=1.0) is not None  # a is now the most recently seen
    assert limiter.hit("c", now=2.0) is None  # evicts b
    assert len(limiter._buckets) == 2
    assert limiter.hit("b", now=3.0) is None  # b starts over with a full bucket
    assert limiter.hit("c", now=3.0) is not None  # c is still remembered... until evicted
