"""Typed layer rows and the indexed layer graph every detector is assembled from.

A detector is a list of :class:`Row` objects — *where the input comes from* plus a typed block
spec — turned into one ``nn.CellList``.  This reproduces MindYOLO's checkpoint layout
(``model.model.<row index>.<block>...``) natively, without YAML or ``eval``, so a released
checkpoint loads with no renaming step.  Scaling follows MindYOLO's rules (fact sheet §1.1):
repeats ``n > 1`` become ``max(round(n * depth), 1)`` and conv widths become
``ceil(c * width / 8) * 8``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from mindspore import nn
from mindspore.common.initializer import HeUniform, Uniform, initializer

from yolomodels.layers import (
    Act,
    Bottleneck,
    Concat,
    ConvNormAct,
    MaxPoolSame,
    Residualblock,
    Upsample,
)

__all__ = [
    "BottleneckRow",
    "ConcatRow",
    "ConvRow",
    "LayerGraph",
    "MaxPoolRow",
    "ResidualRow",
    "Row",
    "Scale",
    "UpsampleRow",
    "init_weights",
    "last_row_prefix",
]


@dataclass(frozen=True)
class Scale:
    """Depth and width multiples (1.0 = the released full-size networks)."""

    depth: float = 1.0
    width: float = 1.0

    def channels(self, c: int) -> int:
        return int(math.ceil(c * self.width / 8) * 8)

    def repeats(self, n: int) -> int:
        return max(round(n * self.depth), 1) if n > 1 else n


class Block(Protocol):
    """A block spec: builds one cell from its input channel counts and says its output width."""

    def build(self, c_in: tuple[int, ...], scale: Scale) -> tuple[nn.Cell, int]: ...


@dataclass(frozen=True)
class ConvRow:
    c2: int
    k: int = 1
    s: int = 1
    act: Act = "silu"

    def build(self, c_in, scale):
        c2 = scale.channels(self.c2)
        return ConvNormAct(c_in[0], c2, self.k, self.s, act=self.act), c2


@dataclass(frozen=True)
class BottleneckRow:
    c2: int
    shortcut: bool = True
    act: Act = "silu"

    def build(self, c_in, scale):
        c2 = scale.channels(self.c2)
        return Bottleneck(c_in[0], c2, shortcut=self.shortcut, act=self.act), c2


@dataclass(frozen=True)
class ResidualRow:
    c2: int
    act: Act = "silu"

    def build(self, c_in, scale):
        c2 = scale.channels(self.c2)
        return Residualblock(c_in[0], c2, act=self.act), c2


@dataclass(frozen=True)
class ConcatRow:
    def build(self, c_in, scale):
        return Concat(1), sum(c_in)


@dataclass(frozen=True)
class UpsampleRow:
    def build(self, c_in, scale):
        return Upsample(), c_in[0]


@dataclass(frozen=True)
class MaxPoolRow:
    k: int

    def build(self, c_in, scale):
        return MaxPoolSame(self.k), c_in[0]


@dataclass(frozen=True)
class Row:
    """One layer: ``source`` (-1 previous, other negatives relative, >= 0 absolute), block, repeats."""

    source: int | tuple[int, ...]
    block: Block
    n: int = 1


class LayerGraph(nn.Cell):
    """The rows as one indexed ``nn.CellList`` (attribute ``model``), run in order.

    A row with a tuple source receives a tuple of earlier outputs; the graph returns the last
    row's output.  Only outputs that a later row reads (other than its predecessor) are kept.
    """

    def __init__(self, rows: Sequence[Row], *, in_channels: int = 3, scale: Scale = Scale()):
        super().__init__()
        cells, sources, multi, widths, lines = [], [], [], [], []
        for i, row in enumerate(rows):
            src = row.source if isinstance(row.source, tuple) else (row.source,)
            absolute = tuple(s if s >= 0 else i + s for s in src)
            if any(not -1 <= a < i for a in absolute):
                raise ValueError(f"row {i} reads {row.source}, which is not an earlier row")
            c_in = tuple(in_channels if a == -1 else widths[a] for a in absolute)
            n = scale.repeats(row.n)
            if n > 1:
                blocks = []
                for _ in range(n):
                    cell, c_out = row.block.build(c_in, scale)
                    blocks.append(cell)
                    c_in = (c_out,)
                cell = nn.SequentialCell(blocks)
            else:
                cell, c_out = row.block.build(c_in, scale)
            cells.append(cell)
            sources.append(absolute)
            multi.append(isinstance(row.source, tuple))
            widths.append(c_out)
            lines.append((i, row.source, n, type(row.block).__name__, c_out))
        read_later = {a for i, s in enumerate(sources) for a in s if a != i - 1}
        self.model = nn.CellList(cells)
        self.sources = tuple(sources)
        self.multi = tuple(multi)
        self.keep = tuple(i in read_later for i in range(len(cells)))
        self.widths = tuple(widths)
        self.num_layers = len(cells)
        self._lines = tuple(lines)

    def construct(self, x):
        outs = ()
        for i in range(self.num_layers):
            src = self.sources[i]
            if self.multi[i]:
                inp = [x if j == i - 1 else outs[j] for j in src]
            elif src[0] == i - 1:
                inp = x
            else:
                inp = outs[src[0]]
            x = self.model[i](inp)
            outs = outs + ((x if self.keep[i] else None),)
        return x

    def summary(self) -> str:
        """An index / from / n / block / channels / parameters table, for debugging."""
        out = [f"{'idx':>4} {'from':>16} {'n':>3} {'block':<16} {'c_out':>6} {'params':>10}"]
        for (i, src, n, kind, c_out), cell in zip(self._lines, self.model):
            count = sum(int(math.prod(p.shape)) for p in cell.get_parameters())
            out.append(f"{i:>4} {src!s:>16} {n:>3} {kind:<16} {c_out:>6} {count:>10}")
        return "\n".join(out)


def last_row_prefix(rows: Sequence[Row]) -> str:
    """Parameter-name prefix, inside a :class:`LayerGraph`, of the cell built from the last row."""
    if not rows:
        raise ValueError("a layer graph needs at least one row")
    return f"model.{len(rows) - 1}"


def init_weights(net: nn.Cell) -> None:
    """MindYOLO's generic init: every Conv2d weight HeUniform(sqrt 5), bias U(+-1/sqrt(fan_in))."""
    for _, cell in net.cells_and_names():
        if isinstance(cell, nn.Conv2d):
            w = cell.weight
            w.set_data(initializer(HeUniform(negative_slope=math.sqrt(5)), w.shape, w.dtype))
            if cell.bias is not None:
                fan_in = int(math.prod(w.shape[1:]))
                bound = 1.0 / math.sqrt(fan_in)
                b = cell.bias
                b.set_data(initializer(Uniform(bound), b.shape, b.dtype))
