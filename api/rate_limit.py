"""Token buckets in the API process: per API key or session, per client IP, and tighter
ones for logins (per IP and per username, so neither a single host nor a spread of hosts
guesses passwords fast).

In memory, per process: N API replicas allow N times the rate. Good enough to stop a
runaway script or a password guesser; a shared limit would need Redis or Postgres.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

# Buckets untouched this long are full again and are forgotten.
FORGET_AFTER_SECONDS = 120.0
PRUNE_EVERY = 10_000


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited; retry after {retry_after:.1f} s")
        # Whole seconds for the Retry-After header, never 0.
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._takes = 0

    def take(self, scope: str, key: str, *, per_minute: int) -> None:
        """Spend one token of ``key``'s bucket in ``scope``, or raise RateLimited. A bucket
        holds a minute's worth and refills continuously."""
        now = self._clock()
        rate = per_minute / 60.0
        bucket = self._buckets.get((scope, key))
        if bucket is None:
            bucket = self._buckets[(scope, key)] = _Bucket(float(per_minute), now)
        bucket.tokens = min(float(per_minute), bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens < 1.0:
            raise RateLimited((1.0 - bucket.tokens) / rate)
        bucket.tokens -= 1.0
        self._takes += 1
        if self._takes % PRUNE_EVERY == 0:
            self._prune(now)

    def _prune(self, now: float) -> None:
        stale = [k for k, b in self._buckets.items() if now - b.at > FORGET_AFTER_SECONDS]
        for key in stale:
            del self._buckets[key]
