"""Input checks shared by the metric functions.

Every public metric validates what it is given and raises ``ValueError`` naming the argument
and the problem: a silently wrong score is worse than an error. The checks are vectorised so
that they cost microseconds, because the bootstrap calls the metrics thousands of times.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np


def as_labels(values: object, name: str, *, upper: int | None = None, what: str = "") -> np.ndarray:
    """A non-empty 1-D int64 array of class indices in ``[0, upper)`` (no upper bound if None).

    Integral floats (``2.0``) are accepted because label columns read from CSV often are
    floats; anything else (NaN, 2.5, negative, booleans) is refused.
    """
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: a metric needs at least one sample")
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError(f"{name} holds NaN or infinite values")
        if (array != np.round(array)).any():
            raise ValueError(f"{name} holds non-integer values; class indices must be whole numbers")
    labels = array.astype(np.int64, copy=False)
    low = labels.min()
    if low < 0:
        raise ValueError(f"{name} holds a negative class index ({low})")
    if upper is not None:
        high = labels.max()
        if high >= upper:
            raise ValueError(f"{name} holds class index {high}, outside [0, {upper}){what}")
    return labels


def same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_a} and {name_b} must have the same number of samples, got {a.shape[0]} and {b.shape[0]}")


def as_n_classes(n_classes: object) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    return int(n_classes)


def as_proba(values: object, name: str = "proba") -> np.ndarray:
    """A non-empty (n, k) float64 array of probabilities in [0, 1], k >= 2.

    Rows are not required to sum to 1: a task scored on a subset of a submission's classes
    passes the task's columns only. The harness checks sums on the submission itself.
    """
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n_samples, n_classes) array, got shape {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty: a metric needs at least one sample")
    if array.shape[1] < 2:
        raise ValueError(f"{name} must have at least two class columns, got {array.shape[1]}")
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must hold numbers, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    if array.min() < 0.0 or array.max() > 1.0:
        raise ValueError(f"{name} holds values outside [0, 1] (min {array.min():.6g}, max {array.max():.6g})")
    return array


def as_mask(values: object, name: str) -> np.ndarray:
    """A 2-D boolean mask from a bool array or a numeric array holding only 0 and 1."""
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (height, width) mask, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} has an empty shape {array.shape}")
    if array.dtype == bool:
        return array
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{name} must be a boolean or 0/1 numeric mask, got dtype {array.dtype}")
    foreground = array == 1
    if not (foreground | (array == 0)).all():
        bad = array[~(foreground | (array == 0))]
        raise ValueError(
            f"{name} must hold only 0 and 1 (or booleans), found {bad.size} other value(s), e.g. {bad.flat[0]!r}"
            + ("; a 0/255 PNG mask must be divided by 255 first" if (bad == 255).any() else "")
        )
    return foreground


def same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape (masks are compared at the reference's native "
            f"resolution, never resized), got {a.shape} and {b.shape}"
        )


def as_positive(value: object, name: str) -> float:
    """A finite, strictly positive real number (a pixel size, a head circumference)."""
    if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)):
        array = np.asarray(value)
        if array.ndim == 0 and np.issubdtype(array.dtype, np.number) and array.dtype != bool:
            value = array.item()
        else:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return number
