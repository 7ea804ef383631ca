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


@lru_cache(maxsize=256)  # one registration formats the same instant four times
def iso(timestamp: float) -> str:
    """UTC ISO-8601 with milliseconds and ``Z``, the form the cloud's APIs use."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
