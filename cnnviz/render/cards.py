"""Everything the galleries know about one map, gathered from the arrays they saved.

Sources (each optional, found through the manifest's paths): kernels/L/kernels-L.npz,
filters/L/patterns-L.npz, stats/stats.json, stats/top_examples.npz, and an activations .npz
with `pixels` and `labels` (the atlas writes one with the first test image of each class).
The small card images are written as PNGs shown enlarged (pixelated) by the browser.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.image import imsave

from cnnviz.layout import (ACTIVATIONS, FILTERS, KERNELS, KERNELS_KEY, STATS_JSON,
                           TOP_EXAMPLES, TOP_PIXELS, TOP_PIXELS_INDEX, top_field_keys, top_keys)
from cnnviz.render.style import SEQUENTIAL as MAP_CMAP
from cnnviz.render.style import PIXELS as GRAY
from cnnviz.render.style import DIVERGING as KERNEL_CMAP
from cnnviz.render.examples import example_strip
from cnnviz.render.figures import PNG_COMPRESSION
from cnnviz.render.kernels import strongest_inputs
from cnnviz.render import style
from cnnviz.render.mosaic import as_tiles, mosaic


@dataclass
class MapCard:
    """What is known about one map (or unit) of one layer; image paths relative to the card."""

    layer: str
    index: int
    images: dict[str, str] = field(default_factory=dict)   # section → png path
    captions: dict[str, str] = field(default_factory=dict)  # section → caption
    stats: dict[str, object] = field(default_factory=dict)
    class_means: list[float] | None = None


@dataclass
class CardSources:
    """The arrays found for each layer (layer → array) and the sample images, if any."""

    kernels: dict[str, np.ndarray] = field(default_factory=dict)
    patterns: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    stats: dict[str, dict] = field(default_factory=dict)
    stats_split: str = "test"
    top: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    #      layer → (dataset indices, scores, rows of top_pixels), each (maps, k)
    top_pixels: np.ndarray | None = None  # the distinct top images, once each
    fields: dict[str, np.ndarray] = field(default_factory=dict)  # layer → (maps, k, 4) boxes
    samples: dict[str, np.ndarray] = field(default_factory=dict)  # layer → (N, h, w, C)
    sample_pixels: np.ndarray | None = None
    sample_labels: np.ndarray | None = None
    over_training: dict[str, dict[int, str]] = field(default_factory=dict)  # layer → map → figure

    def layers(self) -> list[str]:
        names = [*self.kernels, *self.patterns, *self.stats, *self.top, *self.samples,
                 *self.over_training]
        return list(dict.fromkeys(names))

    def only(self, layer: str) -> "CardSources":
        """The same sources for one layer (what a worker process is sent)."""
        pick = {name: ({layer: getattr(self, name)[layer]} if layer in getattr(self, name)
                       else {}) for name in ("kernels", "patterns", "stats", "top", "fields",
                                             "samples", "over_training")}
        table = self.top_pixels
        if layer in self.top:  # only the top images this layer uses
            index, score, rows = self.top[layer]
            used, rows = np.unique(rows, return_inverse=True)
            pick["top"] = {layer: (index, score, rows.reshape(index.shape))}
            table = self.top_pixels[used]
        return CardSources(**pick, stats_split=self.stats_split, sample_pixels=self.sample_pixels,
                           sample_labels=self.sample_labels, top_pixels=table)

    def count(self, layer: str) -> int:
        """How many maps (or units) a layer has, from whichever source knows."""
        if layer in self.stats:
            return len(self.stats[layer]["maps"]["mean"])
        if layer in self.kernels:
            return self.kernels[layer].shape[-1]
        if layer in self.samples:
            return self.samples[layer].shape[-1]
        if layer in self.top:
            return len(self.top[layer][0])
        if layer in self.patterns:
            return int(self.patterns[layer]["maps"].max()) + 1
        return max(self.over_training[layer]) + 1


def find_sources(folder: Path, entries: list[dict]) -> CardSources:
    """Read the arrays named by manifest entries (unreadable files are skipped)."""
    found = CardSources()
    for e in entries:
        path, parts = folder / e["path"], e["path"].split("/")
        layer = e.get("layer") or (parts[1] if len(parts) > 1 else "")
        try:
            if e.get("kind") == "epochs-map" and path.is_file():  # drawn by `cnnviz epochs`
                found.over_training.setdefault(layer, {})[int(e["map"])] = e["path"]
            elif parts[0] == KERNELS and path.suffix == ".npz":
                with np.load(path) as z:
                    found.kernels[layer] = z[KERNELS_KEY]
            elif parts[0] == FILTERS and path.suffix == ".npz":
                with np.load(path) as z:
                    arrays = {k: z[k] for k in z.files if k != "all_objectives"}
                if arrays["pixels"].ndim not in (3, 4) or \
                        arrays.get("snapshot_pixels", np.zeros((0,) * 5)).ndim not in (4, 5):
                    raise ValueError("unexpected array shapes")
                found.patterns[layer] = arrays
            elif e["path"] == STATS_JSON:
                data = json.loads(path.read_text(encoding="utf-8"))
                found.stats = data["layers"]
                found.stats_split = data.get("split", "test")
            elif e["path"] == TOP_EXAMPLES:
                with np.load(path) as z:
                    if TOP_PIXELS not in z.files:
                        continue
                    found.top_pixels, table_index = z[TOP_PIXELS], z[TOP_PIXELS_INDEX]
                    for key in z.files:
                        if all(k in z.files for k in top_keys(key)):
                            index, score = (z[k] for k in top_keys(key))
                            found.top[key] = (index, score, np.searchsorted(table_index, index))
                            box = top_field_keys(key)[1]
                            if box in z.files:
                                found.fields[key] = z[box]
            elif parts[0] == ACTIVATIONS and path.suffix == ".npz":
                with np.load(path) as z:
                    if "pixels" in z.files and "labels" in z.files and (
                            found.sample_pixels is None or "one-per-class" in path.name):
                        skip = {"input", "index", "labels", "pixels", "probabilities", "scores"}
                        found.samples = {k: z[k] for k in z.files if k not in skip}
                        found.sample_pixels, found.sample_labels = z["pixels"], z["labels"]
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            continue  # a broken array file costs its card section, never the page
    return found


def _pattern_caption(patterns: dict[str, np.ndarray], i: int, name: str) -> str:
    """The value reached, against the best dataset image, the curve, the flags."""
    reached = float(patterns["objective"][i])
    text = f"activation reached {reached:.3g}"
    if "reference" in patterns:
        best = float(patterns["reference"][i])
        text += f" (best real image {best:.3g}" + (f", ×{reached / best:.2g})" if best > 0 else ")")
    if "curve" in patterns and "curve_steps" in patterns:
        curve, steps = patterns["curve"][i], patterns["curve_steps"]
        text += "; over steps " + ", ".join(f"{int(s)}: {float(v):.3g}" for s, v in
                                           list(zip(steps, curve))[::max(1, len(steps) // 5)])
    if "flags" in patterns and "flag_names" in patterns:
        raised = [str(n) for n, f in zip(patterns["flag_names"], patterns["flags"][i]) if f]
        text += "".join(f"; ⚠ {r}" for r in raised)
    return text + f"; the network calls it {name}"


CARD_CHANNELS = 6  # a deep layer's card draws the map's strongest input channels
CARD_LIMIT = 256  # cards per layer: a big layer's first 256 maps (its arrays keep them all)


def write_card_images(sources: CardSources, layer: str, folder: Path,
                      class_names: list[str]) -> list[MapCard]:
    """One MapCard per map of a layer, its images written under folder/ (relative paths)."""
    folder.mkdir(parents=True, exist_ok=True)
    cards = [MapCard(layer, m) for m in range(min(sources.count(layer), CARD_LIMIT))]
    kernels = sources.kernels.get(layer)
    if kernels is not None:
        limit = float(np.abs(kernels).max()) or 1.0
        order, norms, _ = strongest_inputs(kernels, CARD_CHANNELS)
        for card in cards:
            tiles = np.moveaxis(kernels[..., card.index], -1, 0)
            shown = ", ".join(f"{int(c)} ({norms[c, card.index]:.2g})" for c in order[card.index])
            if len(tiles) > CARD_CHANNELS:  # a deep layer: the strongest inputs only
                tiles = tiles[order[card.index]]
            factor = style.tile_factor(max(kernels.shape[:2]), 40)
            image = mosaic(tiles, cols=len(tiles), pad=1, scale="layer", low=-limit, high=limit).image
            _add(card, folder, "kernel", style.enlarge(image, factor), KERNEL_CMAP,
                 (f"its {len(tiles)} strongest of {kernels.shape[2]} input channels, strongest "
                  f"first: {shown} (channel (norm)); " if kernels.shape[2] > CARD_CHANNELS else
                  f"{kernels.shape[2]} input channel(s); ")
                 + f"{kernels.shape[0]}x{kernels.shape[1]}, red positive, blue negative, "
                 f"±{limit:.3g} for the whole layer")
    patterns = sources.patterns.get(layer)
    if patterns is not None:
        for i, m in enumerate(patterns["maps"]):
            if m >= len(cards):
                continue
            card = cards[m]
            pixels = as_tiles(np.asarray(patterns["pixels"][i])[np.newaxis])[0] / 255.0
            predicted = int(patterns["predicted"][i])
            name = class_names[predicted] if predicted < len(class_names) else str(predicted)
            _add(card, folder, "pattern", pixels, GRAY, _pattern_caption(patterns, i, name))
            steps = patterns.get("snapshot_steps")
            if steps is not None and len(steps):
                frames = patterns["snapshot_pixels"][i]
                strip = mosaic(as_tiles(frames), cols=len(frames), pad=2, scale="layer", low=0,
                               high=255)
                _add(card, folder, "evolution", strip.image, GRAY,
                     "steps " + ", ".join(str(int(s)) for s in steps))
    top = sources.top.get(layer)
    if top is not None:
        index, score, rows = top
        boxes = sources.fields.get(layer)
        for card in cards:
            framed = boxes is not None and card.index < len(boxes)
            strip = example_strip(sources.top_pixels[rows[card.index]],
                                  boxes[card.index] if framed else None)
            _add(card, folder, "top", strip, None,
                 f"{sources.stats_split} images " + ", ".join(
                     f"#{int(i)} ({float(s):.2f})" for i, s in zip(index[card.index], score[card.index]))
                 + ("; red frame, enlarged beside it: what its strongest position sees" if framed else ""))
    values = sources.samples.get(layer)
    if values is not None and values.ndim == 4:
        named = ", ".join(class_names[int(c)] if 0 <= c < len(class_names) else "?"
                          for c in sources.sample_labels)
        for card in cards:
            image, low, high = sample_strip(sources.sample_pixels, values[..., card.index])
            _add(card, folder, "samples", image, None,
                 f"top: the sample images ({named}); below: this map's output on each, "
                 f"one scale for the map, {low:.3g} (dark) to {high:.3g} (bright)")
    elif values is not None:
        for card in cards:
            card.stats["output on the sample images"] = ", ".join(
                f"{v:.2f}" for v in values[:, card.index])
    for m, path in sources.over_training.get(layer, {}).items():
        if m < len(cards):  # a figure of the gallery, from the card's folder cards/LAYER/
            cards[m].images["training"] = f"../../{path}"
            cards[m].captions["training"] = ("columns: the epochs of the run's snapshots; rows: "
                                             "kernel, output, top training image, pattern")
    layer_stats = sources.stats.get(layer)
    if layer_stats is not None:
        maps = layer_stats["maps"]
        for card in cards:
            m = card.index
            preferred = int(maps["preferred_class"][m])
            card.stats.update({
                "mean": f"{maps['mean'][m]:.4g}", "std": f"{maps['std'][m]:.4g}",
                "max": f"{maps['max'][m]:.4g}",
                "sparsity (values = 0)": f"{1 - maps['active_fraction'][m]:.1%}",
                "images where it fires": f"{maps['image_active_fraction'][m]:.1%}",
                "dead": "yes" if maps["dead"][m] else "no",
                "always on": "yes" if maps["always_on"][m] else "no",
                "preferred class": class_names[preferred] if preferred < len(class_names)
                else str(preferred)})
            card.class_means = [float(row[m]) for row in layer_stats["class_mean"]]
    return cards


def sample_strip(pixels: np.ndarray, maps: np.ndarray, least: int = 56
                 ) -> tuple[np.ndarray, float, float]:
    """The sample images (top row) and one map's output on each (bottom row), every output
    tile resized (nearest) to its image's size so each sits under its image; RGB (h, w, 3)
    in [0, 1] with white gaps, and the output's (low, high)."""
    images = as_tiles(np.asarray(pixels))
    n, side = len(images), max(images.shape[1:3])
    factor = style.tile_factor(side, least)
    th, tw = images.shape[1] * factor, images.shape[2] * factor
    low, high = float(maps.min()), float(maps.max())
    span = high - low if high > low else 1.0
    canvas = np.ones((2 * th + 4, n * (tw + 4) - 4, 3), np.float32)
    rows = (np.arange(th) * maps.shape[1] // th)[:, None]
    cols = (np.arange(tw) * maps.shape[2] // tw)[None, :]
    for i in range(n):
        x = i * (tw + 4)
        image = style.enlarge(images[i] / 255.0, factor)
        canvas[:th, x:x + tw] = image[..., None] if image.ndim == 2 else image
        canvas[th + 4:, x:x + tw] = MAP_CMAP((maps[i][rows, cols] - low) / span)[..., :3]
    return np.clip(canvas, 0, 1), low, high


def _add(card: MapCard, folder: Path, section: str, image: np.ndarray, cmap, caption: str) -> None:
    name = f"{section}-{card.index:03d}.png"
    _save(folder / name, image, cmap)
    card.images[section] = f"{folder.name}/{name}"
    card.captions[section] = caption


def _save(path: Path, image: np.ndarray, cmap) -> None:
    """An image scaled to [0, 1] (NaN = white gap) as an RGBA PNG, one pixel per value;
    a colour image (h, w, 3) as it is."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3:
        imsave(os.fspath(path), np.clip(np.nan_to_num(image, nan=1.0), 0, 1), pil_kwargs=FAST)
        return
    rgba = cmap(np.ma.masked_invalid(image), bytes=True)
    imsave(os.fspath(path), rgba, pil_kwargs=FAST)


FAST = {"compress_level": PNG_COMPRESSION}
