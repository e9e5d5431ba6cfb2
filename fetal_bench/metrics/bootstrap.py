"""Seeded percentile bootstrap intervals, resampling whole clusters (patients, subjects).

Images of one patient are correlated; resampling single images would make intervals too
narrow. With ``clusters`` given, a resample draws as many clusters as there are, with
replacement, and takes every row of each drawn cluster (a cluster drawn twice contributes its
rows twice). Without ``clusters`` each sample is its own cluster.

Both functions draw the same cluster indices for the same (seed, number of clusters,
n_resamples), so :func:`bootstrap_mean_ci` is a fast path of :func:`bootstrap_ci` for means:
they give the same interval up to floating-point rounding.

Intervals (``method``):

- ``percentile``: the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles
  (``numpy.quantile``, linear interpolation) of the resampled statistics.
- ``bias_shifted``: the same quantiles after shifting every replicate by the bootstrap estimate
  of bias, ``mean(replicates) - estimate`` (Efron & Tibshirani, *An Introduction to the
  Bootstrap*, 1993, ch. 10, estimate bias this way). For a statistic that resampling inflates
  (ECE), the percentile interval can lie wholly above the estimate it is meant to describe; the
  shifted interval is centred where the estimate is, and holds it whenever the replicates' mean
  lies within their own central interval. BCa is no remedy here: with every replicate above the
  estimate its bias correction is infinite.

:func:`bootstrap_replicates` draws the same resamples for several statistics at once (paired
replicates), which is what comparing two submissions on the same images needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np

__all__ = ["INTERVAL_METHODS", "MAX_SKIPPED_FRACTION", "bootstrap_ci", "bootstrap_mean_ci", "bootstrap_replicates",
           "interval_from_replicates"]

# A resample on which the statistic is not computable (None/NaN, e.g. an AUC on a resample with
# one class) is skipped; beyond this fraction the interval would describe a biased subset of
# resamples, so none is reported.
MAX_SKIPPED_FRACTION = 0.10

# Cluster draws are generated in blocks of at most this many indices, bounding memory for large
# sets while keeping the random stream identical between the generic and the fast path.
_BLOCK_ELEMENTS = 1 << 22

INTERVAL_METHODS = ("percentile", "bias_shifted")


def _check_resamples(n_resamples: object) -> int:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    return int(n_resamples)


def _check_settings(n_resamples: object, confidence: object) -> tuple[int, float]:
    n_resamples = _check_resamples(n_resamples)
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.floating)) \
            or not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be a number strictly between 0 and 1, got {confidence!r}")
    return int(n_resamples), float(confidence)


def _cluster_codes(clusters: Sequence | np.ndarray | None, n: int) -> np.ndarray:
    """Cluster index (0..G-1) of each sample, clusters numbered in sorted key order.

    Sorted (not first-seen) order makes the interval independent of the row order.
    """
    if clusters is None:
        return np.arange(n)
    keys = clusters.tolist() if isinstance(clusters, np.ndarray) else list(clusters)
    if len(keys) != n:
        raise ValueError(f"clusters must give one key per sample: got {len(keys)} keys for {n} samples")
    for key in keys:
        if key is None or (isinstance(key, float) and math.isnan(key)):
            raise ValueError("clusters holds a missing key (None or NaN): every sample needs a patient/subject id")
    try:
        unique = sorted(set(keys), key=lambda key: (type(key).__name__, key))
    except TypeError as error:
        raise ValueError(f"cluster keys must be hashable and comparable (str or int ids): {error}") from None
    index = {key: i for i, key in enumerate(unique)}
    return np.fromiter((index[key] for key in keys), dtype=np.int64, count=n)


def _draw_blocks(rng: np.random.Generator, n_clusters: int, n_resamples: int) -> Iterator[np.ndarray]:
    """Blocks of resamples, each row the cluster indices drawn for one resample."""
    per_block = max(1, _BLOCK_ELEMENTS // n_clusters)
    for start in range(0, n_resamples, per_block):
        yield rng.integers(0, n_clusters, size=(min(per_block, n_resamples - start), n_clusters))


def interval_from_replicates(replicates: np.ndarray, confidence: float = 0.95, *, method: str = "percentile",
                             estimate: float | None = None) -> tuple[float, float]:
    """The interval of ``method`` (see the module text) from finite bootstrap ``replicates``.

    ``estimate`` (the statistic on the whole data) is needed by ``bias_shifted``.
    """
    if method not in INTERVAL_METHODS:
        raise ValueError(f"method must be one of {INTERVAL_METHODS}, got {method!r}")
    tail = (1.0 - confidence) / 2.0
    values = np.asarray(replicates, dtype=np.float64)
    if method == "bias_shifted":
        if estimate is None:
            raise ValueError("the bias_shifted interval needs the estimate")
        values = values - (values.mean() - float(estimate))
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


def _interval(statistics: np.ndarray, confidence: float) -> tuple[float, float]:
    return interval_from_replicates(statistics, confidence)


def _row_resamples(codes: np.ndarray, n_clusters: int, n_resamples: int, seed: int,
                   trivial: bool) -> Iterator[np.ndarray]:
    """Row indices of each resample: whole clusters drawn with replacement (see the module text)."""
    if not trivial:
        # Rows grouped by cluster: cluster g owns order[starts[g] : starts[g] + sizes[g]].
        order = np.argsort(codes, kind="stable")
        sizes = np.bincount(codes, minlength=n_clusters)
        starts = np.cumsum(sizes) - sizes
    rng = np.random.default_rng(seed)
    for block in _draw_blocks(rng, n_clusters, n_resamples):
        for drawn in block:
            if trivial:
                yield drawn
                continue
            lengths = sizes[drawn]
            # Concatenate the drawn clusters' row ranges without a Python loop.
            shift = np.repeat(starts[drawn] - (np.cumsum(lengths) - lengths), lengths)
            yield order[np.arange(lengths.sum()) + shift]


def _check_n(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return int(n)


def bootstrap_replicates(
    statistics: Sequence[Callable[[np.ndarray], float | None]],
    n: int,
    *,
    clusters: Sequence | np.ndarray | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """Each statistic on the same cluster resamples: an array of shape ``(len(statistics), n_resamples)``.

    Paired: resample ``b`` is the same rows for every statistic, so row differences compare two
    submissions on identical images. A statistic that is not computable on a resample gives NaN
    there. The resamples are those :func:`bootstrap_ci` draws for the same ``seed``. With fewer
    than two clusters there is nothing to resample: every replicate is NaN.
    """
    if any(not callable(statistic) for statistic in statistics):
        raise ValueError("statistics must be callables taking an index array")
    n = _check_n(n)
    n_resamples = _check_resamples(n_resamples)
    codes = _cluster_codes(clusters, n)
    n_clusters = int(codes.max()) + 1
    out = np.full((len(statistics), n_resamples), np.nan)
    if n_clusters < 2:
        return out
    for b, rows in enumerate(_row_resamples(codes, n_clusters, n_resamples, seed, clusters is None)):
        for i, statistic in enumerate(statistics):
            value = statistic(rows)
            if value is not None and math.isfinite(float(value)):
                out[i, b] = float(value)
    return out


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float | None],
    n: int,
    *,
    clusters: Sequence | np.ndarray | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    method: str = "percentile",
    estimate: float | None = None,
) -> tuple[float | None, float | None]:
    """Bootstrap interval of ``statistic`` over ``n`` samples (``method``: see the module text).

    ``statistic(rows)`` receives an int array of row indices into the n samples (with repeats)
    and returns the score on those rows, or None (or NaN) when it is not computable there.
    Resamples are drawn with ``numpy.random.default_rng(seed)`` (deterministic per seed).
    ``estimate``: the statistic on all rows, for ``bias_shifted`` (computed when not given).

    Returns ``(None, None)`` when there are fewer than two clusters (every resample would be the
    data itself, a zero-width interval that claims false certainty) or when more than
    :data:`MAX_SKIPPED_FRACTION` of the resamples were not computable.
    """
    if not callable(statistic):
        raise ValueError("statistic must be a callable taking an index array")
    n = _check_n(n)
    n_resamples, confidence = _check_settings(n_resamples, confidence)
    if method not in INTERVAL_METHODS:
        raise ValueError(f"method must be one of {INTERVAL_METHODS}, got {method!r}")
    # With fewer than two clusters every replicate is NaN, so the interval is (None, None) below.
    replicates = bootstrap_replicates([statistic], n, clusters=clusters, n_resamples=n_resamples, seed=seed)[0]
    finite = replicates[np.isfinite(replicates)]
    if n_resamples - finite.size > MAX_SKIPPED_FRACTION * n_resamples:
        return None, None
    if method == "bias_shifted" and estimate is None:
        estimate = statistic(np.arange(n))
        if estimate is None or not math.isfinite(float(estimate)):
            return None, None
    return interval_from_replicates(finite, confidence, method=method, estimate=estimate)


def bootstrap_mean_ci(
    values: np.ndarray | Sequence[float],
    *,
    clusters: Sequence | np.ndarray | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of the mean of per-sample values (Dice, HD95, ...).

    The same resamples as :func:`bootstrap_ci` with ``statistic = lambda rows: values[rows].mean()``,
    computed from per-cluster sums and counts: a resample's mean is
    ``sum(cluster sums drawn) / sum(cluster sizes drawn)``, i.e. the mean over all the rows it
    holds (not a mean of cluster means). ``(None, None)`` with fewer than two clusters.
    """
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array, got shape {array.shape}")
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"values must be numbers, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    if not np.isfinite(array).all():
        raise ValueError("values holds NaN or infinite values")
    n_resamples, confidence = _check_settings(n_resamples, confidence)
    codes = _cluster_codes(clusters, array.size)
    n_clusters = int(codes.max()) + 1
    if n_clusters < 2:
        return None, None
    sums = np.bincount(codes, weights=array, minlength=n_clusters)
    sizes = np.bincount(codes, minlength=n_clusters).astype(np.float64)
    rng = np.random.default_rng(seed)
    means = np.concatenate(
        [sums[block].sum(axis=1) / sizes[block].sum(axis=1) for block in _draw_blocks(rng, n_clusters, n_resamples)]
    )
    return _interval(means, confidence)
