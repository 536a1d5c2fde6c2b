"""YOLOv3 and YOLOv4 detection heads: one 1x1 conv per level plus the anchor decode (fact sheet §2).

Strides and anchors come from :mod:`yolomodels.levels`; each head keeps the levels it was built
with as ``levels``, which the losses read, and says which of its parameters depend on the class
count (:data:`CLASS_PARAMS`, the per-level convs ``m``).

Channel ``c`` of a level's conv output belongs to anchor ``c // (5 + nc)`` and field
``c % (5 + nc)`` (box 0-3, objectness 4, classes 5...).  In eval mode both heads return one
decoded tensor ``(B, N, 5 + nc)``: centre x, centre y, width, height in input pixels, then
sigmoided objectness and class scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from yolomodels.levels import (
    NUM_ANCHORS,
    V3_ANCHORS,
    V3_LEVELS,
    V3_STRIDES,
    V4_LEVELS,
    Level,
    V4Level,
)

__all__ = [
    "CLASS_PARAMS",
    "V3_ANCHORS",
    "V3_LEVELS",
    "V3_STRIDES",
    "V4_LEVELS",
    "V3HeadRow",
    "V4HeadRow",
    "V4Level",
    "YOLOv3Head",
    "YOLOv4Head",
]

CLASS_PARAMS = "m.*"
"""fnmatch pattern, relative to a head, of the parameters whose shape depends on the class count."""


def _grid(h: int, w: int):
    """(h, w, 2) float grid of (column, row) cell indices."""
    gy, gx = ops.meshgrid(ops.arange(h), ops.arange(w), indexing="ij")
    return ops.stack((gx, gy), -1).astype(ms.float32)


def _detect_convs(ch: tuple[int, ...], outputs: int) -> nn.CellList:
    return nn.CellList(
        [nn.Conv2d(c, outputs, 1, pad_mode="valid", has_bias=True) for c in ch]
    )


class YOLOv3Head(nn.Cell):
    """YOLOv5-style decode: xy = (2 sigma - 0.5 + grid) * stride, wh = (2 sigma)^2 * anchor.

    Carries ``stride`` (int32), ``anchors`` (grid units) and ``anchor_grid`` (pixels) as
    non-trainable Parameters because MindYOLO checkpoints contain them.  Training mode returns
    the raw maps ``(B, 3, H, W, 5 + nc)`` for strides 8, 16, 32.
    """

    def __init__(
        self, num_classes: int, ch: tuple[int, ...], *, levels: tuple[Level, ...] = V3_LEVELS
    ):
        super().__init__()
        self.nc = num_classes
        self.no = num_classes + 5
        self.nl = len(levels)
        self.levels = tuple(levels)
        px = np.asarray([lv.anchors for lv in levels], np.float32).reshape(self.nl, NUM_ANCHORS, 2)
        st = np.asarray([lv.stride for lv in levels], np.int32)
        self.stride = Parameter(Tensor(st), name="stride", requires_grad=False)
        self.anchors = Parameter(
            Tensor(px / st.astype(np.float32)[:, None, None]), name="anchors", requires_grad=False
        )
        self.anchor_grid = Parameter(
            Tensor(px.reshape(self.nl, 1, NUM_ANCHORS, 1, 1, 2)),
            name="anchor_grid",
            requires_grad=False,
        )
        self.m = _detect_convs(ch, NUM_ANCHORS * self.no)

    def init_bias_prior(self, *, reference_size: int = 640) -> None:
        """Objectness/class bias offsets (fact sheet §1.7), added to the current biases."""
        for conv, s in zip(self.m, self.stride.asnumpy().tolist()):
            b = conv.bias.asnumpy().reshape(NUM_ANCHORS, self.no).astype(np.float64)
            b[:, 4] += math.log(8 / (reference_size / s) ** 2)
            b[:, 5:] += math.log(0.6 / (self.nc - 0.999999))
            conv.bias.set_data(Tensor(b.reshape(-1).astype(np.float32)))

    def construct(self, xs):
        raws = ()
        decoded = ()
        for i in range(self.nl):
            out = self.m[i](xs[i])
            bs, _, h, w = out.shape
            out = out.reshape(bs, NUM_ANCHORS, self.no, h, w).transpose(0, 1, 3, 4, 2)
            raws = raws + (out,)
            if not self.training:
                y = ops.sigmoid(out)
                stride = self.stride[i].astype(ms.float32)
                xy = (y[..., 0:2] * 2.0 - 0.5 + _grid(h, w)) * stride
                wh = (y[..., 2:4] * 2.0) ** 2 * self.anchor_grid[i]
                y = ops.concat((xy, wh, y[..., 4:]), -1)
                decoded = decoded + (y.reshape(bs, -1, self.no),)
        if self.training:
            return raws
        return ops.concat(decoded, 1)


class YOLOv4Head(nn.Cell):
    """Scaled-sigmoid xy and exp wh decode; inputs and outputs ordered stride 32, 16, 8.

    Training mode returns, per level, ``(raw (B, H, W, 3, 5 + nc), box_xy, box_wh)`` with the
    boxes normalised to [0, 1] of the input.  No Parameters besides the convs.
    """

    def __init__(
        self, num_classes: int, ch: tuple[int, ...], *, levels: tuple[V4Level, ...] = V4_LEVELS
    ):
        super().__init__()
        self.nc = num_classes
        self.no = num_classes + 5
        self.nl = len(levels)
        self.levels = tuple(levels)
        self.strides = tuple(lv.stride for lv in levels)
        self.scales = tuple(lv.scale_xy for lv in levels)
        self.offsets = tuple(lv.offset for lv in levels)
        self.level_anchors = tuple(
            Tensor(np.asarray(lv.anchors, np.float32).reshape(1, 1, 1, NUM_ANCHORS, 2))
            for lv in levels
        )
        self.m = _detect_convs(ch, NUM_ANCHORS * self.no)

    def construct(self, xs):
        levels = ()
        decoded = ()
        for i in range(self.nl):
            out = self.m[i](xs[i])
            bs, _, h, w = out.shape
            p = out.reshape(bs, NUM_ANCHORS, self.no, h, w).transpose(0, 3, 4, 1, 2)
            grid = _grid(h, w).reshape(1, h, w, 1, 2)
            size = Tensor(np.array([w, h], np.float32))
            input_size = size * self.strides[i]
            box_xy = (ops.sigmoid(p[..., 0:2]) * self.scales[i] - self.offsets[i] + grid) / size
            box_wh = ops.exp(p[..., 2:4]) * self.level_anchors[i] / input_size
            if self.training:
                levels = levels + ((p, box_xy, box_wh),)
            else:
                y = ops.concat(
                    (box_xy * input_size, box_wh * input_size, ops.sigmoid(p[..., 4:])), -1
                )
                decoded = decoded + (y.reshape(bs, -1, self.no),)
        if self.training:
            return levels
        return ops.concat(decoded, 1)


@dataclass(frozen=True)
class V3HeadRow:
    """Layer-row spec building a :class:`YOLOv3Head` on the rows it reads."""

    num_classes: int

    def build(self, c_in, scale):
        return YOLOv3Head(self.num_classes, tuple(c_in)), 0


@dataclass(frozen=True)
class V4HeadRow:
    """Layer-row spec building a :class:`YOLOv4Head` on the rows it reads."""

    num_classes: int

    def build(self, c_in, scale):
        return YOLOv4Head(self.num_classes, tuple(c_in)), 0
