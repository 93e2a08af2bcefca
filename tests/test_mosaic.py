"""Mosaics: grid shape, tiles where the index says, per-tile and shared scaling."""

import numpy as np
import pytest

from cnnviz.render.mosaic import grid_shape, mosaic, scale_tiles


@pytest.mark.parametrize("n, shape", [(1, (1, 1)), (10, (3, 4)), (32, (6, 6)), (64, (8, 8)),
                                      (70, (8, 9))])
def test_near_square_grid(n, shape):
    assert grid_shape(n) == shape


def test_tiles_sit_where_the_index_says():
    rng = np.random.default_rng(0)
    tiles = rng.normal(size=(10, 3, 5)).astype(np.float32)
    m = mosaic(tiles, pad=2, scale="layer")
    assert (m.rows, m.cols) == (3, 4) and m.image.shape == (3 * 5 - 2, 4 * 7 - 2)
    lo, hi = tiles.min(), tiles.max()
    for i in range(10):
        r, c = m.origin(i)
        assert (r, c) == ((i // 4) * 5, (i % 4) * 7)
        np.testing.assert_allclose(m.image[r:r + 3, c:c + 5], (tiles[i] - lo) / (hi - lo), rtol=1e-6)
    assert np.isnan(m.image[3:5, :]).all()  # padding rows between tile rows
    r, c = m.origin(10)  # the two empty places of the last row stay blank
    assert np.isnan(m.image[r:r + 3, c:]).all()


def test_per_map_scaling_and_constant_maps():
    tiles = np.stack([np.arange(4.0).reshape(2, 2), np.full((2, 2), 7.0), -np.arange(4.0).reshape(2, 2)])
    scaled, lo, hi = scale_tiles(tiles, "map")
    np.testing.assert_allclose(scaled[0], [[0, 1 / 3], [2 / 3, 1]])
    np.testing.assert_array_equal(scaled[1], 0)  # a constant map is drawn flat, not NaN
    np.testing.assert_allclose(scaled[2], [[1, 2 / 3], [1 / 3, 0]])
    assert (lo, hi) == (-3.0, 7.0)


def test_shared_scale_can_be_fixed_across_images():
    scaled, lo, hi = scale_tiles(np.array([[[0.0, 5.0]]]), "layer", low=0, high=10)
    np.testing.assert_allclose(scaled, [[[0.0, 0.5]]])
    assert (lo, hi) == (0, 10)
