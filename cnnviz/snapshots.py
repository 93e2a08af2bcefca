"""A bundle's snapshots: what the network looked like at the start and every K epochs of its
training (cnnviz.probes.snapshot records them; this module stores and reads them).

    trained/NAME/snapshots/epoch-0000.npz, epoch-0002.npz, …   one compressed file each

Each file is written atomically and named by its epoch, so a resumed run continues the
series without a gap or a duplicate. Size: article2 takes about 0.9 MB a snapshot (its
96,844 weights in float32, every layer's output for 10 probe images in float16, top-example
indices, 12 patterns), so 21 snapshots of a 20-epoch run stay under 20 MB.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from cnnviz.atomic import atomic_path
from cnnviz.errors import UsageError

FOLDER = "snapshots"
_NAME = re.compile(r"epoch-(\d{4,})\.npz")


def path_of(bundle_dir: Path, epoch: int) -> Path:
    return Path(bundle_dir) / FOLDER / f"epoch-{epoch:04d}.npz"


def write(bundle_dir: Path, epoch: int, arrays: dict[str, np.ndarray]) -> Path:
    """Store one snapshot (atomically: a reader sees the whole file or none)."""
    target = path_of(bundle_dir, epoch)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp, open(tmp, "wb") as out:
        np.savez_compressed(out, **arrays)
    return target


def epochs(bundle_dir: Path) -> list[int]:
    """The epochs a bundle has snapshots of, in order."""
    folder = Path(bundle_dir) / FOLDER
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _NAME.fullmatch(p.name)))


def read(bundle_dir: Path, epoch: int, prefix: str = "") -> dict[str, np.ndarray]:
    """One snapshot's arrays (only those whose key starts with `prefix`: the file is read
    key by key); a missing epoch is one line naming the ones there are."""
    there = epochs(bundle_dir)
    if epoch not in there:
        have = (f"it has epochs {', '.join(map(str, there))}" if there else
                "it has none (train it with snapshots=K)")
        raise UsageError(f"epoch={epoch}: {Path(bundle_dir).name} has no snapshot of that "
                         f"epoch; {have}", "epoch")
    with np.load(path_of(bundle_dir, epoch)) as stored:
        return {key: stored[key] for key in stored.files if key.startswith(prefix)}


def weights(arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The model's weights in a snapshot, in model.get_weights() order."""
    return [arrays[k] for k in sorted(k for k in arrays if k.startswith("weight/"))]


def layer_part(arrays: dict[str, np.ndarray], kind: str) -> dict[str, np.ndarray]:
    """{layer: array} of one kind (probe, top, dead, mean, pattern)."""
    prefix = f"{kind}/"
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
