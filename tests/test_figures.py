"""Figures a person reads at a glance: their structure checked against independent
computations, and each kind of figure against a baseline image (pytest-mpl, `--mpl` is in
the pytest options; regenerate with `pytest tests/test_figures.py
--mpl-generate-path=tests/baseline` and look at every image before committing it).

The baseline figures are drawn from fixed synthetic arrays, never from a trained network,
so they are the same on every machine.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz.render import style

BASELINE = {"baseline_dir": "baseline", "tolerance": 5, "style": "default"}


def synthetic_maps(rows: int = 3, side: int = 11, maps: int = 64) -> np.ndarray:
    """Smooth, distinct maps: map m is a blob at a place that moves with m, scaled by row."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    out = np.zeros((rows, side, side, maps), np.float32)
    for m in range(maps):
        cy, cx = (m * 3) % side, (m * 5) % side
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 + m % 4))
        for r in range(rows):
            out[r, :, :, m] = blob * (1 + r) * (1 + m / maps)
    return out


def synthetic_digits(count: int, side: int = 28) -> np.ndarray:
    """White strokes on black: a vertical bar whose place moves with the index."""
    out = np.zeros((count, side, side), np.float32)
    for i in range(count):
        out[i, 4:side - 4, 6 + 3 * i % (side - 12):9 + 3 * i % (side - 12)] = 255
        out[i, 6 + 2 * i % 10, 4:side - 4] = 200
    return out


# ---- the images × maps grid ---------------------------------------------------------------

def test_grid_keeps_aspect_enlarges_small_maps_and_wraps_long_layers():
    from cnnviz.render.grid import MAX_WIDTH_PX, grid_canvas

    values, images = synthetic_maps(3, 11, 64), synthetic_digits(3)
    grid = grid_canvas(values, images)
    assert min(grid.tile) >= style.MIN_TILE_PX  # 11 px maps drawn at ≥ 24 px
    assert grid.tile[0] / grid.tile[1] == 1
    assert grid.input_tile[0] == grid.input_tile[1]  # the digit is not squashed
    assert grid.canvas.shape[1] <= MAX_WIDTH_PX
    assert len(grid.tops) == 2  # 64 maps wrap into two blocks of 32
    assert len(grid.corners) == 3 * 64 and len(grid.inputs_at) == 3 * 2
    tiny = grid_canvas(synthetic_maps(2, 3, 10))
    assert min(tiny.tile) >= style.MIN_TILE_PX  # 3×3 maps too


def test_grid_pixels_are_the_values_on_each_maps_own_scale():
    from cnnviz.render.grid import grid_canvas

    values = synthetic_maps(3, 11, 64)
    grid = grid_canvas(values, synthetic_digits(3))
    factor = grid.tile[0] // 11
    for r, m, (i, j) in [(0, 0, (0, 0)), (1, 37, (4, 7)), (2, 63, (10, 2))]:
        column = values[..., m]  # the map over every row: one scale for it
        expected = style.SEQUENTIAL((values[r, i, j, m] - column.min()) / (column.max() - column.min()))
        y, x = grid.corners[(r, m)]
        np.testing.assert_allclose(grid.canvas[y + i * factor, x + j * factor], expected[:3], atol=1e-6)
    layer = grid_canvas(values, scale="layer")
    y, x = layer.corners[(1, 37)]
    expected = style.SEQUENTIAL((values[1, 0, 0, 37] - values.min()) / (values.max() - values.min()))
    np.testing.assert_allclose(layer.canvas[y, x], expected[:3], atol=1e-6)


def test_a_near_constant_map_is_drawn_flat_not_stretched():
    from cnnviz.render.grid import grid_canvas

    values = synthetic_maps(2, 5, 4)
    values[..., 2] = 1e-9 * np.arange(25).reshape(5, 5)  # rounding noise, not a signal
    grid = grid_canvas(values)
    y, x = grid.corners[(0, 2)]
    tile = grid.canvas[y:y + grid.tile[0], x:x + grid.tile[1]]
    assert np.ptp(tile.reshape(-1, 3), axis=0).max() == 0


@pytest.mark.mpl_image_compare(**BASELINE)
def test_grid_figure_baseline():
    from cnnviz.render.grid import grid_figure

    return grid_figure(synthetic_maps(3, 11, 64), ["#0 4 → 4", "#1 4 → 9", "#2 4 → 4"], "conv2",
                       "conv2: 3 test images of class 4 (rows) × maps", images=synthetic_digits(3))


