"""Reconnect and retry delays that spread many clients out."""

from __future__ import annotations

import random


class Backoff:
    """Exponential backoff with equal jitter: delays grow 2× up to a cap, each drawn from
    [d/2, d], so many clients dropped together do not reconnect together."""

    def __init__(self, initial_s: float, maximum_s: float, rng: random.Random) -> None:
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self._rng = rng
        self.attempt = 0

    def next(self) -> float:
        ceiling = min(self.maximum_s, self.initial_s * 2**self.attempt)
        self.attempt += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0
