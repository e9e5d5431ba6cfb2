"""The compiled nearest-pixel search behind HD95/ASSD against a brute-force answer."""

from __future__ import annotations

import numpy as np
import pytest

from fetal_bench.metrics._nearest import nearest_distances


def _brute_force(query, target, row_mm, col_mm):
    d_rows = (query[:, None, 0] - target[None, :, 0]) * row_mm
    d_cols = (query[:, None, 1] - target[None, :, 1]) * col_mm
    return np.sqrt(d_rows ** 2 + d_cols ** 2).min(axis=1)


def _row_major(points):
    return points[np.lexsort((points[:, 1], points[:, 0]))]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.1, 0.1), (0.5, 2.0), (2.0, 0.07)])
def test_equals_brute_force_on_scattered_pixels(seed, spacing):
    rng = np.random.default_rng(seed)
    target = _row_major(np.unique(rng.integers(0, 60, size=(rng.integers(1, 200), 2)), axis=0))
    # queries inside, beside and far outside the target's rows and columns
    query = rng.integers(-80, 140, size=(300, 2))
    got = nearest_distances(query[:, 0], query[:, 1], target[:, 0], target[:, 1], *spacing)
    np.testing.assert_allclose(got, _brute_force(query, target, *spacing), rtol=1e-12, atol=1e-12)


def test_one_target_row_one_target_pixel_and_the_query_on_it():
    row = np.array([[5, 3], [5, 9], [5, 20]])
    query = np.array([[5, 9], [0, 0], [40, 15], [5, 14]])
    got = nearest_distances(query[:, 0], query[:, 1], row[:, 0], row[:, 1], 1.0, 1.0)
    np.testing.assert_allclose(got, [0.0, np.hypot(5, 3), np.hypot(35, 5), 5.0])
    single = nearest_distances(query[:, 0], query[:, 1], row[:1, 0], row[:1, 1], 0.5, 0.25)
    np.testing.assert_allclose(single, _brute_force(query, row[:1], 0.5, 0.25))


def test_a_contour_pair_as_the_metrics_see_it():
    """Boundary pixels of two ellipses (the metric's case): the target has 2+ pixels per row."""
    rows, cols = np.mgrid[0:120, 0:160]
    inside_a = ((rows - 60) / 40.0) ** 2 + ((cols - 80) / 55.0) ** 2 <= 1
    inside_b = ((rows - 64) / 44.0) ** 2 + ((cols - 75) / 50.0) ** 2 <= 1

    def boundary(mask):
        padded = np.pad(mask, 1)
        interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:] & mask
        return np.argwhere(mask & ~interior)  # row-major

    a, b = boundary(inside_a), boundary(inside_b)
    got = nearest_distances(a[:, 0], a[:, 1], b[:, 0], b[:, 1], 0.12, 0.12)
    np.testing.assert_allclose(got, _brute_force(a, b, 0.12, 0.12), rtol=1e-12, atol=1e-12)
