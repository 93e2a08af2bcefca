"""Why a prediction: attributions of a class logit to the input.

The target of every method is the class *logit* (the input of the softmax): a saturated
softmax has all-zero gradients, the logit does not. Images come as pixels (N, H, W[, C]),
0–255; methods return (N, H, W) maps on the input grid:
- saliency: max over channels of |∂logit/∂input|;
- gradient-input: Σ over channels of input × gradient;
- smoothgrad: the gradient averaged over noisy copies (σ = `noise` × the 0–255 range),
  summed over channels;
- integrated-gradients: (input − baseline) × the gradient averaged along the straight path
  (midpoint rule, `steps`), summed over channels; its completeness error is reported;
- grad-cam / grad-cam++: a spatial layer's maps weighted by the logit's gradient, upsampled;
- occlusion: the logit's drop when a `patch`×`patch` square is set to the baseline colour
  (black: pixels 0), averaged over the patches covering each pixel.
Every image × sample × step goes through the network in batches of `batch_size` items:
memory does not grow with `steps` or `samples`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from cnnviz.checks import check_fields
from cnnviz.explain_methods import BY_NAME, NAMES
from cnnviz.errors import UsageError, warn_if_not_finite
from cnnviz.graph import graph_of
from cnnviz.inputs import Preprocessing
from cnnviz.layers import has_activation
from cnnviz.probes.compiled import compiled
from cnnviz.probes.responses import ends_in_softmax, linear_part
from cnnviz.probes.occlusion import occlusion

METHODS = NAMES  # the registered methods (cnnviz.explain_methods), in their order
BASELINES = ("black", "mean", "blur")


@dataclass(frozen=True)
class ExplainSettings:
    methods: tuple[str, ...] = METHODS
    steps: int = 50            # integrated gradients
    samples: int = 50          # smoothgrad
    noise: float = 0.15        # smoothgrad σ, share of the 0–255 range
    baseline: str = "black"    # integrated gradients (and occlusion's fill is always black)
    patch: int | None = None   # occlusion; None: a seventh of the side
    stride: int | None = None  # None: half the patch
    layer: str | None = None   # grad-cam; None: the last layer with a spatial output
    batch_size: int = 256
    seed: int = 0

    def __post_init__(self):
        check_fields(self)
        if isinstance(self.methods, str) or not all(isinstance(m, str) for m in self.methods):
            raise UsageError(f"methods must be method names, got {self.methods!r}", "methods")
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise UsageError(f"method {bad[0] if bad else 'none'!r}: choose from "
                             f"{', '.join(METHODS)}", "methods")
        for name in ("steps", "samples", "batch_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be ≥ 1, got {getattr(self, name)}", name)
        for name in ("patch", "stride"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UsageError(f"{name} must be ≥ 1 pixel, got {getattr(self, name)}", name)
        if self.baseline not in BASELINES:
            raise UsageError(f"baseline must be one of {', '.join(BASELINES)}", "baseline")
        if not 0 <= self.noise < float("inf"):
            raise UsageError(f"noise must be ≥ 0, got {self.noise}", "noise")


@dataclass
class Attributions:
    """Per method an (N, H, W) map; the logits (N, K), the targets, and what each method used."""

    maps: dict[str, np.ndarray]
    logits: np.ndarray
    targets: np.ndarray
    notes: dict[str, str] = field(default_factory=dict)
    completeness: np.ndarray | None = None  # (N,) IG: Σ attributions − (f(x) − f(baseline))
    difference: np.ndarray | None = None    # (N,) f(x) − f(baseline)


def logits_of(model: keras.Model, layer: str | None = None) -> Callable:
    """x → (the layer's output or None, the logits (N, K)): the model's output before its
    softmax, or its output where it has none."""
    graph = graph_of(model)
    out = graph.output_address
    final = graph.layer(out)
    wanted = [layer] if layer else []

    def run(x):
        if ends_in_softmax(final):
            *found, feed = graph.run(x, wanted, inputs_of=(out,))
            logits = linear_part(final, feed) if has_activation(final) else feed
        else:
            *found, logits = graph.run(x, wanted + [out])
        return (found[0] if layer else None), logits

    return run


def resolve_targets(target: str | int, scores: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """The class explained for each image: "predicted" (the highest score), "true" (the
    dataset label) or one class index for all."""
    if target == "predicted":
        return np.asarray(scores).argmax(axis=1)
    if target == "true":
        if labels is None:
            raise UsageError("target true needs dataset images (an image file or array has no "
                             "label)", "target")
        return np.asarray(labels, np.int64)
    classes = np.asarray(scores).shape[1]
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool) and 0 <= target < classes:
        return np.full(len(scores), int(target))
    raise UsageError(f"target {target!r}: use predicted, true or a class 0–{classes - 1}", "target")


def spatial_layer(model: keras.Model) -> str:
    """Grad-CAM's default: the last layer (nested ones too) whose output has positions."""
    from cnnviz.layers import layers_for

    graph = graph_of(model)
    spatial = [a for a in layers_for(model, "activations") if len(graph.shape(a)) == 4
               and min(graph.shape(a)[1:3]) > 1]
    if not spatial:
        raise UsageError("grad-cam needs a layer with positions (H×W > 1); this model has "
                         "none", "layer")
    return spatial[-1]


def check_spatial(model: keras.Model, layer: str) -> None:
    """Refuse a Grad-CAM layer whose output has no positions (a dense layer, a flatten)."""
    from cnnviz.layers import check_layers

    check_layers(model, [layer], "activations")
    shape = graph_of(model).shape(layer)
    if len(shape) != 4 or min(shape[1:3]) < 2:
        example = spatial_layer(model)
        raise UsageError(f"layer {layer} has no positions (its output is "
                         f"{'×'.join(str(d) for d in shape[1:])}); Grad-CAM needs a layer with "
                         f"positions, e.g. {example}", "layer")


def explain(model: keras.Model, preprocessing: Preprocessing, pixels: np.ndarray,
            targets: np.ndarray, settings: ExplainSettings,
            mean_pixels: np.ndarray | None = None,
            progress: Callable[[int], None] | None = None) -> Attributions:
    """Attributions of each image's target logit by every method in `settings`;
    progress(n) after each method, n the number of images."""
    shape = tuple(graph_of(model).input_shape[1:])
    pixels = np.asarray(pixels, np.float32).reshape(len(pixels), *shape)
    targets = np.asarray(targets, np.int64)
    x = preprocessing.apply(pixels if shape[2] > 1 else pixels[..., 0])
    zeros = np.zeros((1, *shape[:2]) + ((shape[2],) if shape[2] > 1 else ()), np.float32)
    low = preprocessing.apply(zeros)[0]
    span = preprocessing.apply(zeros + 255.0)[0] - low
    if any(BY_NAME[m].spatial for m in settings.methods) and settings.layer is not None:
        check_spatial(model, settings.layer)
    run = compiled(model, "logits", lambda: tf.function(logits_of(model), reduce_retracing=True))
    gradient = compiled(model, "logit gradient", lambda: _gradient_fn(logits_of(model)))
    logits = _batched(lambda b: run(tf.constant(x[b]))[1].numpy(), len(x), settings.batch_size)
    warn_if_not_finite(logits, "class scores")
    found = Attributions({}, logits, targets)
    job = _Job(model, preprocessing, settings, pixels, x, targets, logits, run, gradient, low,
               span, shape, mean_pixels, found)
    for method in settings.methods:
        found.maps[method], note = COMPUTE[method](job)
        if note:
            found.notes[method] = note
        if progress is not None:
            progress(len(x))
    return found


@dataclass
class _Job:
    """What every method's function reads: the inputs, the targets, the compiled functions."""

    model: keras.Model
    preprocessing: Preprocessing
    settings: ExplainSettings
    pixels: np.ndarray
    x: np.ndarray            # the network's input (N, H, W, C)
    targets: np.ndarray
    logits: np.ndarray
    run: Callable            # x → (None, logits)
    gradient: Callable       # (x, targets) → ∂logit/∂x
    low: np.ndarray          # the input of black pixels
    span: np.ndarray         # the input's range for 0–255 pixels
    shape: tuple[int, ...]
    mean_pixels: np.ndarray | None
    found: Attributions      # completeness and the like are recorded on it
    cams: dict = field(default_factory=dict)
    grad: np.ndarray | None = None  # ∂logit/∂x at the inputs, shared by the methods using it

    def input_gradient(self) -> np.ndarray:
        if self.grad is None:
            self.grad = _gradients(self.gradient, self.x, self.targets, self.settings.batch_size)
        return self.grad


def _saliency(job: _Job) -> tuple[np.ndarray, str]:
    return np.abs(job.input_gradient()).max(axis=-1), ""


def _gradient_input(job: _Job) -> tuple[np.ndarray, str]:
    return (job.input_gradient() * job.x).sum(axis=-1), ""


def _smoothgrad_map(job: _Job) -> tuple[np.ndarray, str]:
    settings = job.settings
    return (_smoothgrad(job.gradient, job.x, job.targets, job.span, settings),
            f"{settings.samples} samples, σ {settings.noise:g} of the range")


def _integrated_gradients(job: _Job) -> tuple[np.ndarray, str]:
    settings, x = job.settings, job.x
    base = job.preprocessing.apply(_baseline(settings.baseline, job.pixels, job.mean_pixels,
                                             job.shape))
    grad = _path_gradients(job.gradient, x, base, job.targets, settings)
    attributions = ((x - base) * grad).sum(axis=-1)
    end = _batched(lambda b: job.run(tf.constant(base[b]))[1].numpy(), len(x), settings.batch_size)
    job.found.difference = (job.logits - end)[np.arange(len(x)), job.targets]
    job.found.completeness = attributions.sum(axis=(1, 2)) - job.found.difference
    return attributions, f"baseline {settings.baseline}, {settings.steps} steps"


def _grad_cam(variant: str) -> Callable[[_Job], tuple[np.ndarray, str]]:
    def compute(job: _Job) -> tuple[np.ndarray, str]:
        layer = job.settings.layer or spatial_layer(job.model)
        if variant not in job.cams:  # both variants from one pass (one trace)
            job.cams.update(_grad_cams(job.model, layer, job.x, job.targets,
                                       job.settings.batch_size))
        return job.cams[variant], f"layer {layer}"

    return compute


def _occlusion(job: _Job) -> tuple[np.ndarray, str]:
    patch = job.settings.patch or max(1, round(job.shape[0] / 7))
    stride = job.settings.stride or max(1, patch // 2)
    return (occlusion(job.run, job.x, job.targets, patch, stride, job.low, job.settings.batch_size),
            f"{patch}×{patch} patches every {stride} px, filled black")


# one function per registered method (cnnviz.explain_methods): (N, H, W) maps and a note
COMPUTE: dict[str, Callable[[_Job], tuple[np.ndarray, str]]] = {
    "saliency": _saliency, "gradient-input": _gradient_input, "smoothgrad": _smoothgrad_map,
    "integrated-gradients": _integrated_gradients, "grad-cam": _grad_cam("grad-cam"),
    "grad-cam++": _grad_cam("grad-cam++"), "occlusion": _occlusion,
}
assert set(COMPUTE) == set(NAMES), "every registered method has its function, and no other"


def mean_image(images, size: int = 1000) -> np.ndarray:
    """The mean of some images (pixels), read `size` at a time: the `mean` baseline."""
    total = sum(np.asarray(images[i:i + size], np.float64).sum(axis=0)
                for i in range(0, len(images), size))
    return (total / len(images)).astype(np.float32)


def _batched(fn: Callable, count: int, size: int) -> np.ndarray:
    return np.concatenate([fn(slice(i, i + size)) for i in range(0, count, size)])


def _gradient_fn(run: Callable) -> Callable:
    @tf.function(reduce_retracing=True)
    def gradient(x, targets):
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = run(x)[1]
            total = tf.reduce_sum(tf.gather(logits, targets, axis=1, batch_dims=1))
        return tape.gradient(total, x)

    @tf.function(reduce_retracing=True)
    def summed(x, targets, segments, count):  # per image: the sum of its items' gradients
        return tf.math.unsorted_segment_sum(gradient(x, targets), segments, count)

    gradient.summed = summed  # streamed means transfer one sum per image, not every item
    return gradient


def _gradients(gradient: Callable, x: np.ndarray, targets: np.ndarray, size: int) -> np.ndarray:
    return _batched(lambda b: gradient(tf.constant(x[b]), tf.constant(targets[b])).numpy(),
                    len(x), size)


def _stream_mean(gradient: Callable, count: int, per: int, make: Callable, targets: np.ndarray,
                 size: int) -> np.ndarray:
    """The mean gradient over `per` inputs of each of `count` images; make(images, k) builds
    the inputs of items (image, k) a batch at a time, the next batch's on a thread while
    TensorFlow computes this one's gradient (the host work no longer waits in line)."""
    from concurrent.futures import ThreadPoolExecutor

    def items(first: int):  # item indices made a batch at a time: memory is one batch's
        chunk = np.arange(first, min(first + size, count * per), dtype=np.int64)
        image, k = chunk // per, chunk % per  # image-major: a batch spans images image[0]…
        return (int(image[0]), int(image[-1] - image[0] + 1), tf.constant(make(image, k)),
                tf.constant(targets[image]), tf.constant((image - image[0]).astype(np.int32)))

    summed = getattr(gradient, "summed", None) or (  # a plain gradient function: sums here
        lambda x, chosen, segments, n: _segment_sums(np.asarray(gradient(x, chosen)),
                                                     np.asarray(segments), int(n)))
    total = None
    with ThreadPoolExecutor(1) as ahead:
        upcoming = ahead.submit(items, 0)
        for first in range(0, count * per, size):
            start, spanned, inputs, chosen, segments = upcoming.result()
            if first + size < count * per:
                upcoming = ahead.submit(items, first + size)
            sums = np.asarray(summed(inputs, chosen, segments, tf.constant(spanned)))
            if total is None:
                total = np.zeros((count, *sums.shape[1:]), np.float64)
            total[start:start + spanned] += sums
    return (total / per).astype(np.float32)


def _segment_sums(values: np.ndarray, segments: np.ndarray, count: int) -> np.ndarray:
    found = np.zeros((count, *values.shape[1:]), np.float64)
    np.add.at(found, segments, values)
    return found


def _smoothgrad(gradient, x, targets, span, settings) -> np.ndarray:
    sigma = settings.noise * span  # in input units: `noise` × what 0–255 pixels span

    def make(image, k):
        rng = np.random.default_rng([settings.seed, int(image[0]), int(k[0])])
        return x[image] + sigma * rng.standard_normal(size=(len(image), *x.shape[1:]), dtype=np.float32)

    mean = _stream_mean(gradient, len(x), settings.samples, make, targets, settings.batch_size)
    return mean.sum(axis=-1)


def _baseline(kind: str, pixels: np.ndarray, mean_pixels: np.ndarray | None,
              shape: tuple[int, ...]) -> np.ndarray:
    """Baseline images in pixels, in the shape `apply` takes."""
    grey = shape[2] == 1
    images = pixels[..., 0] if grey else pixels
    if kind == "black":
        return np.zeros_like(images)
    if kind == "mean":
        if mean_pixels is None:
            raise UsageError("baseline mean needs the dataset (its mean image)", "baseline")
        return np.broadcast_to(np.asarray(mean_pixels, np.float32).reshape(images.shape[1:]),
                               images.shape).copy()
    from scipy.ndimage import gaussian_filter

    sigma = max(shape[:2]) / 10
    return np.stack([gaussian_filter(im, sigma=(sigma, sigma) + ((0,) if not grey else ()))
                     for im in images]).astype(np.float32)


def _path_gradients(gradient, x, base, targets, settings) -> np.ndarray:
    def make(image, k):  # the midpoints (k + ½) / steps, computed for the batch only
        a = ((k + 0.5) / settings.steps).astype(np.float32).reshape(-1, *([1] * (x.ndim - 1)))
        return base[image] + a * (x[image] - base[image])

    return _stream_mean(gradient, len(x), settings.steps, make, targets, settings.batch_size)


def _grad_cams(model, layer, x, targets, size) -> dict[str, np.ndarray]:
    """Grad-CAM and Grad-CAM++ heat maps (N, H, W), upsampled from `layer`."""
    cams = compiled(model, ("grad-cams", layer), lambda: _grad_cams_fn(logits_of(model, layer), x.shape[1:3]))
    parts = [[v.numpy() for v in cams(tf.constant(x[i:i + size]), tf.constant(targets[i:i + size]))]
             for i in range(0, len(x), size)]
    return {"grad-cam": np.concatenate([p[0] for p in parts]),
            "grad-cam++": np.concatenate([p[1] for p in parts])}


def _grad_cams_fn(run: Callable, size: tuple[int, int]) -> Callable:
    h, w = size

    @tf.function(reduce_retracing=True)
    def cams(batch, chosen):
        with tf.GradientTape() as tape:
            maps, logits = run(batch)
            score = tf.reduce_sum(tf.gather(logits, chosen, axis=1, batch_dims=1))
        grad = tape.gradient(score, maps)
        plain = tf.reduce_mean(grad, axis=[1, 2], keepdims=True)
        # grad-cam++: the closed form for exp(score) (Chattopadhay et al., 2018)
        g2, g3 = tf.square(grad), tf.pow(grad, 3)
        alpha = tf.math.divide_no_nan(g2, 2 * g2 + tf.reduce_sum(maps, axis=[1, 2], keepdims=True) * g3)
        plus = tf.reduce_sum(alpha * tf.nn.relu(grad), axis=[1, 2], keepdims=True)
        return [tf.image.resize(tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1, keepdims=True)),
                                [h, w], method="bilinear")[..., 0] for weights in (plain, plus)]

    return cams
