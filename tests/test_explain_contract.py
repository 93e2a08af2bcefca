"""One contract for every registered attribution method (cnnviz.explain_methods), run on a
model whose logits are linear in the input: the map has the input's shape, is finite, depends
on the target class, and equals the exact answer written here in NumPy where the method has
one. A method registered later is tested here without a line added."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz.explain_methods import NAMES

SIDE, CLASSES = 8, 3


@pytest.fixture(scope="module")
def linear():
    """x (8×8×1) → 1×1 conv of weight 1 (the maps are the input: Grad-CAM has a layer with
    positions) → flatten → dense: logit_t = Σ w_t · x + b_t."""
    import keras

    model = keras.Sequential([keras.Input((SIDE, SIDE, 1)),
                              keras.layers.Conv2D(1, 1, use_bias=False, name="conv"),
                              keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(CLASSES, name="out")])
    model.get_layer("conv").set_weights([np.ones((1, 1, 1, 1), np.float32)])
    rng = np.random.default_rng(4)
    weights = rng.normal(size=(SIDE * SIDE, CLASSES)).astype(np.float32)
    model.get_layer("out").set_weights([weights, rng.normal(size=CLASSES).astype(np.float32)])
    pixels = rng.uniform(0, 255, (2, SIDE, SIDE)).astype(np.float32)
    return model, weights.reshape(SIDE, SIDE, CLASSES), pixels


def occlusion_answer(pixels, w, patch, stride):
    corners = sorted(set(range(0, SIDE - patch + 1, stride)) | {SIDE - patch})
    drop, cover = np.zeros((SIDE, SIDE)), np.zeros((SIDE, SIDE))
    for r in corners:
        for c in corners:
            drop[r:r + patch, c:c + patch] += (w * pixels)[r:r + patch, c:c + patch].sum()
            cover[r:r + patch, c:c + patch] += 1
    return drop / cover


def grad_cam_plus_answer(pixels, w):
    g, a = w, pixels  # the logit's gradient at the conv's maps, and the maps
    alpha = np.where(g != 0, g ** 2 / (2 * g ** 2 + a.sum() * g ** 3), 0)
    return np.maximum((alpha * np.maximum(g, 0)).sum() * a, 0)


EXACT = {  # (pixels (H, W), the target's weights (H, W)) → the map, for a linear logit
    "saliency": lambda x, w: np.abs(w),
    "gradient-input": lambda x, w: x * w,
    "smoothgrad": lambda x, w: w,  # the gradient is the same at every noisy copy
    "integrated-gradients": lambda x, w: x * w,  # black baseline: exact
    "grad-cam": lambda x, w: np.maximum(w.mean() * x, 0),
    "grad-cam++": grad_cam_plus_answer,
    "occlusion": lambda x, w: occlusion_answer(x, w, 3, 2),
}


@pytest.mark.parametrize("method", NAMES)
def test_every_method_keeps_the_contract(linear, method):
    import cnnviz

    model, weights, pixels = linear
    m = cnnviz.load(model, preprocess="raw")
    settings = {"patch": 3, "stride": 2, "steps": 8, "samples": 4, "layer": "conv"}
    first = m.explain(pixels, methods=method, target=0, **settings).maps[method]
    second = m.explain(pixels, methods=method, target=1, **settings).maps[method]
    assert first.shape == (2, SIDE, SIDE) and np.isfinite(first).all()
    assert not np.allclose(first, second)  # it explains the class it is asked about
    if method in EXACT:
        for i in range(2):
            for target, found in ((0, first), (1, second)):
                expected = EXACT[method](pixels[i].astype(np.float64), weights[..., target])
                np.testing.assert_allclose(found[i], expected, rtol=2e-3,
                                           atol=2e-3 * np.abs(expected).max())


NO_EXACT_ANSWER: dict[str, str] = {}  # a method with no closed form on this model: why


def test_every_method_has_an_exact_answer_here_or_says_why_not():
    assert set(EXACT) | set(NO_EXACT_ANSWER) == set(NAMES)
    assert not set(EXACT) & set(NO_EXACT_ANSWER)
