"""Training curves that grow in a Jupyter cell: one display, redrawn after every epoch
(IPython's display_id: the kernel sends update_display_data, not a new image per epoch)."""

from __future__ import annotations


def in_kernel() -> bool:
    """Whether this process is a Jupyter kernel (where a display can be updated)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LiveCurves:
    """The curves of one training run, shown once and then updated in place."""

    def __init__(self, name: str, epochs: int):
        from IPython.display import display

        self.name, self.epochs = name, epochs
        self.handle = display({"text/plain": f"{name}: training; the curves appear after the "
                               "first epoch (Kernel → Interrupt stops it: the bundle keeps its "
                               "last finished epoch)"}, raw=True, display_id=True)

    def update(self, history: dict, epoch: int) -> None:
        import base64

        from cnnviz.render.figures import png_bytes, training_curves

        figure = training_curves(history, None, title=f"{self.name}: epoch {epoch} of "
                                 f"{self.epochs}")
        self.handle.update({"image/png": base64.b64encode(png_bytes(figure)).decode("ascii"),
                            "text/plain": f"{self.name}: epoch {epoch} of {self.epochs}"},
                           raw=True)
