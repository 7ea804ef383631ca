"""Bounded exponential backoff with jitter: a device that cannot reach its service neither crash-loops
nor hot-loops, and a fleet that lost its service does not come back in lockstep (Azure/iotedge#5888)."""

from __future__ import annotations

import random
from dataclasses import dataclass

DEFAULT_INITIAL = 2.0
DEFAULT_MAXIMUM = 300.0


@dataclass(frozen=True, slots=True)
class BackoffSettings:
    initial: float = DEFAULT_INITIAL
    maximum: float = DEFAULT_MAXIMUM

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")


class Backoff:
    """Delays that double from ``initial`` up to ``maximum``, each drawn from its upper half."""

    def __init__(self, settings: BackoffSettings, rng: random.Random | None = None) -> None:
        self._settings = settings
        self._rng = rng or random.Random()
        self.failures = 0

    def next_delay(self) -> float:
        ceiling = min(self._settings.maximum, self._settings.initial * 2.0**self.failures)
        self.failures += 1
        # Half fixed, half random: never shorter than half the step, so the loop cannot spin.
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.failures = 0
