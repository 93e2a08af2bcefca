"""The model card stored in outputs/NAME/manifest.json: what the HTML page shows at the top."""

from __future__ import annotations

from cnnviz import bundle
from cnnviz.data import class_names
from cnnviz.model import LoadedModel, layer_table, parameter_count


def model_card(loaded: LoadedModel) -> dict:
    """Name, source, architecture table, run summary lines and class names of a model."""
    rows = [{"name": r.name, "kind": r.kind, "shape": "x".join(str(d) for d in r.output_shape[1:]),
             "params": r.params,
             "field": f"{r.receptive_field}x{r.receptive_field}" if r.receptive_field else "image"}
            for r in layer_table(loaded.model)]
    summary = [line.strip() for line in bundle.describe_run(loaded.run) if line.strip()]
    if not loaded.run:
        summary.append("no run.json: preprocessing assumed to be pixels / 255")
    return {"name": loaded.name, "path": str(loaded.ref.bundle_dir or loaded.ref.model_path),
            "layers": rows, "parameters": parameter_count(loaded.model), "summary": summary,
            "classes": list(class_names(bundle.dataset_of(loaded.run)[0]))}
