"""docs/tour.ipynb runs top to bottom in a real Jupyter kernel and shows what it says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TOUR = Path(__file__).resolve().parent.parent / "docs" / "tour.ipynb"


def counting_client(nbclient, notebook, path):
    """An nbclient NotebookClient that also keeps every message the kernel sent (`.seen`:
    cell index, message type, content)."""
    class Client(nbclient.NotebookClient):
        seen: list = []

        def process_message(self, msg, cell, cell_index):
            self.seen.append((cell_index, msg["msg_type"], msg.get("content", {})))
            return super().process_message(msg, cell, cell_index)

    return Client(notebook, timeout=600, kernel_name="python3",
                  resources={"metadata": {"path": str(path)}})


@pytest.mark.slow
def test_the_tour_notebook_runs_and_its_numbers_are_in_range(tmp_path):
    """Also issue 32: its cnnviz.train shows the curves once and updates that display after
    every epoch (update_display_data, one per epoch), never a new image per epoch."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(TOUR, as_version=4)
    client = counting_client(nbclient, notebook, tmp_path)
    client.execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    trains = next(i for i, cell in enumerate(notebook.cells) if "cnnviz.train(" in cell.source)
    shown = [c for i, kind, c in client.seen if i == trains and kind == "display_data"]
    updates = [c for i, kind, c in client.seen if i == trains and kind == "update_display_data"]
    assert len(shown) == 1 and len(updates) == 3, [kind for _, kind, _ in client.seen]
    assert len({c["transient"]["display_id"] for c in shown + updates}) == 1  # one display
    assert all("image/png" in c["data"] for c in updates)
    assert updates[-1]["data"]["text/plain"] == "tour: epoch 3 of 3"
    assert all(cell.execution_count for cell in code)
    outputs = [o for cell in code for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # the training curves (one display, redrawn each epoch), activations, patterns, kernels, stats
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 5
    text = "".join(o.get("text", "") for o in outputs)
    accuracies = [float(v) for v in re.findall(r"epoch \d: test accuracy ([\d.]+)", text)]
    assert len(accuracies) == 3 and 0.85 <= accuracies[-1] <= 1.0
    assert re.search(r"\(1, 11, 11, 64\) predicted: \d true: \d", text)
    positive = re.search(r"conv3: (\d+)/16 maps with a positive objective", text)
    assert positive and int(positive.group(1)) >= 14
    assert (tmp_path / "trained" / "tour" / "model.keras").is_file()


GOOD_CITIZEN = [
    "%matplotlib inline\nimport logging, matplotlib\n"
    "import tensorflow, keras  # as a Keras user's kernel has them (in a kernel TensorFlow sets its\n"
    "tensorflow.get_logger()  # logger to INFO itself): what cnnviz does comes after this line\n"
    "before = (logging.getLogger('tensorflow').level, logging.getLogger('absl').level,"
    " matplotlib.get_backend())",
    "import warnings\nimport numpy as np\nimport cnnviz\n"
    "with warnings.catch_warnings(record=True) as caught:\n"
    "    warnings.simplefilter('always')\n"
    "    m = cnnviz.load('a2', trained_dir={trained!r}, data={data!r})\n"
    "    a = m.activations([0, 1], layers='conv2')\n"
    "    p = m.patterns('conv1', maps=[0, 1], steps=3, data_starts=0)\n"
    "    e = m.explain([0], methods='saliency')\n"
    "    s = m.stats(layers='conv1', limit=60, top=2)\n"
    "    fig = a.show(image=0)\n"
    "keras_said = [str(w.message) for w in caught if 'structure of `inputs`' in str(w.message)]\n"
    "print('keras warnings:', len(keras_said))",
    "import keras\n"
    "plain = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(2, 3),"
    " keras.layers.Flatten(), keras.layers.Dense(10)])\n"
    "with warnings.catch_warnings(record=True) as caught:\n"
    "    warnings.simplefilter('default')\n"
    "    cnnviz.load(plain)\n"
    "ours = [str(w.message) for w in caught if issubclass(w.category, cnnviz.CnnvizWarning)]\n"
    "print('cnnviz warnings:', len(ours), '|', ours[0] if ours else '')",
    "after = (logging.getLogger('tensorflow').level, logging.getLogger('absl').level,"
    " matplotlib.get_backend())\nprint('same state:', before == after, before, after)",
    "import matplotlib.pyplot as plt\nplt.plot([0, 1])\nplt.show()",
]


@pytest.mark.slow
def test_the_library_leaves_a_notebook_as_it_found_it(tmp_path, trained, small_npz):
    """Issue 28: in a real kernel the user's backend, loggers and plt.show() stay theirs; a
    plain model fed pixels / 255 is said once, naming preprocess=; Keras says nothing."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source.replace("{trained!r}", repr(str(trained)))
                                                .replace("{data!r}", repr(str(small_npz))))
                      for source in GOOD_CITIZEN]
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [cell.outputs for cell in notebook.cells]
    assert not [o for cell in outputs for o in cell if o.output_type == "error"], outputs
    text = ["".join(o.get("text", "") for o in cell) for cell in outputs]
    assert "keras warnings: 0" in text[1]
    assert "cnnviz warnings: 1 | input: assumed pixels / 255 (unit); pass preprocess=" in text[2]
    assert "same state: True" in text[3], text[3]
    assert any("image/png" in o.get("data", {}) for o in outputs[4])  # the user's own plot shows
