"""YOLOv3 and YOLOv4 detectors assembled from backbone, neck and head rows.

Each detector owns one :class:`~yolomodels.graph.LayerGraph` as ``model``, so parameter names
are ``model.model.<row>...`` exactly as in MindYOLO checkpoints (manifest-tested).  Eval mode
returns the decoded ``(B, N, 5 + nc)`` tensor; training mode returns the head's raw outputs.
"""

from __future__ import annotations

from mindspore import nn

from yolomodels.backbones import cspdarknet53_rows, darknet53_rows
from yolomodels.graph import LayerGraph, Row, Scale, init_weights
from yolomodels.heads import V3_STRIDES, V4_LEVELS, V3HeadRow, V4HeadRow
from yolomodels.layers import Act
from yolomodels.necks import V3_NECK_OUTPUTS, V4_NECK_OUTPUTS, v3_fpn_rows, v4_spp_pan_rows

__all__ = ["YOLOv3", "YOLOv4", "check_size", "param_table"]

MAX_STRIDE = 32


def check_size(img_size: int) -> None:
    """Input sides must be positive multiples of the largest stride (32)."""
    if not isinstance(img_size, int) or img_size <= 0 or img_size % MAX_STRIDE:
        raise ValueError(f"img_size must be a positive multiple of {MAX_STRIDE}, got {img_size!r}")


class _Detector(nn.Cell):
    """Shared plumbing: the indexed layer graph and the public attributes."""

    strides: tuple[int, ...] = ()

    def __init__(self, rows: list[Row], *, num_classes: int, img_size: int, scale: Scale):
        super().__init__()
        self.model = LayerGraph(rows, in_channels=3, scale=scale)
        self.num_classes = num_classes
        self.img_size = img_size
        self.scale = scale
        init_weights(self)

    @property
    def head(self) -> nn.Cell:
        return self.model.model[self.model.num_layers - 1]

    def construct(self, x):
        return self.model(x)

    def summary(self) -> str:
        """Row table (index, source, repeats, block, channels, parameter count)."""
        return self.model.summary()


class YOLOv3(_Detector):
    """Darknet53 + FPN neck + YOLOv3Head (SiLU everywhere, as MindYOLO's yolov3.yaml)."""

    strides = V3_STRIDES

    def __init__(
        self,
        *,
        num_classes: int = 80,
        img_size: int = 640,
        depth_multiple: float = 1.0,
        width_multiple: float = 1.0,
        act: Act = "silu",
    ):
        rows = [
            *darknet53_rows(act),
            *v3_fpn_rows(act),
            Row(V3_NECK_OUTPUTS, V3HeadRow(num_classes)),
        ]
        super().__init__(
            rows,
            num_classes=num_classes,
            img_size=img_size,
            scale=Scale(depth_multiple, width_multiple),
        )
        self.head.init_bias_prior()


class YOLOv4(_Detector):
    """CSPDarknet53 + SPP + PAN + YOLOv4Head; outputs ordered stride 32, 16, 8."""

    strides = tuple(lv.stride for lv in V4_LEVELS)

    def __init__(
        self,
        *,
        num_classes: int = 80,
        img_size: int = 608,
        depth_multiple: float = 1.0,
        width_multiple: float = 1.0,
        backbone_act: Act = "mish",
        neck_act: Act = "leaky_relu",
    ):
        rows = [
            *cspdarknet53_rows(backbone_act),
            *v4_spp_pan_rows(neck_act),
            Row(V4_NECK_OUTPUTS, V4HeadRow(num_classes)),
        ]
        super().__init__(
            rows,
            num_classes=num_classes,
            img_size=img_size,
            scale=Scale(depth_multiple, width_multiple),
        )


def param_table(net: nn.Cell) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype) of every parameter, in ``get_parameters()`` order."""
    return [(p.name, tuple(p.shape), str(p.dtype)) for p in net.get_parameters()]

