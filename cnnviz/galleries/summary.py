"""The model card stored in outputs/NAME/manifest.json: what the HTML page shows at the top."""

from __future__ import annotations

from cnnviz import bundle
from cnnviz.model import LoadedModel, layer_table, parameter_count


def model_card(loaded: LoadedModel) -> dict:
    """Name, source, architecture table, run summary lines and class names of a model."""
    rows = [{"name": r.name, "kind": r.kind + (" (nested model)" if r.nested else ""),
             "shape": "x".join(str(d) for d in r.output_shape[1:]), "params": r.params,
             "field": r.field_text()}
            for r in layer_table(loaded.model)]
    summary = [line.strip() for line in bundle.describe_run(loaded.run) if line.strip()]
    prep = loaded.preprocessing
    how = "recorded in the bundle" if loaded.run else (
        "assumed (no preprocess given)" if prep.origin == "default" else prep.origin)
    summary.append(f"input: {prep.describe()}, {how}")
    return {"name": loaded.name, "path": str(loaded.ref.bundle_dir or loaded.ref.model_path),
            "layers": rows, "parameters": parameter_count(loaded.model), "summary": summary,
            "input": prep.describe(), "classes": list(loaded.classes())}
