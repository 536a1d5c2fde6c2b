"""Darknet53 and CSPDarknet53 backbones as layer rows (fact sheet §1.4).

Both are a stem plus five stride-2 stages and differ only by their stage config: Darknet53
stages are "downsample + residual Bottlenecks"; CSPDarknet53 stages split into a main path
(blocks) and a shortcut path, concatenated and fused by a 1x1 transition conv.  The row indices
are part of the checkpoint contract, so the feature taps are named constants.
"""

from __future__ import annotations

from dataclasses import dataclass

from yolomodels.graph import BottleneckRow, ConcatRow, ConvRow, ResidualRow, Row
from yolomodels.layers import Act

__all__ = [
    "CSPDARKNET53_STAGES",
    "CSPDARKNET53_TAPS",
    "DARKNET53_STAGES",
    "DARKNET53_TAPS",
    "CSPStage",
    "DarkStage",
    "cspdarknet53_rows",
    "darknet53_rows",
]

STEM_CHANNELS = 32


@dataclass(frozen=True)
class DarkStage:
    """Darknet53 stage: 3x3 stride-2 conv to ``channels``, then ``depth`` residual Bottlenecks."""

    channels: int
    depth: int


@dataclass(frozen=True)
class CSPStage:
    """CSPDarknet53 stage: 3x3 s2 conv, then main path ``hidden`` wide with ``depth`` blocks,
    a shortcut 1x1 conv, concat [main, shortcut] and a 1x1 transition to ``out``."""

    channels: int
    hidden: int
    depth: int
    out: int
    block: str  # "bottleneck" (stage 1) or "residual" (stages 2-5)


DARKNET53_STAGES = (
    DarkStage(64, 1),
    DarkStage(128, 2),
    DarkStage(256, 8),
    DarkStage(512, 8),
    DarkStage(1024, 4),
)
DARKNET53_TAPS = (6, 8, 10)
"""Rows giving the stride 8, 16, 32 features."""

CSPDARKNET53_STAGES = (
    CSPStage(64, 64, 1, 64, "bottleneck"),
    CSPStage(128, 64, 2, 128, "residual"),
    CSPStage(256, 128, 8, 256, "residual"),
    CSPStage(512, 256, 8, 512, "residual"),
    CSPStage(1024, 512, 4, 1024, "residual"),
)
CSPDARKNET53_TAPS = (21, 28, 35)
"""Rows giving the stride 8, 16, 32 features."""


def darknet53_rows(act: Act = "silu") -> list[Row]:
    """Rows 0-10 of MindYOLO's YOLOv3: stem + 5 stages (52 convs)."""
    rows = [Row(-1, ConvRow(STEM_CHANNELS, 3, 1, act))]
    for st in DARKNET53_STAGES:
        rows.append(Row(-1, ConvRow(st.channels, 3, 2, act)))
        rows.append(Row(-1, BottleneckRow(st.channels, True, act), st.depth))
    return rows


def cspdarknet53_rows(act: Act = "mish") -> list[Row]:
    """Rows 0-35 of MindYOLO's YOLOv4: stem + 5 CSP stages."""
    rows = [Row(-1, ConvRow(STEM_CHANNELS, 3, 1, act))]
    for st in CSPDARKNET53_STAGES:
        down = len(rows)
        rows.append(Row(-1, ConvRow(st.channels, 3, 2, act)))
        rows.append(Row(-1, ConvRow(st.hidden, 1, 1, act)))
        if st.block == "bottleneck":
            rows.append(Row(-1, BottleneckRow(st.hidden, True, act), st.depth))
        else:
            rows.append(Row(-1, ResidualRow(st.hidden, act), st.depth))
        rows.append(Row(-1, ConvRow(st.hidden, 1, 1, act)))
        rows.append(Row(down, ConvRow(st.hidden, 1, 1, act)))
        rows.append(Row((-2, -1), ConcatRow()))
        rows.append(Row(-1, ConvRow(st.out, 1, 1, act)))
    return rows
