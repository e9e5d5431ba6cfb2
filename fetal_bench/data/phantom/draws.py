"""Random draws: only ``Generator.random()`` (see the package docstring), so pixels never depend on
how numpy implements a distribution."""

from __future__ import annotations

import numpy as np



def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(rng.random())


def _pick(rng: np.random.Generator, n: int) -> int:
    return min(int(float(rng.random()) * n), n - 1)


def _chance(rng: np.random.Generator, p: float) -> bool:
    return float(rng.random()) < p


def _rotation(rng: np.random.Generator, max_half_tan: float) -> tuple[float, float, float]:
    """(cos, sin, tau) of a random angle 2*atan(tau), |tau| <= max_half_tan, without trig.

    The rational parametrisation cos = (1 - t^2)/(1 + t^2), sin = 2t/(1 + t^2) is exact
    arithmetic, so rotated shapes land on the same pixels everywhere.
    """
    tau = _uniform(rng, -max_half_tan, max_half_tan)
    d = 1.0 + tau * tau
    return (1.0 - tau * tau) / d, 2.0 * tau / d, tau


def _direction(rng: np.random.Generator) -> tuple[float, float]:
    """A random unit vector, any direction."""
    c, s, _ = _rotation(rng, 1.0)
    return (-c, -s) if _chance(rng, 0.5) else (c, s)


def _noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Zero-mean noise in [-1, 1] with a triangular density (sum of two uniforms)."""
    return rng.random(shape) + rng.random(shape) - 1.0