@pytest.mark.mpl_image_compare(**BASELINE)
def test_grid_of_units_baseline():
    from cnnviz.render.grid import grid_figure

    units = np.linspace(-1, 3, 4 * 40, dtype=np.float32).reshape(4, 40) ** 2
    return grid_figure(units, [f"class {c}" for c in range(4)], "dense1", "dense1: units",
                       images=synthetic_digits(4))


# ---- deep kernels -----------------------------------------------------------------------------

def test_strongest_inputs_by_a_loop():
    from cnnviz.render.kernels import strongest_inputs

    rng = np.random.default_rng(3)
    kernels = rng.normal(size=(3, 3, 12, 5)).astype(np.float32)
    order, norms, share = strongest_inputs(kernels, 4)
    for m in range(5):
        by_hand = [float(np.sqrt(sum(kernels[a, b, c, m] ** 2 for a in range(3) for b in range(3))))
                   for c in range(12)]
        np.testing.assert_allclose(norms[:, m], by_hand, rtol=1e-5)
        assert list(order[m]) == sorted(range(12), key=lambda c: -by_hand[c])[:4]
        top = sum(by_hand[c] ** 2 for c in order[m]) / sum(v ** 2 for v in by_hand)
        assert share[m] == pytest.approx(top, rel=1e-5)


@pytest.mark.mpl_image_compare(**BASELINE)
def test_deep_kernels_baseline():
    from cnnviz.render.kernels import strongest_inputs, strongest_inputs_figure

    rng = np.random.default_rng(0)
    kernels = (rng.normal(size=(3, 3, 32, 24)) * np.linspace(0.2, 1, 32)[None, None, :, None]
               ).astype(np.float32)
    order, _, share = strongest_inputs(kernels, 4)
    return strongest_inputs_figure(kernels, order, share, "conv2")


# ---- top examples: where the map fired ---------------------------------------------------------

@pytest.fixture(scope="module")
def linear_net():
    """conv 3×3 → average pool 2 → conv 3×3, linear: every input pixel of a position's
    field moves its output, so the field is exactly where the gradient is non-zero."""
    import keras

    keras.utils.set_random_seed(5)
    inputs = keras.Input((20, 20, 1))
    x = keras.layers.Conv2D(4, 3, name="c1")(inputs)
    x = keras.layers.AveragePooling2D(2, name="p1")(x)
    x = keras.layers.Conv2D(3, 3, name="c2")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(keras.layers.Flatten(name="flat")(x)))


@pytest.mark.parametrize("layer, position", [("c1", (0, 0)), ("c1", (7, 11)), ("p1", (3, 5)),
                                             ("c2", (0, 0)), ("c2", (4, 2)), ("c2", (6, 6))])
