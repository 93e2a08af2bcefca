"""The arithmetic of one activation, drawn as CNN Explainer draws it (the patch, the kernel
and their products as heat maps, each row on one colour scale centred on zero, the numbers
written in the cells and the sums written out), and the verification table and figure.
Never TensorFlow: a Trace (cnnviz.probes.trace) is plain arrays and numbers."""

from __future__ import annotations

import os

import numpy as np
from matplotlib.patches import Rectangle

from cnnviz.render.figures import new_axes, save_figure
from cnnviz.render.style import DIVERGING, PIXELS, centred

SHOWN_CHANNELS = 6  # input channels drawn (those whose sum moves the value most)
WRITTEN = 5         # kernels up to 5×5 get their numbers written in the cells


def trace_figure(trace, pixels: np.ndarray, title: str, path: str | os.PathLike | None = None):
    """pixels: the image as fed (H, W[, C]) 0–255, with the layer's receptive field framed;
    then the core step's arrays; then every step's line and the check."""
    core = trace.steps[0]
    grid = _grid_arrays(core)
    chart = "top" in core.arrays or "window" in core.arrays
    rows = 1 + (len(grid) if grid else 1 if chart else 0)
    columns = max(3, 1 + (len(grid[0][1]) if grid else 0))
    fig, axes = new_axes(rows, columns, figsize=(1.75 * columns + 1.2, 1.75 * rows + 1.6),
                         squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    _input(axes[0, 0], pixels, trace.field)
    _steps_text(axes[0, 1], trace, int(17 * (columns - 1)))
    if grid:  # one colour scale per row, centred on 0: the channels compare within a row
        for r, (label, arrays, names) in enumerate(grid, start=1):
            low, high = centred(np.concatenate([a.ravel() for a in arrays]))
            axes[r, 0].text(0.95, 0.5, f"{label}\n(scale ±{high:.2g})", ha="right",
                            va="center", fontsize=8, transform=axes[r, 0].transAxes)
            for c, (array, name) in enumerate(zip(arrays, names), start=1):
                _cells(axes[r, c], array, low, high, name)
    elif "top" in core.arrays:
        _contributions(axes[1, 1], core)
    elif "window" in core.arrays:
        _window(axes[1, 1], core)
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.88, bottom=0.03, wspace=0.3, hspace=0.45)
    return save_figure(fig, path)


def _grid_arrays(core):
    """[(row label, arrays, column titles)] for a convolution: patch, kernel, products of
    the input channels that move the value most."""
    a = core.arrays
    if "kernel" not in a:
        return []
    if a["patch"].ndim == 2:  # depthwise: one channel
        return [(label, [a[key]], [""]) for label, key in
                (("patch", "patch"), ("kernel", "kernel"), ("patch × kernel", "products"))]
    order = np.argsort(-np.abs(a["per_channel"]))[:SHOWN_CHANNELS]
    names = [f"channel {c}\nΣ = {a['per_channel'][c]:.3g}" for c in order]
    return [(label, [a[key][:, :, c] for c in order], names if key == "patch" else [""] * len(order))
            for label, key in (("patch", "patch"), ("kernel", "kernel"),
                               ("patch × kernel", "products"))]


def _input(ax, pixels: np.ndarray, field) -> None:
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim == 3:
        ax.imshow(np.clip(pixels / 255.0, 0, 1))
    else:
        ax.imshow(pixels, cmap=PIXELS, vmin=0, vmax=255)
    if field is not None:
        top, left, bottom, right = field
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top,
                               fill=False, edgecolor="#e8710a", linewidth=1.6))
    ax.set_title("input as fed" + (" (frame: what it sees)" if field else ""), fontsize=7)


def _steps_text(ax, trace, width: int) -> None:
    lines = [f"{step.layer}: {step.text}" for step in trace.steps]
    lines.append(trace.summary())
    wrapped = []
    for line in lines:
        while len(line) > width:
            cut = line.rfind(" ", 0, width)
            wrapped.append(line[:cut])
            line = "    " + line[cut + 1:]
        wrapped.append(line)
    ax.text(0.0, 0.95, "\n".join(wrapped), fontsize=7, va="top", family="monospace",
            transform=ax.transAxes, color="black" if trace.ok else "#b00020")


def _cells(ax, array: np.ndarray, low: float, high: float, title: str) -> None:
    ax.imshow(array, cmap=DIVERGING, vmin=low, vmax=high)
    if max(array.shape) <= WRITTEN:
        for (i, j), value in np.ndenumerate(array):
            ax.text(j, i, f"{value:.2g}", ha="center", va="center", fontsize=6,
                    color="white" if abs(value) > 0.6 * high else "black")
    ax.set_title(title, fontsize=7)


def _contributions(ax, core) -> None:
    """Dense: the inputs whose input × weight moves the sum most."""
    top = core.arrays["top"]
    values = core.arrays["products"][top]
    ax.axis("on")
    ax.barh(range(len(top)), values, color=["#c0392b" if v > 0 else "#2e6da4" for v in values])
    ax.set_yticks(range(len(top)), [f"input {i}" for i in top], fontsize=6)
    ax.invert_yaxis()
    ax.tick_params(labelsize=6)
    ax.set_title("the inputs whose input × weight is largest", fontsize=7)


def _window(ax, core) -> None:
    """A pool: its window, the winner framed."""
    window = core.arrays["window"]
    shown = np.where(np.isfinite(window), window, np.nan)
    ax.imshow(shown, cmap=PIXELS)
    for (i, j), value in np.ndenumerate(shown):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=7, color="#e8710a")
    if "row" in core.numbers:
        ax.add_patch(Rectangle((core.numbers["column"] - 0.5, core.numbers["row"] - 0.5), 1, 1,
                               fill=False, edgecolor="#e8710a", linewidth=2))
    ax.set_title("the window", fontsize=7)


def verification_lines(verification) -> list[str]:
    """The table `cnnviz verify` prints: a line per layer, then the verdict."""
    width = max([5] + [len(c.address) for c in verification.layers])
    lines = [f"{'layer':<{width}}  {'kind':<22} {'max |Δ|':>10} {'relative':>10}  verdict"]
    for check in verification.layers:
        lines.append(f"{check.address:<{width}}  {check.kind:<22} {check.max_abs:>10.2e} "
                     f"{check.max_rel:>10.2e}  "
                     + ("ok" if check.ok(verification.tolerance) else "DEVIATES"))
    return lines


def verification_figure(verification, title: str, path: str | os.PathLike | None = None):
    """Each layer's largest deviation from Keras, relative to its largest value (log scale),
    with the tolerance; a layer the check could not compute is named at the end."""
    checks = verification.layers
    fig, ax = new_axes(1, 1, figsize=(max(5.0, 0.32 * len(checks) + 2.5), 3.4))
    values = [max(c.max_rel, 1e-17) for c in checks]
    colours = ["#2e7d32" if c.ok(verification.tolerance) else "#b00020" for c in checks]
    ax.bar(range(len(checks)), values, color=colours)
    ax.axhline(verification.tolerance, color="#e8710a", linewidth=1,
               label=f"tolerance {verification.tolerance:g}")
    ax.set_yscale("log")
    ax.set_xticks(range(len(checks)), [c.address for c in checks], rotation=60, ha="right",
                  fontsize=6)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylabel("max |NumPy − Keras| / max |Keras|", fontsize=7)
    if verification.stopped_at is not None:
        ax.set_xlabel(f"stopped at {verification.stopped_at[0]} ({verification.stopped_at[1]}): "
                      "no NumPy implementation", fontsize=7, color="#b00020")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
