"""The attribution methods cnnviz knows, registered once: name, whether a map has a sign,
whether it needs a layer with positions, whether the live page shows it, what it is. The
command line's help, the settings' check, the figures' colour scales, the atlas and the
live page all read this list; `probes/attribution.py` holds one function per name. Imports
no TensorFlow (the command line's help reads it).

Adding a method: one entry here, one function in probes/attribution.py's COMPUTE.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    name: str
    signed: bool       # its maps have a sign: red raises the target logit, blue lowers it
    spatial: bool      # it needs a layer with positions (Grad-CAM): skipped where there is none
    live: bool         # cheap enough for the live page, on every drawing
    description: str


METHODS = (
    Method("saliency", False, False, True, "max over channels of |∂logit/∂input|"),
    Method("gradient-input", True, False, False, "input × gradient, summed over channels"),
    Method("smoothgrad", True, False, False,
           "the gradient averaged over noisy copies of the input"),
    Method("integrated-gradients", True, False, False,
           "(input − baseline) × the gradient averaged along the straight path; complete"),
    Method("grad-cam", False, True, True,
           "a layer's maps weighted by the logit's mean gradient, upsampled"),
    Method("grad-cam++", False, True, False,
           "Grad-CAM with the closed-form weights of Chattopadhay et al. (2018)"),
    Method("occlusion", True, False, False,
           "the logit's drop when a square of the input is set to black"),
)
BY_NAME = {method.name: method for method in METHODS}
NAMES = tuple(BY_NAME)


def signed(name: str) -> bool:
    """Whether `name`'s maps have a sign (unknown names: no)."""
    return name in BY_NAME and BY_NAME[name].signed