def test_field_box_is_where_the_gradient_reaches(linear_net, layer, position):
    import keras
    import tensorflow as tf

    from cnnviz.graph import graph_of

    probe = keras.Model(linear_net.inputs, linear_net.get_layer(layer).output)
    x = tf.constant(np.random.default_rng(0).normal(size=(1, 20, 20, 1)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = tf.reduce_sum(probe(x)[0, position[0], position[1]])
    reached = np.argwhere(np.abs(tape.gradient(value, x).numpy()[0, :, :, 0]) > 0)
    top, left = reached.min(axis=0)
    bottom, right = reached.max(axis=0) + 1
    assert graph_of(linear_net).field_box(layer, *position) == (top, left, bottom, right)


def test_strongest_positions_equal_a_forward_pass_built_here(linear_net):
    import keras

    from cnnviz.inputs import Preprocessing
    from cnnviz.probes.stats import strongest_positions

    rng = np.random.default_rng(1)
    pixels = rng.uniform(0, 255, size=(3, 2, 20, 20)).astype(np.float32)  # 3 maps × 2 images
    prep = Preprocessing("raw")
    images = pixels.reshape(6, 20, 20)  # map m's top images are rows 2m and 2m + 1
    tops = {"c2": np.arange(6).reshape(3, 2), "out": np.arange(6).reshape(3, 2)}
    found = strongest_positions(linear_net, tops, images, prep, batch_size=4)
    positions, boxes = found["c2"]
    probe = keras.Model(linear_net.inputs, linear_net.get_layer("c2").output)
    for m in range(3):
        out = probe.predict(prep.apply(pixels[m]), verbose=0)[..., m]  # (2, 6, 6)
        for k in range(2):
            i, j = positions[m, k]
            assert out[k, i, j] == pytest.approx(out[k].max(), rel=1e-5)  # the top value (ties allowed)
    assert boxes.shape == (3, 2, 4) and (boxes[..., 2] - boxes[..., 0] == 8).all()  # 8×8 fields
    assert found["out"] is None  # no positions


@pytest.mark.mpl_image_compare(**BASELINE)
def test_top_examples_baseline():
    from cnnviz.render.examples import top_examples_figure

    pixels = np.stack([synthetic_digits(4)[np.roll(np.arange(4), m)] for m in range(3)])
    boxes = np.array([[[r, c, r + 5, c + 5] for r, c in ((2, 3), (10, 8), (20, 20), (0, 22))]] * 3)
    scores = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::-1] / 10
    return top_examples_figure(pixels, boxes, scores, ["map 0", "map 1", "map 2"],
                               "conv2: the top 4 test images of each map (by its mean)")


def test_outlined_frames_the_box_and_the_crop_is_its_pixels():
    from cnnviz.render.examples import OUTLINE, crop, outlined

    image = np.arange(100, dtype=np.float32).reshape(10, 10) * 2.5
    framed = outlined(image, (2, 3, 6, 8), 2)
    assert framed.shape == (20, 20, 3)
    np.testing.assert_allclose(framed[4, 6], OUTLINE)    # the top-left corner of the frame
    np.testing.assert_allclose(framed[11, 15], OUTLINE)  # the bottom-right corner
    np.testing.assert_allclose(framed[0, 0], image[0, 0] / 255)  # outside: the image
    part = crop(image, (2, 3, 6, 8), 20)
    np.testing.assert_allclose(part[::4, ::4, 0], image[2:6, 3:8] / 255)


# ---- one style: resolution and format ------------------------------------------------------------

def test_dpi_and_format_are_checked_and_apply_to_every_figure_inside(tmp_path):
    from cnnviz.errors import UsageError
    from cnnviz.render.grid import grid_figure
    from cnnviz.render.style import figure_name, figure_output

    with pytest.raises(UsageError, match="format must be one of png, svg, pdf"):
        with figure_output(format="jpg"):
            pass
    with pytest.raises(UsageError, match="dpi must be within"):
        with figure_output(dpi=5):
            pass
    values = synthetic_maps(2, 5, 8)
    small = grid_figure(values, ["a", "b"], "c", "t", path=tmp_path / figure_name("small"))
    with figure_output(dpi=220, format="svg"):
        vector = grid_figure(values, ["a", "b"], "c", "t", path=tmp_path / figure_name("vector"))
    with figure_output(dpi=220):
        sharp = grid_figure(values, ["a", "b"], "c", "t", path=tmp_path / figure_name("sharp"))
    assert small.suffix == ".png" and vector.suffix == ".svg" and sharp.suffix == ".png"
    assert vector.read_text().lstrip().startswith("<?xml")
    from PIL import Image

    (w, h), (w2, h2) = Image.open(small).size, Image.open(sharp).size
    assert w2 == pytest.approx(2 * w, abs=2) and h2 == pytest.approx(2 * h, abs=2)  # 220 / 110
    assert figure_name("x") == "x.png"  # the setting ends with its block


def test_pattern_labels_sit_outside_their_tiles_and_every_tile_is_framed():
    """Issue 27: labels were white text on the pattern; a white pattern vanished."""
    import matplotlib.pyplot as plt

    from cnnviz.render.patterns import pattern_gallery

    patterns = np.full((6, 28, 28), 255.0)  # all white: only a frame shows where they are
    fig = pattern_gallery(patterns, [f"{k} ×1.{k} → {k}" for k in range(6)], "patterns")
    ax = fig.axes[0]
    fig.canvas.draw()
    image = ax.images[0].get_array().filled(np.nan) if np.ma.isMaskedArray(
        ax.images[0].get_array()) else ax.images[0].get_array()
    tile_tops = [r for r in range(image.shape[0]) if np.isfinite(image[r]).any()
                 and (r == 0 or not np.isfinite(image[r - 1]).any())]
    to_data = ax.transData.inverted()
    assert len(ax.texts) == 6
    for text in ax.texts:
        corners = to_data.transform(text.get_window_extent().get_points())
        bottom = corners[:, 1].max()  # rows grow downwards
        below = min(t for t in tile_tops if t >= text.get_position()[1])
        assert bottom <= below - 0.4, (text.get_text(), bottom, below)
    assert len(ax.collections[0].get_paths()) == 6  # a frame per tile
    plt.close(fig)
