"""Time, behind a small protocol so tests and simulations can choose it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Protocol

NEVER = "0001-01-01T00:00:00Z"


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


def iso(timestamp: float) -> str:
    """UTC ISO-8601 with milliseconds and ``Z``, the form the cloud's APIs use."""
    seconds = int(timestamp // 1)
    return f"{_iso_seconds(seconds)}.{int((timestamp - seconds) * 1000):03d}Z"


@lru_cache(maxsize=64)  # every registration formats "now": the date part changes once a second
def _iso_seconds(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
