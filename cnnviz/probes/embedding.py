"""Two-dimensional maps of a layer's view of the images: PCA (NumPy, always there), t-SNE
(scikit-learn) and UMAP (umap-learn), the last two an optional extra:

    pip install 'cnnviz[embeddings]'

`embed(name, components)` takes the images' coordinates on the layer's leading principal
axes (N, k) — the first two are PCA's map; t-SNE and UMAP start from all k, as is usual —
and gives (N, 2). Seeded: the same images give the same map.
"""

from __future__ import annotations

import numpy as np

from cnnviz.errors import UsageError
from cnnviz.runtime import has_module

EXTRA = "cnnviz[embeddings]"
# name: (the module it needs, the package that provides it, what the axes are)
EMBEDDINGS = {
    "pca": (None, None, "the first two principal axes"),
    "tsne": ("sklearn", "scikit-learn", "t-SNE of the first principal components"),
    "umap": ("umap", "umap-learn", "UMAP of the first principal components"),
}


def check_embedding(name) -> str:
    """The embedding's name, or one line: unknown (with the valid names), or its package
    missing (with the extra that installs it)."""
    if name not in EMBEDDINGS:
        raise UsageError(f"embedding must be one of {', '.join(EMBEDDINGS)}, got {name!r}",
                         "embedding")
    module, package, _ = EMBEDDINGS[name]
    if module and not has_module(module):
        raise UsageError(f"embedding={name} needs {package}, which is not installed: "
                         f"pip install '{EXTRA}'", "embedding")
    return name


def axis_names(name: str) -> tuple[str, str]:
    return {"pca": ("PC1", "PC2"), "tsne": ("t-SNE 1", "t-SNE 2"),
            "umap": ("UMAP 1", "UMAP 2")}[name]


def embed(name: str, components: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, 2): the images' map by `name`, from their principal components (N, k)."""
    components = np.asarray(components, np.float64)
    if name == "pca":
        return components[:, :2].copy()
    if name == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, (len(components) - 1) / 3))
        return TSNE(2, perplexity=perplexity, init="pca", random_state=seed,
                    learning_rate="auto").fit_transform(components).astype(np.float64)
    import umap  # the optional extra, checked by check_embedding

    neighbours = int(min(15, len(components) - 1))
    return umap.UMAP(n_components=2, n_neighbors=neighbours, random_state=seed,
                     n_jobs=1).fit_transform(components).astype(np.float64)
