"""YOLOv3 FPN neck and YOLOv4 SPP + PAN neck as layer rows (fact sheet §1.4).

Rows continue the backbone's running index, so every ``source`` below is either relative
(negative) or an absolute backbone tap.  In every concat the upsampled (or downsampled) tensor
comes first, then the lateral one; YOLOv4's SPP concatenates [pool13, pool9, pool5, x].
"""

from __future__ import annotations

from yolomodels.backbones import CSPDARKNET53_TAPS, DARKNET53_TAPS
from yolomodels.graph import BottleneckRow, ConcatRow, ConvRow, MaxPoolRow, Row, UpsampleRow
from yolomodels.layers import Act

__all__ = ["V3_NECK_OUTPUTS", "V4_NECK_OUTPUTS", "v3_fpn_rows", "v4_spp_pan_rows"]

V3_NECK_OUTPUTS = (27, 22, 15)
"""Rows feeding the YOLOv3 head: strides 8, 16, 32."""
V4_NECK_OUTPUTS = (65, 62, 57)
"""Rows feeding the YOLOv4 head: strides 32, 16, 8."""
SPP_KERNELS = (5, 9, 13)


def v3_fpn_rows(act: Act = "silu") -> list[Row]:
    """Rows 11-27: ultralytics-v9-style top-down FPN over Darknet53 taps."""
    p3, p4, _ = DARKNET53_TAPS
    return [
        Row(-1, BottleneckRow(1024, False, act)),  # 11
        Row(-1, ConvRow(512, 1, 1, act)),
        Row(-1, ConvRow(1024, 3, 1, act)),
        Row(-1, ConvRow(512, 1, 1, act)),
        Row(-1, ConvRow(1024, 3, 1, act)),  # 15: P5 out
        Row(-2, ConvRow(256, 1, 1, act)),
        Row(-1, UpsampleRow()),
        Row((-1, p4), ConcatRow()),
        Row(-1, BottleneckRow(512, False, act)),
        Row(-1, BottleneckRow(512, False, act)),
        Row(-1, ConvRow(256, 1, 1, act)),
        Row(-1, ConvRow(512, 3, 1, act)),  # 22: P4 out
        Row(-2, ConvRow(128, 1, 1, act)),
        Row(-1, UpsampleRow()),
        Row((-1, p3), ConcatRow()),
        Row(-1, BottleneckRow(256, False, act)),
        Row(-1, BottleneckRow(256, False, act), 2),  # 27: P3 out
    ]


def v4_spp_pan_rows(act: Act = "leaky_relu") -> list[Row]:
    """Rows 36-65: SPP on the stride-32 tap, then PAN top-down and bottom-up paths."""
    p3, p4, _ = CSPDARKNET53_TAPS
    k5, k9, k13 = SPP_KERNELS
    return [
        Row(-1, BottleneckRow(1024, False, act)),  # 36
        Row(-1, ConvRow(512, 1, 1, act)),
        Row(-1, MaxPoolRow(k5)),
        Row(-2, MaxPoolRow(k9)),
        Row(-3, MaxPoolRow(k13)),
        Row((-1, -2, -3, -4), ConcatRow()),  # 41: [pool13, pool9, pool5, x]
        Row(-1, ConvRow(512, 1, 1, act)),
        Row(-1, ConvRow(1024, 3, 1, act)),
        Row(-1, ConvRow(512, 1, 1, act)),  # 44: P5 neck output
        Row(-1, ConvRow(256, 1, 1, act)),
        Row(-1, UpsampleRow()),
        Row(p4, ConvRow(256, 1, 1, act)),
        Row((-2, -1), ConcatRow()),
        Row(-1, BottleneckRow(512, False, act), 2),
        Row(-1, ConvRow(256, 1, 1, act)),  # 50
        Row(-1, ConvRow(128, 3, 1, act)),  # 51: a 3x3 conv in MindYOLO, not 1x1
        Row(-1, UpsampleRow()),
        Row(p3, ConvRow(128, 1, 1, act)),
        Row((-2, -1), ConcatRow()),
        Row(-1, BottleneckRow(256, False, act), 2),
        Row(-1, ConvRow(128, 1, 1, act)),  # 56
        Row(-1, ConvRow(256, 3, 1, act)),  # 57: P3 head input
        Row(-2, ConvRow(256, 3, 2, act)),
        Row((-1, -9), ConcatRow()),  # 59: [down, row 50]
        Row(-1, BottleneckRow(512, False, act), 2),
        Row(-1, ConvRow(256, 1, 1, act)),  # 61
        Row(-1, ConvRow(512, 3, 1, act)),  # 62: P4 head input
        Row(-2, ConvRow(512, 3, 2, act)),
        Row((-1, -20), ConcatRow()),  # 64: [down, row 44]
        Row(-1, BottleneckRow(1024, False, act), 3),  # 65: P5 head input
    ]
