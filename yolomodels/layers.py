"""Building blocks shared by the YOLO backbones and necks; no model knowledge here.

Numerics follow MindYOLO (fact sheet §1.2): convolutions without bias and symmetric ``k // 2``
padding, BatchNorm with ``eps=1e-3`` and ``momentum=0.97`` (MindSpore convention: the running
statistic keeps 97 %), SiLU / Mish / LeakyReLU(0.1) activations.  Parameter sub-names
(``conv.weight``, ``bn.gamma`` ...) match MindYOLO checkpoints.
"""

from __future__ import annotations

from typing import Literal

from mindspore import nn, ops

__all__ = [
    "Act",
    "BN_EPS",
    "BN_MOMENTUM",
    "Bottleneck",
    "Concat",
    "ConvNormAct",
    "MaxPoolSame",
    "Residualblock",
    "Upsample",
    "make_act",
]

Act = Literal["silu", "mish", "leaky_relu", "none"]
BN_EPS = 1e-3
BN_MOMENTUM = 0.97
LEAKY_SLOPE = 0.1


def make_act(act: Act) -> nn.Cell:
    """The activation cell for a name (``"none"`` gives identity)."""
    if act == "silu":
        return nn.SiLU()
    if act == "mish":
        return nn.Mish()
    if act == "leaky_relu":
        return nn.LeakyReLU(LEAKY_SLOPE)
    if act == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {act!r}; expected silu, mish, leaky_relu or none")


class ConvNormAct(nn.Cell):
    """Conv2d (no bias, ``k // 2`` padding) + BatchNorm2d + activation."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, *, act: Act = "silu"):
        super().__init__()
        self.conv = nn.Conv2d(
            c1, c2, k, stride=s, pad_mode="pad", padding=k // 2, has_bias=False
        )
        self.bn = nn.BatchNorm2d(c2, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = make_act(act)

    def construct(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Cell):
    """1x1 conv to ``int(c2 * e)`` then 3x3 conv to ``c2``; residual add if asked and c1 == c2."""

    def __init__(
        self, c1: int, c2: int, *, shortcut: bool = True, e: float = 0.5, act: Act = "silu"
    ):
        super().__init__()
        hidden = int(c2 * e)
        self.conv1 = ConvNormAct(c1, hidden, 1, 1, act=act)
        self.conv2 = ConvNormAct(hidden, c2, 3, 1, act=act)
        self.add = shortcut and c1 == c2

    def construct(self, x):
        y = self.conv2(self.conv1(x))
        if self.add:
            y = x + y
        return y


class Residualblock(nn.Cell):
    """CSPDarknet stage block: 1x1 conv c1->c2 (no halving), 3x3 conv c2->c2, always added."""

    def __init__(self, c1: int, c2: int, *, act: Act = "silu"):
        super().__init__()
        self.conv1 = ConvNormAct(c1, c2, 1, 1, act=act)
        self.conv2 = ConvNormAct(c2, c2, 3, 1, act=act)

    def construct(self, x):
        return x + self.conv2(self.conv1(x))


class Concat(nn.Cell):
    """Concatenate a tuple of feature maps along channels, in the given order."""

    def __init__(self, axis: int = 1):
        super().__init__()
        self.axis = axis

    def construct(self, xs):
        return ops.concat(xs, self.axis)


class Upsample(nn.Cell):
    """Nearest-neighbour 2x upsampling: every pixel becomes a 2x2 block."""

    def construct(self, x):
        b, c, h, w = x.shape
        y = ops.broadcast_to(x.reshape(b, c, h, 1, w, 1), (b, c, h, 2, w, 2))
        return y.reshape(b, c, h * 2, w * 2)


class MaxPoolSame(nn.Cell):
    """Stride-1 max pool whose 'same' padding never wins (acts as -inf), as in YOLOv4's SPP."""

    def __init__(self, k: int):
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size=k, stride=1, pad_mode="same")

    def construct(self, x):
        return self.pool(x)
