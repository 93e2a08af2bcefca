"""Results of the checks of what the network computes: one traced value (`m.trace`) and a
whole model verified against an independent NumPy forward pass (`m.verify`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnviz.atomic import write_json
from cnnviz.names import slug
from cnnviz.render.shown import Shown as _Shown
from cnnviz.render.shown import figure_name as _figure_name
from cnnviz.render.shown import figure_output_of as _figure_output


@dataclass(repr=False)
class TraceResult(_Shown):
    """Every step behind one value: `steps` (kind, layer, text, value, arrays, numbers),
    `traced` (float64) against `reported` (what Keras gives), `ok`; `pixels` the image as
    fed (H, W[, C]) with `field` the input pixels the value sees."""

    trace: object
    pixels: np.ndarray
    image: str

    def __repr__(self) -> str:
        return f"<trace: {self.summary}>"

    @property
    def steps(self) -> list:
        return self.trace.steps

    @property
    def traced(self) -> float:
        return self.trace.traced

    @property
    def reported(self) -> float:
        return self.trace.reported

    @property
    def ok(self) -> bool:
        return self.trace.ok

    @property
    def field(self):
        return self.trace.field

    @property
    def summary(self) -> str:
        return self.trace.summary()

    @property
    def stem(self) -> str:
        where = "-".join(map(str, self.trace.at)) if self.trace.at is not None else "unit"
        return f"trace-{slug(self.trace.layer)}-{self.trace.map}-{where}-{self.image}"

    def numbers(self) -> dict:
        """Everything as JSON: each step's text, value, numbers and arrays (as lists)."""
        t = self.trace
        return {"layer": t.layer, "map": t.map, "at": list(t.at) if t.at else None,
                "image": self.image, "traced": t.traced, "reported": t.reported,
                "difference": t.error, "scale": t.scale, "ok": t.ok,
                "field": list(t.field) if t.field else None,
                "steps": [{"kind": s.kind, "layer": s.layer, "text": s.text, "value": s.value,
                           "numbers": s.numbers,
                           "arrays": {k: _finite(np.asarray(v).tolist())
                                      for k, v in s.arrays.items()}}
                          for s in t.steps]}

    def show(self):
        from cnnviz.render.trace import trace_figure

        return trace_figure(self.trace, self.pixels, f"{self.trace.layer} · map {self.trace.map}"
                            + (f" at {self.trace.at}" if self.trace.at else "")
                            + f" · {self.image}")

    @_figure_output
    def save(self, folder: str | Path) -> list[Path]:
        from cnnviz.render.figures import save_figure

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / f"{self.stem}.json", self.numbers())
        return [folder / f"{self.stem}.json",
                save_figure(self.show(), folder / _figure_name(self.stem))]


def _finite(value):
    """Nested lists with ±inf and NaN (a pool's padding) as None: valid JSON."""
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@dataclass(repr=False)
class VerificationResult(_Shown):
    """Per layer the largest deviation of the NumPy pass from Keras (`layers`: address, kind,
    max_abs, max_rel), `ok`, and `stopped_at` (address, kind) of a layer it cannot compute."""

    verification: object
    model: str

    def __repr__(self) -> str:
        return f"<verification of {self.model}: {self.summary}>"

    @property
    def ok(self) -> bool:
        return self.verification.ok

    @property
    def layers(self) -> list:
        return self.verification.layers

    @property
    def stopped_at(self):
        return self.verification.stopped_at

    @property
    def summary(self) -> str:
        v = self.verification
        worst = v.worst
        if v.stopped_at is not None:
            return (f"stopped at {v.stopped_at[0]} ({v.stopped_at[1]}): no NumPy implementation"
                    f"; the {len(v.layers)} layers before it "
                    + ("agree" if all(c.ok(v.tolerance) for c in v.layers) else "deviate"))
        if worst is None:
            return "no layer to check"
        bad = [c.address for c in v.layers if not c.ok(v.tolerance)]
        if bad:
            return (f"DEVIATES at {', '.join(bad[:3])}{' …' if len(bad) > 3 else ''}: a NumPy "
                    f"pass disagrees with Keras by up to {worst.max_rel:.2g} (relative) over "
                    f"{v.images} images")
        return (f"verified: an independent float64 NumPy pass equals Keras on all "
                f"{len(v.layers)} layers over {v.images} images (largest relative deviation "
                f"{worst.max_rel:.1e}, at {worst.address}; tolerance {v.tolerance:g})")

    @property
    def table(self) -> str:
        from cnnviz.render.trace import verification_lines

        return "\n".join(verification_lines(self.verification))

    def numbers(self) -> dict:
        v = self.verification
        return {"model": self.model, "images": v.images, "tolerance": v.tolerance, "ok": v.ok,
                "summary": self.summary,
                "stopped_at": list(v.stopped_at) if v.stopped_at else None,
                "layers": [{"layer": c.address, "kind": c.kind, "max_abs": c.max_abs,
                            "max_rel": c.max_rel, "ok": c.ok(v.tolerance)} for c in v.layers]}

    def show(self):
        from cnnviz.render.trace import verification_figure

        return verification_figure(self.verification, f"{self.model}: NumPy against Keras")

    @_figure_output
    def save(self, folder: str | Path) -> list[Path]:
        from cnnviz.render.figures import save_figure

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "verify.json", self.numbers())
        return [folder / "verify.json", save_figure(self.show(), folder / _figure_name("verify"))]
