"""A snapshot (cnnviz.probes.snapshot) as TensorBoard summaries, at step = its epoch:

- Images: `kernels/LAYER` (each convolution's kernels, one tile per map, averaged over the
  input channels), `maps/LAYER` (the layer's maps for each probe image, one mosaic per
  image), `patterns/LAYER` (the climbed patterns);
- Histograms: `weights/LAYER/N` (each weight array), `activations/LAYER` (the layer's
  outputs on the probe images).

Needs the tensorboard package (tf.summary.image and .histogram live there).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

ZOOM = 4  # pixels per value in the images


def _image(tiles: np.ndarray) -> np.ndarray:
    """(N, h, w) tiles, each scaled to its own range, in a near-square grid with 1-pixel
    black gaps → one (H, W, 1) image in [0, 1], blown up ZOOM×."""
    tiles = np.asarray(tiles, np.float32)
    n, h, w = tiles.shape
    low = tiles.min(axis=(1, 2), keepdims=True)
    span = tiles.max(axis=(1, 2), keepdims=True) - low
    tiles = np.where(span > 0, (tiles - low) / np.where(span > 0, span, 1), 0)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    canvas = np.zeros((rows * (h + 1) - 1, cols * (w + 1) - 1), np.float32)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = tile
    return np.kron(canvas, np.ones((ZOOM, ZOOM), np.float32))[..., None]


def summary_writer(folder: Path):
    """The event file writer of a run's snapshots."""
    return tf.summary.create_file_writer(str(folder))


def write_summaries(writer, epoch: int, arrays: dict[str, np.ndarray], model,
                    conv_layers: tuple[str, ...]) -> None:
    """Append one snapshot's images and histograms to the writer's event file."""
    with writer.as_default(step=epoch):
        for layer in conv_layers:
            kernel = np.asarray(model.get_layer(layer).get_weights()[0])  # (kh, kw, in, out)
            tf.summary.image(f"kernels/{layer}", _image(np.moveaxis(kernel.mean(axis=2), -1, 0))[None])
            if f"pattern/{layer}" in arrays:
                patterns = arrays[f"pattern/{layer}"].astype(np.float32)
                patterns = patterns if patterns.ndim == 3 else patterns.mean(axis=-1)
                tf.summary.image(f"patterns/{layer}", _image(patterns)[None])
        for key, value in arrays.items():
            if key.startswith("probe/"):
                layer, value = key[len("probe/"):], value.astype(np.float32)
                tf.summary.histogram(f"activations/{layer}", value)
                if value.ndim == 4:  # one mosaic of the maps per probe image
                    tf.summary.image(f"maps/{layer}", np.stack(
                        [_image(np.moveaxis(v, -1, 0)) for v in value]), max_outputs=len(value))
        for layer in model.layers:
            for i, weight in enumerate(layer.get_weights()):
                tf.summary.histogram(f"weights/{layer.name}/{i}", weight)
    writer.flush()
