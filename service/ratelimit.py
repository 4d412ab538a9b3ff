"""Per-client token-bucket rate limiting (`CITEQA_RATE_LIMIT`, e.g. `3/minute`), in memory.

In memory is per replica: behind a load balancer each replica enforces the limit on its own share
(docs/scaling.md says how to move the buckets to a shared store)."""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict

_UNITS = {
    "second": 1,
    "sec": 1,
    "s": 1,
    "minute": 60,
    "min": 60,
    "m": 60,
    "hour": 3600,
    "h": 3600,
    "day": 86400,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")


def parse_rate(text: str) -> tuple[int, float]:
    """'3/minute' -> (3, 60.0); '10/5s' -> (10, 5.0)."""
    match = _RATE.match(text.lower())
    if not match or match.group(3) not in _UNITS or int(match.group(1)) < 1:
        raise ValueError(f"rate limit {text!r} must look like '3/minute', '10/second' or '100/hour'")
    return int(match.group(1)), float(_UNITS[match.group(3)] * int(match.group(2) or 1))


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
