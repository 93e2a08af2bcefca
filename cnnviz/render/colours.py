"""The colour maps of every figure and card, in one place. NaN (the gaps between mosaic
tiles) is drawn white in each."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MAPS = plt.get_cmap("viridis").with_extremes(bad="white")      # activations: 0 dark, high yellow
PIXELS = plt.get_cmap("gray").with_extremes(bad="white")       # images and patterns, 0–255
SIGNED = plt.get_cmap("RdBu_r").with_extremes(bad="white")     # kernels: red +, blue −, centred 0
