"""What an export is made for and whether it reproduces the network: the input checks (format,
size, batch) and the check ``hub.export`` and ``hub.publish_asset`` run before they report success.

The exported file is loaded back with its own runtime (MindIR through MindSpore, ONNX through
ONNX Runtime), run on a fixed seeded input and compared with the MindSpore network's raw output,
field by field; above :data:`REL_TOLERANCE` the export is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hub.cards.card import Release
from hub.errors import InputDataError

__all__ = ["FORMATS", "REL_TOLERANCE", "Verification", "check_batch", "check_format",
           "check_img_size", "compare_outputs", "default_img_size", "fixed_input",
           "reference_output", "run_exported", "verify_exported"]

FORMATS = ("mindir", "onnx")
MAX_BATCH = 256
REL_TOLERANCE = 1e-4
_RUNTIME = {"mindir": "mindspore", "onnx": "onnxruntime"}


@dataclass(frozen=True)
class Verification:
    """The exported file's output on the fixed input, against the MindSpore network's."""

    runtime: str  # what ran the exported file: mindspore (MindIR) or onnxruntime (ONNX)
    max_abs_diff: float
    max_rel_diff: float
    """Largest difference divided by the largest magnitude of its output field (x, y, w, h,
    objectness, each class score), so boxes in pixels and scores in [0, 1] count alike."""
    tolerance: float
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.max_rel_diff)) and self.max_rel_diff <= self.tolerance

    def describe(self) -> str:
        return (f"max abs diff {self.max_abs_diff:.3g}, max rel diff {self.max_rel_diff:.3g} "
                f"(limit {self.tolerance:g}) on a fixed {'x'.join(map(str, self.input_shape))} "
                f"input, run by {self.runtime}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
            "tolerance": self.tolerance,
            "ok": self.ok,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verification:
        return cls(d["runtime"], float(d["max_abs_diff"]), float(d["max_rel_diff"]),
                   float(d["tolerance"]), tuple(d["input_shape"]), tuple(d["output_shape"]),
                   float(d.get("seconds", 0.0)))



def fixed_input(batch: int, img_size: int) -> np.ndarray:
    """The verification input: a seeded image-like batch in [0, 1], the same on every machine."""
    rng = np.random.RandomState(20240614)
    return rng.random_sample((batch, 3, img_size, img_size)).astype(np.float32)


def compare_outputs(reference: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """(max absolute difference, max difference relative to each output field's magnitude)."""
    reference = np.asarray(reference, np.float64)
    other = np.asarray(other, np.float64)
    if reference.shape != other.shape:
        return float("inf"), float("inf")
    diff = np.abs(reference - other)
    if diff.size == 0:
        return 0.0, 0.0
    fields = reference.reshape(-1, reference.shape[-1])
    scale = np.maximum(np.abs(fields).max(axis=0), 1e-3)  # per field: x, y, w, h, obj, classes
    rel = diff.reshape(-1, reference.shape[-1]) / scale
    worst_abs = float(diff.max()) if np.isfinite(diff).all() else float("inf")
    worst_rel = float(rel.max()) if np.isfinite(rel).all() else float("inf")
    return worst_abs, worst_rel


def run_exported(path: Path, fmt: str, x: np.ndarray) -> np.ndarray:
    """Load ``path`` back with its own runtime and run it on ``x``."""
    if fmt == "mindir":
        from hub.tasks.backends import run_mindir

        return run_mindir(path, x)
    from hub.tasks.backends import onnx_input_shape, open_onnx

    session = open_onnx(path)
    shape = onnx_input_shape(session)
    if tuple(shape) != tuple(x.shape):
        raise InputDataError(
            f"ONNX file {path} takes inputs of shape {tuple(shape)}, not {tuple(x.shape)}; "
            "export it for that size and batch"
        )
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def verify_exported(path: Path, fmt: str, x: np.ndarray, reference: np.ndarray) -> Verification:
    t = time.perf_counter()
    got = run_exported(path, fmt, x)
    worst_abs, worst_rel = compare_outputs(reference, got)
    return Verification(_RUNTIME[fmt], worst_abs, worst_rel, REL_TOLERANCE, tuple(x.shape),
                        tuple(np.shape(got)), time.perf_counter() - t)


def reference_output(net, x: np.ndarray) -> np.ndarray:
    import mindspore as ms

    out = net(ms.Tensor(x))
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out.asnumpy()


# --- checks -------------------------------------------------------------------------------------


def check_format(fmt: str) -> str:
    f = str(fmt).strip().lower().lstrip(".")
    if f not in FORMATS:
        raise InputDataError(
            f"export format {fmt!r} is not supported; expected one of {', '.join(FORMATS)}"
        )
    return f


def check_img_size(img_size) -> int:
    """``img_size`` under yolomodels' input-size rule; its error becomes :class:`InputDataError`."""
    from yolomodels.errors import ImageSizeError
    from yolomodels.sizes import check_img_size as size_rule

    try:
        return size_rule(img_size, what="image size")
    except ImageSizeError as exc:
        raise InputDataError(str(exc)) from None


def check_batch(batch) -> int:
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) \
            or not 1 <= batch <= MAX_BATCH:
        raise InputDataError(f"batch must be an integer from 1 to {MAX_BATCH}, got {batch!r}")
    return int(batch)


def default_img_size(release: Release) -> int:
    """The size a card's network is meant to run at: its eval protocol's, else its builder's."""
    card = release.card
    if card.eval_protocol is not None:
        return int(card.eval_protocol.img_size)
    args = card.architecture.args if card.architecture else {}
    return int(args.get("img_size", 640))
