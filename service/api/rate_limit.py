"""Per-client token-bucket rate limiting (`CITEQA_RATE_LIMIT`, e.g. `3/minute`), in memory.

In memory is per replica: behind a load balancer each replica enforces the limit on its own share.
`CITEQA_REDIS_URL` swaps this for `service.api.shared_rate_limit.SharedRateLimiter`, one budget
kept in Redis for every replica (docs/scaling.md)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict

from service.settings import parse_rate


class RateLimiter:
    def __init__(self, rate: str, max_clients: int = 100_000) -> None:
        self.capacity, self.period = parse_rate(rate)
        self.refill = self.capacity / self.period  # tokens per second
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_clients = max_clients

    def hit(self, client: str, now: float | None = None) -> int | None:
        """Take one token; return None if allowed, else the seconds to wait (for Retry-After)."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(client, (float(self.capacity), now))
        tokens = min(float(self.capacity), tokens + (now - last) * self.refill)
        if tokens >= 1.0:
            self._buckets[client] = (tokens - 1.0, now)
            wait = None
        else:
            self._buckets[client] = (tokens, now)
            wait = max(1, math.ceil((1.0 - tokens) / self.refill))
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)  # forget the least recently seen client
        return wait
