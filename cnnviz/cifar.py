"""CIFAR-10 and CIFAR-100 as Keras downloads them: Python pickles of 32×32×3 images,
unpickled with only NumPy arrays allowed (a pickle can run code; these never can)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnviz.errors import CnnvizError

CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
_CIFAR_PARTS = {"cifar10": ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
                "cifar100": (["train"], ["test"], b"fine_labels")}


def read_cifar(folder: Path, name: str) -> tuple[np.ndarray, ...]:
    """The CIFAR batches Keras downloads (Python pickles, read with only NumPy arrays
    allowed) → x_train (N, 32, 32, 3), y_train, x_test, y_test."""
    train, test, key = _CIFAR_PARTS[name]
    arrays = []
    for parts in (train, test):
        images, labels = [], []
        for part in parts:
            batch = _read_pickle(folder / part)
            try:
                images.append(np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32))
                labels.append(np.asarray(batch[key], np.int64))
            except (KeyError, TypeError, ValueError):
                raise CnnvizError(f"{folder / part}: not a CIFAR batch (no {key.decode()} "
                                  "or data of 3×32×32 images)") from None
        arrays += [np.concatenate(images).transpose(0, 2, 3, 1), np.concatenate(labels)]
    return tuple(arrays)


def _read_pickle(path: Path):
    import pickle

    class OnlyArrays(pickle.Unpickler):
        def find_class(self, module, name):
            allowed = {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
                       ("numpy", "dtype"), ("numpy._core.multiarray", "_reconstruct")}
            if (module, name) not in allowed:
                raise pickle.UnpicklingError(f"{module}.{name} is not allowed")
            return super().find_class(module, name)

    try:
        with open(path, "rb") as handle:
            return OnlyArrays(handle, encoding="bytes").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        raise CnnvizError(f"{path}: not a readable CIFAR batch ({' '.join(str(exc).split())[:160] or type(exc).__name__})") from None
