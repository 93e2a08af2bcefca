"""What `cnnviz info` prints and `m.info()` returns: a model's layers, shapes, parameters,
receptive fields and run metadata, as lines of text."""

from __future__ import annotations

from pathlib import Path

from cnnviz import bundle
from cnnviz.graph import graph_of
from cnnviz.model import LoadedModel, layer_table, parameter_count


def info_lines(loaded: LoadedModel, gallery: Path) -> list[str]:
    """The table of layers (nested ones indented) between the model's and the run's lines."""
    where = loaded.ref.bundle_dir or loaded.ref.model_path
    rows = layer_table(loaded.model)
    width = max([10] + [len(r.name) + 2 * r.depth for r in rows])
    kinds = max([14] + [len(r.kind) + 9 * r.nested for r in rows])
    h, w, c = graph_of(loaded.model).input_shape[1:]
    lines = [f"model: {loaded.name} ({where})", "",
             f"input: {h}x{w}x{c}, fed {loaded.preprocessing.describe()}", "",
             f"{'layer':<{width}} {'kind':<{kinds}} {'output shape':<14} {'params':>10}  "
             f"{'receptive field':>15}  {'stride':>6}"]
    for row in rows:
        shape = "x".join(str(d) for d in row.output_shape[1:])
        name = "  " * row.depth + row.name
        kind = row.kind + (" (nested)" if row.nested else "")
        lines.append(f"{name:<{width}} {kind:<{kinds}} {shape:<14} {row.params:>10,}  "
                     f"{row.field_text():>15}  {row.stride_text():>6}")
    if any(not r.known for r in rows):
        lines.append("?: a layer whose geometry cnnviz cannot follow (and those after it)")
    lines += ["", f"total parameters: {parameter_count(loaded.model):,}",
              *bundle.describe_run(loaded.run),
              f"galleries: {gallery}" + ("" if gallery.is_dir() else " (none yet)")]
    return lines
