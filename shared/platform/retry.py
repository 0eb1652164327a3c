"""Exponential backoff with full jitter, so replicas that failed together retry apart."""

from __future__ import annotations

import random
from collections.abc import Iterator


def backoff_delays(base: float = 0.2, cap: float = 30.0, rng: random.Random | None = None) -> Iterator[float]:
    """Endless delays: attempt n waits a random time in [0, min(cap, base * 2**n)]."""
    rand = rng or random.Random()
    attempt = 0
    while True:
        ceiling = min(cap, base * (2 ** min(attempt, 30)))
        # Never zero: a tight loop against a dead server helps nobody.
        yield max(base / 4, rand.uniform(0, ceiling))
        attempt += 1
