"""The detection heads' output levels (stride, pixel anchors, decode constants) as plain data.

This module owns these facts (fact sheet §2).  The heads build their decode from them, the
losses read them from the network's head (or from here when built without a network), and the
input-size rule of :mod:`yolomodels.sizes` takes the largest stride.  It imports neither
MindSpore nor NumPy, so the hub can ask it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "MAX_STRIDE",
    "NUM_ANCHORS",
    "V3_ANCHORS",
    "V3_LEVELS",
    "V3_STRIDES",
    "V4_LEVELS",
    "Level",
    "V4Level",
]

NUM_ANCHORS = 3
"""Anchors per level in both heads."""


@dataclass(frozen=True)
class Level:
    """One output level: its stride and its pixel anchors ``((w, h), ...)``."""

    stride: int
    anchors: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class V4Level(Level):
    """A YOLOv4 level: adds the scale_x_y grid-sensitivity trick (``sigma * scale - offset``)."""

    scale_xy: float
    offset: float


V3_LEVELS = (
    Level(8, ((10, 13), (16, 30), (33, 23))),
    Level(16, ((30, 61), (62, 45), (59, 119))),
    Level(32, ((116, 90), (156, 198), (373, 326))),
)
"""YOLOv3 levels in head-input (= output) order: stride 8, 16, 32."""

V4_LEVELS = (
    V4Level(32, ((142, 110), (192, 243), (459, 401)), 1.05, 0.025),
    V4Level(16, ((36, 75), (76, 55), (72, 146)), 1.1, 0.05),
    V4Level(8, ((12, 16), (19, 36), (40, 28)), 1.2, 0.1),
)
"""YOLOv4 levels in head-input (= output) order: stride 32, 16, 8."""

V3_STRIDES = tuple(lv.stride for lv in V3_LEVELS)
V3_ANCHORS = tuple(lv.anchors for lv in V3_LEVELS)
"""Pixel anchors per level, strides 8, 16, 32."""

MAX_STRIDE = max(lv.stride for lv in (*V3_LEVELS, *V4_LEVELS))
"""The largest stride of any head: input sides must be multiples of it."""
