"""Helpers shared by the network, checkpoint, loader and predict tests.

Import with ``from nethelpers import ...`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

MANIFEST_PATH = Path("/work/shared/reference/mindyolo-param-manifest.json")
# registered architecture -> key in the MindYOLO parameter manifest
MANIFEST_KEYS = {
    "yolov3_darknet53": "yolov3",
    "yolov4_cspdarknet53": "yolov4",
    "yolov4_cspdarknet53_silu": "yolov4-silu",
}

# Values of YOLOv3Head's non-trainable checkpoint entries (fact sheet §1.5).
V3_PIXEL_ANCHORS = np.array(
    [[[10, 13], [16, 30], [33, 23]], [[30, 61], [62, 45], [59, 119]], [[116, 90], [156, 198], [373, 326]]],
    np.float32,
)
V3_BUFFERS = {
    "model.model.28.stride": np.array([8, 16, 32], np.int32),
    "model.model.28.anchors": V3_PIXEL_ANCHORS / np.array([8, 16, 32], np.float32)[:, None, None],
    "model.model.28.anchor_grid": V3_PIXEL_ANCHORS.reshape(3, 1, 3, 1, 1, 2),
}

SCALED = {"depth_multiple": 0.33, "width_multiple": 0.25}


def manifest(arch: str) -> list[tuple[str, tuple[int, ...]]]:
    """MindYOLO's (name, shape) list for ``arch``, in ``get_parameters()`` order."""
    data = json.loads(MANIFEST_PATH.read_text())
    return [(name, tuple(shape)) for name, shape in data[MANIFEST_KEYS[arch]]]


def synthetic_value(name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """The fact sheet's name-seeded weight rule (§9.2); None for the head's fixed buffers."""
    rng = np.random.RandomState(zlib.crc32(name.encode()) & 0xFFFFFFFF)
    if name.endswith("moving_mean"):
        v = 0.1 * rng.standard_normal(shape)
    elif name.endswith("moving_variance"):
        v = 0.5 + rng.random_sample(shape)
    elif name.endswith("gamma"):
        v = 1 + 0.1 * rng.standard_normal(shape)
    elif name.endswith(("beta", "bias")):
        v = 0.1 * rng.standard_normal(shape)
    elif name.endswith("weight") and len(shape) == 4:
        v = rng.standard_normal(shape) * np.sqrt(1.3 / int(np.prod(shape[1:])))
    else:
        return None
    return v.astype(np.float32)


def manifest_entries(arch: str, *, prefix: str = "") -> list[tuple[str, np.ndarray]]:
    """Every manifest entry with its synthetic (or fixed buffer) value, names as in the manifest."""
    out = []
    for name, shape in manifest(arch):
        value = synthetic_value(name, shape)
        if value is None:
            value = V3_BUFFERS[name]
        assert value.shape == shape, name
        out.append((prefix + name, value))
    return out


def write_mindspore_checkpoint(entries, path: Path) -> Path:
    """Write ``(name, array)`` pairs with ``mindspore.save_checkpoint`` (no yolomodels code)."""
    import mindspore as ms
    from mindspore import Tensor

    ms.save_checkpoint([{"name": n, "data": Tensor(v)} for n, v in entries], str(path))
    return path


def structured_input(size: int = 320) -> np.ndarray:
    """The fact sheet's structured input S (§9.2), shape (1, 3, size, size)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    c0 = 0.5 + 0.5 * np.sin(xx / 9) * np.cos(yy / 13)
    c1 = (xx // 40 + yy // 40) % 2
    c2 = np.where((xx - 160) ** 2 + (yy - 120) ** 2 < 70**2, 0.9, 0.1)
    return np.stack([c0, c1, c2])[None].astype(np.float32)


def small_net(arch: str, **kwargs):
    """A scaled-down network (depth 0.33, width 0.25) for fast tests."""
    import yolomodels

    return yolomodels.build(arch, **{**SCALED, **kwargs})
