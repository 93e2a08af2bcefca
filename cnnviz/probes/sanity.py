"""Do the explanations depend on the model? The sanity checks of the literature.

- Cascading randomisation (Adebayo et al., 2018): re-initialise the weighted layers from the
  top down, one more at each step, and follow the Spearman rank correlation between the
  trained model's attribution maps (absolute values) and the randomised model's. A method
  whose maps still correlate ≥ SURVIVES after every layer is randomised fails.
- Deletion and insertion: remove (set to black) or add (onto black) the pixels in the order
  the attribution ranks them and follow the target's score (the probability where the model
  ends in a softmax, else the logit); the area under the curve against a random order.
- Completeness of integrated gradients: Σ attributions against f(x) − f(baseline).
"""

from __future__ import annotations

import keras
import numpy as np

from cnnviz.graph import graph_of
from cnnviz.inputs import Preprocessing
from cnnviz.probes.attribution import ExplainSettings, explain

SURVIVES = 0.5     # mean Spearman correlation after full randomisation that fails a method
COMPLETE = 0.05    # IG passes when |Σ attributions − Δf| ≤ 5 % of |Δf| (median over images)
INITIALIZERS = {"kernel": "kernel_initializer", "depthwise_kernel": "depthwise_initializer",
                "pointwise_kernel": "pointwise_initializer", "bias": "bias_initializer"}


def weighted_layers(model: keras.Model) -> list[str]:
    """Addresses of the layers with a kernel, in model order (nested ones too)."""
    graph = graph_of(model)
    return [a for a in graph.addresses if any(hasattr(graph.layer(a), k) for k in
                                               ("kernel", "depthwise_kernel"))
            and not isinstance(graph.layer(a), keras.Model)]


def randomised(model: keras.Model, top: int, seed: int = 0) -> keras.Model:
    """A copy of the model with its `top` last weighted layers re-initialised (their own
    initializers; every other weight kept)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    keras.utils.set_random_seed(seed)
    graph = graph_of(copy)
    for address in weighted_layers(copy)[::-1][:top]:
        layer = graph.layer(address)
        for variable in layer.weights:
            name = variable.path.rsplit("/", 1)[-1]
            init = getattr(layer, INITIALIZERS.get(name, ""), None)
            if init is not None:
                variable.assign(keras.initializers.get(init)(variable.shape, variable.dtype))
    return copy


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over images of the Spearman rank correlation of two (N, H, W) maps' absolute values."""
    from scipy.stats import spearmanr

    values = []
    for x, y in zip(np.abs(a).reshape(len(a), -1), np.abs(b).reshape(len(b), -1)):
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            values.append(0.0)
        else:
            values.append(float(spearmanr(x, y).statistic))
    return float(np.mean(values))


def cascade(model: keras.Model, preprocessing: Preprocessing, pixels: np.ndarray,
            targets: np.ndarray, settings: ExplainSettings, trained: dict[str, np.ndarray],
            seed: int = 0) -> dict:
    """Per method, the correlation with the trained maps after randomising 1, 2, … layers."""
    layers = weighted_layers(model)[::-1]
    found = {m: [] for m in settings.methods}
    for k in range(1, len(layers) + 1):
        maps = explain(randomised(model, k, seed), preprocessing, pixels, targets, settings).maps
        for method in settings.methods:
            found[method].append(spearman(trained[method], maps[method]))
    return {"layers": layers, "correlation": found}


def deletion_insertion(model: keras.Model, preprocessing: Preprocessing, pixels: np.ndarray,
                       targets: np.ndarray, maps: np.ndarray, fractions: int = 21, seed: int = 0,
                       batch_size: int = 256) -> dict:
    """The target's score as the top-ranked pixels are deleted (set black) or inserted (onto
    black), at `fractions` evenly spaced shares, for the attribution order and a random one."""
    shape = tuple(graph_of(model).input_shape[1:])
    grey = shape[2] == 1
    images = np.asarray(pixels, np.float32).reshape(len(pixels), *shape[:2], *(() if grey else shape[2:]))
    shares = np.linspace(0, 1, fractions)
    rng = np.random.default_rng(seed)
    count = shape[0] * shape[1]
    orders = {"": np.argsort(-np.asarray(maps).reshape(len(images), -1), axis=1, kind="stable"),
              "random_": np.stack([rng.permutation(count) for _ in images])}
    result = {"shares": shares.tolist()}
    for prefix, order in orders.items():
        for kind in ("deletion", "insertion"):
            batch = []
            for i, image in enumerate(images):
                for share in shares:
                    keep = np.zeros(count, bool)
                    keep[order[i, :int(round(share * count))]] = True
                    keep = keep.reshape(shape[:2])
                    if kind == "deletion":
                        keep = ~keep
                    mask = keep if grey else keep[..., None]
                    batch.append(np.where(mask, image, 0.0))
            x = preprocessing.apply(np.asarray(batch, np.float32))
            out = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))  # probabilities
            # where the model ends in a softmax, else its outputs
            scores = out[np.arange(len(batch)), np.repeat(targets, fractions)].reshape(len(images), fractions)
            curve = scores.mean(axis=0)
            result[f"{prefix}{kind}_curve"] = curve.tolist()
            result[f"{prefix}{kind}_auc"] = float(np.trapezoid(curve, shares))
    return result


def sanity(model: keras.Model, preprocessing: Preprocessing, pixels: np.ndarray,
           targets: np.ndarray, settings: ExplainSettings, seed: int = 0) -> dict:
    """Every check for every method: values, and pass/fail with the rule applied."""
    trained = explain(model, preprocessing, pixels, targets, settings)
    chain = cascade(model, preprocessing, pixels, targets, settings, trained.maps, seed)
    methods = {}
    for method in settings.methods:
        curves = deletion_insertion(model, preprocessing, pixels, targets, trained.maps[method],
                                    seed=seed, batch_size=settings.batch_size)
        last = chain["correlation"][method][-1]
        varies = all(np.ptp(m) > 0 for m in trained.maps[method]) and \
            np.isfinite(trained.maps[method]).all()
        row = {"randomisation": chain["correlation"][method],
               # a constant (or NaN) map does not depend on the model: it can never pass
               "randomisation_passes": bool(varies and last < SURVIVES),
               "varies": bool(varies),
               **curves,
               "deletion_passes": curves["deletion_auc"] < curves["random_deletion_auc"],
               "insertion_passes": curves["insertion_auc"] > curves["random_insertion_auc"]}
        if method == "integrated-gradients" and trained.completeness is not None:
            error = np.abs(trained.completeness) / np.maximum(np.abs(trained.difference), 1e-12)
            row["completeness_error"] = float(np.median(error))
            row["completeness_passes"] = bool(np.median(error) <= COMPLETE)
        methods[method] = row
    return {"layers_randomised": chain["layers"], "images": len(pixels),
            "rules": {"randomisation": f"mean Spearman |map| after every layer is randomised < "
                                       f"{SURVIVES}, and every map varies",
                      "deletion": "area under the score curve below a random order's",
                      "insertion": "area under the score curve above a random order's",
                      "completeness": f"median |Σ attributions − Δf| ≤ {COMPLETE:.0%} of |Δf|"},
            "methods": methods}
