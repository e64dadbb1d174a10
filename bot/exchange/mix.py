"""Deterministic pseudo-randomness keyed by integers.

Everything the local exchange invents (intra-bar paths, book sizes, fault decisions) is a pure
function of the seed and *where* it is used (symbol, bar, update, message index), never of a
stateful generator: two servers with one seed agree message for message, whatever order their
clients ask in. SplitMix64's finaliser is the mixer; the NumPy version gives the same numbers
element-wise, for whole order-book sides at once.
"""

from __future__ import annotations

import numpy as np

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB


def _fmix(z: int) -> int:
    z = (z + _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * _M1) & _MASK
    z = ((z ^ (z >> 27)) * _M2) & _MASK
    return z ^ (z >> 31)


def mix(*parts: int) -> int:
    """A 64-bit hash of a sequence of integers (negative ones as two's complement)."""
    h = 0
    for part in parts:
        h = _fmix(h ^ (part & _MASK))
    return h


def uniform(*parts: int) -> float:
    """A number in [0, 1) determined by ``parts``."""
    return (mix(*parts) >> 11) / float(1 << 53)


def mix_array(*parts: int | np.ndarray) -> np.ndarray:
    """:func:`mix` element-wise over broadcast integer arrays (uint64 result)."""
    h = np.zeros(np.broadcast_shapes(*(np.shape(p) for p in parts)), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for part in parts:
            z = h ^ np.asarray(part).astype(np.int64).astype(np.uint64)
            z = z + np.uint64(_GOLDEN)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(_M1)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(_M2)
            h = z ^ (z >> np.uint64(31))
    return h
