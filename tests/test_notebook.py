"""docs/tour.ipynb runs top to bottom in a real Jupyter kernel and shows what it says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TOUR = Path(__file__).resolve().parent.parent / "docs" / "tour.ipynb"


@pytest.mark.slow
def test_the_tour_notebook_runs_and_its_numbers_are_in_range(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(TOUR, as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code)
    outputs = [o for cell in code for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 4  # activations, patterns, kernels, stats
    text = "".join(o.get("text", "") for o in outputs)
    accuracies = [float(v) for v in re.findall(r"epoch \d: test accuracy ([\d.]+)", text)]
    assert len(accuracies) == 3 and 0.85 <= accuracies[-1] <= 1.0
    assert re.search(r"\(1, 11, 11, 64\) predicted: \d true: \d", text)
    positive = re.search(r"conv3: (\d+)/16 maps with a positive objective", text)
    assert positive and int(positive.group(1)) >= 14
    assert (tmp_path / "trained" / "tour" / "model.keras").is_file()
