"""Run exported graphs: ONNX Runtime sessions, MindIR graph cells, and a network-like wrapper.

:class:`OnnxRuntimeNetwork` looks to ``predict`` and the evaluation runner like a network from
:func:`hub.load`: it is called with a ``(B, 3, H, W)`` float32 batch (a MindSpore tensor or a
NumPy array) and returns an object with ``asnumpy()`` holding the decoded ``(B, N, 5 + nc)``
output, so letterbox, NMS and back-projection stay exactly the MindSpore backend's.  A batch
of another size than the graph's is run in graph-sized chunks (the last one zero-padded).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from hub.errors import InputDataError

__all__ = ["OnnxRuntimeNetwork", "onnx_input_shape", "open_onnx", "run_mindir"]

log = logging.getLogger(__name__)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def open_onnx(path: str | os.PathLike):
    """An ``onnxruntime.InferenceSession`` on ``path`` (CPU); InputDataError if it is not one."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"ONNX file {path} does not exist; export one with `yolohub export "
                             "NAME --format onnx`")
    if path.stat().st_size == 0:
        raise InputDataError(f"ONNX file {path} is empty (0 bytes); export it again")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's warnings are not ours to show
    try:
        return ort.InferenceSession(str(path), sess_options=options,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own (non-Python-hierarchy) exception types
        raise InputDataError(
            f"{path} is not a loadable ONNX model ({path.stat().st_size} bytes; ONNX Runtime "
            f"says: {_first_line(exc)}); the file is corrupted or truncated, export it again "
            "with `yolohub export NAME --format onnx`"
        ) from None


def onnx_input_shape(session) -> tuple:
    """The graph's input shape, e.g. ``(1, 3, 640, 640)`` (a symbolic dimension stays a str)."""
    return tuple(session.get_inputs()[0].shape)


def run_mindir(path: str | os.PathLike, x: np.ndarray) -> np.ndarray:
    """Load a MindIR file with MindSpore and run it on ``x``; InputDataError if unreadable."""
    import mindspore as ms

    path = Path(path)
    try:
        graph = ms.load(str(path))
    except Exception as exc:  # MindSpore raises RuntimeError/ValueError with C++ traces
        raise InputDataError(
            f"{path} is not a loadable MindIR file ({_first_line(exc)}); export it again "
            "with `yolohub export NAME --format mindir`"
        ) from None
    try:
        out = ms.nn.GraphCell(graph)(ms.Tensor(x))
    except Exception as exc:
        raise InputDataError(
            f"MindIR graph {path} cannot run on an input of shape {tuple(x.shape)} "
            f"({_first_line(exc)}); was it exported for another size or batch?"
        ) from None
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out.asnumpy()


class _Output:
    """What the evaluation runner and predict read from a network's output: ``asnumpy()``."""

    def __init__(self, array: np.ndarray):
        self._array = array

    def asnumpy(self) -> np.ndarray:
        return self._array


class OnnxRuntimeNetwork:
    """An exported ONNX graph with the attributes of a :func:`hub.load` network.

    ``num_classes``, ``class_names``, ``release_id`` and ``card_name`` come from the card;
    ``img_size`` and ``batch`` from the graph's input.  ``onnx_path`` says which file runs;
    ``hub`` is its load record (the card's release, the file and its sha256).
    """

    backend = "onnxruntime"
    training = False
    execution_mode = "onnxruntime"

    def __init__(self, path: str | os.PathLike, *, num_classes: int, class_names=None,
                 release_id: str | None = None, card_name: str | None = None,
                 img_size: int | None = None, record=None):
        self.hub = record  # hub.tasks.record.LoadRecord when made by hub.tasks.deploy
        self.onnx_path = Path(path)
        self.session = open_onnx(self.onnx_path)
        shape = onnx_input_shape(self.session)
        if len(shape) != 4 or shape[1] != 3:
            raise InputDataError(
                f"{self.onnx_path}: expected a detector graph with one (B, 3, H, W) input, "
                f"found input shape {shape}"
            )
        self.input_name = self.session.get_inputs()[0].name
        self.batch = shape[0] if isinstance(shape[0], int) else None
        h, w = shape[2], shape[3]
        if img_size is not None and (h, w) != (img_size, img_size):
            raise InputDataError(
                f"{self.onnx_path} was exported for {h}x{w} inputs (shape {shape}), but "
                f"{img_size}x{img_size} is asked for; export it at that size (`yolohub export "
                f"NAME --format onnx --img-size {img_size}`) or ask for --img-size {h}"
            )
        self.img_size = int(h)
        out = self.session.get_outputs()[0].shape
        if len(out) == 3 and isinstance(out[2], int) and out[2] != num_classes + 5:
            raise InputDataError(
                f"{self.onnx_path} outputs {out[2] - 5} classes per box (shape {tuple(out)}), "
                f"but the card's network has {num_classes}; it was exported from another model"
            )
        self.num_classes = int(num_classes)
        self.class_names = class_names
        self.release_id = release_id
        self.card_name = card_name

    def set_train(self, mode: bool = False):
        if mode:
            raise InputDataError("an ONNX Runtime graph runs inference only; it cannot train")
        return self

    def __call__(self, x):
        x = np.ascontiguousarray(x.asnumpy() if hasattr(x, "asnumpy") else x, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != (3, self.img_size, self.img_size):
            raise InputDataError(
                f"{self.onnx_path} takes (B, 3, {self.img_size}, {self.img_size}) inputs, "
                f"got {tuple(x.shape)}"
            )
        b = self.batch
        if b is None or b == x.shape[0]:
            return _Output(self.session.run(None, {self.input_name: x})[0])
        outs = []
        for start in range(0, x.shape[0], b):
            chunk = x[start : start + b]
            n = chunk.shape[0]
            if n < b:
                chunk = np.concatenate([chunk, np.zeros((b - n, *chunk.shape[1:]), np.float32)])
            outs.append(self.session.run(None, {self.input_name: chunk})[0][:n])
        return _Output(np.concatenate(outs))

    def __repr__(self) -> str:
        return f"OnnxRuntimeNetwork({self.onnx_path}, release={self.release_id})"
