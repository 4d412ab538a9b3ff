"""Rate limits shared by every replica, kept in Redis (`CITEQA_REDIS_URL`) through the `limits` library.

The in-memory `RateLimiter` is per process: behind a load balancer N replicas let a client through
N times the limit. With `CITEQA_REDIS_URL` set, every replica charges the same Redis keys instead,
so the fleet enforces one budget. The call sites (`client_identity`, the widget token route) are
async, so this uses `limits.aio` over `redis.asyncio`: a Redis round trip never blocks the event loop.

The strategy is a moving window (exact: at most N hits in any window of the period, rejected hits
not recorded), not the in-memory token bucket; both let a full burst through and then say when the
next hit would be allowed. When Redis cannot be reached, `hit` raises `RateLimitUnavailable` (503,
typed body): the request is refused rather than let through unlimited or crashed into a 500.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import ConfigurationError, StorageError

from service.api.rate_limit import RateLimiter
from service.errors import RateLimitUnavailable
from service.settings import Settings, check_redis_url, parse_rate

log = logging.getLogger(__name__)

KEY_PREFIX = "citeqa"  # every key citeqa writes starts with "citeqa:", so a shared Redis stays readable
# A Redis that is down answers "connection refused" at once; one that is unreachable (dropped
# packets) must not hold a request for long either.
REDIS_TIMEOUT_SECONDS = 1.0


def redis_storage(url: str) -> RedisStorage:
    """An async Redis storage for `limits`, with errors wrapped in `StorageError` and short timeouts.

    Created inside the app's lifespan: redis.asyncio connections belong to the event loop that
    opened them."""
    try:
        return RedisStorage(
            f"async+{check_redis_url(url)}",
            wrap_exceptions=True,
            implementation="redispy",
            key_prefix=KEY_PREFIX,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
    except (ConfigurationError, ValueError) as exc:
        raise ValueError(f"CITEQA_REDIS_URL is not usable: {exc}") from exc


class SharedRateLimiter:
    """Same contract as `RateLimiter.hit` (None if allowed, else seconds to wait for Retry-After),
    but async and kept in Redis under `citeqa:LIMITER/<name>/<client>/...`. `name` keeps the
    budgets apart: the /ask limit and the widget token limit never charge each other's keys."""

    def __init__(self, rate: str, storage: RedisStorage, name: str) -> None:
        capacity, period = parse_rate(rate)
        self.rate = rate
        self.name = name
        self.item = RateLimitItemPerSecond(capacity, multiples=math.ceil(period))
        self.storage = storage
        self.strategy = MovingWindowRateLimiter(storage)

    async def hit(self, client: str) -> int | None:
        try:
            if await self.strategy.hit(self.item, self.name, client):
                return None
            stats = await self.strategy.get_window_stats(self.item, self.name, client)
        except (StorageError, OSError) as exc:
            cause = getattr(exc, "storage_error", exc)
            log.error("rate limit store unreachable (%s limit): %s: %s", self.name, type(cause).__name__, cause)
            raise RateLimitUnavailable(
                "the shared rate limit store (CITEQA_REDIS_URL) cannot be reached; retry shortly",
                retry_after=5,
            ) from exc
        return max(1, math.ceil(stats.reset_time - time.time()))


Limiter = RateLimiter | SharedRateLimiter


async def charge(limiter: Limiter, client: str) -> int | None:
    """Take one hit from either kind of limiter: the seconds to wait, or None if allowed."""
    if isinstance(limiter, SharedRateLimiter):
        return await limiter.hit(client)
    return limiter.hit(client)


def make_limiters(settings: Settings) -> tuple[Limiter | None, Limiter | None]:
    """The /ask limiter and the widget token limiter: in memory per process, or shared in Redis
    when `CITEQA_REDIS_URL` is set. None for a limit left empty."""
    if settings.redis_url is None:
        return (
            RateLimiter(settings.rate_limit) if settings.rate_limit else None,
            RateLimiter(settings.token_rate_limit) if settings.token_rate_limit else None,
        )
    storage = redis_storage(settings.redis_url)
    return (
        SharedRateLimiter(settings.rate_limit, storage, "ask") if settings.rate_limit else None,
        SharedRateLimiter(settings.token_rate_limit, storage, "widget-token") if settings.token_rate_limit else None,
    )


async def check_store(limiters: tuple[Limiter | None, ...]) -> None:
    """Log at start-up whether the shared store answers. Not fatal: Redis may come up after the
    replica does, and until it does the limited routes answer 503 instead of going unlimited."""
    for limiter in limiters:
        if isinstance(limiter, SharedRateLimiter):
            try:
                ok = await limiter.storage.check()
            except Exception as exc:
                ok = False
                log.debug("redis check failed: %s", exc)
            if ok:
                log.info("rate limits are shared through Redis")
            else:
                log.error(
                    "rate limit store (CITEQA_REDIS_URL) does not answer: limited routes answer 503 until it does"
                )
            return


async def close_store(limiters: tuple[Limiter | None, ...]) -> None:
    """Close the Redis connection pool at shutdown (best effort: `limits` has no public close)."""
    for limiter in limiters:
        if isinstance(limiter, SharedRateLimiter):
            client = getattr(limiter.storage.bridge, "storage", None)
            try:
                if client is not None:
                    await client.aclose()
            except Exception as exc:  # closing is tidiness; shutdown goes on
                log.debug("closing the redis client failed: %s", exc)
            return
