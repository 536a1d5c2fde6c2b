"""YOLOv3 and YOLOv4 detectors assembled from backbone, neck and head rows.

Each detector owns one :class:`~yolomodels.graph.LayerGraph` as ``model``, so parameter names
are ``model.model.<row>...`` exactly as in MindYOLO checkpoints (manifest-tested).  Eval mode
returns the decoded ``(B, N, 5 + nc)`` tensor; training mode returns the head's raw outputs.

The head is always the graph's last row, so the class-dependent parameter names are derived from
the row list (:func:`head_param_patterns`) rather than written down per architecture.
"""

from __future__ import annotations

from mindspore import nn

from yolomodels.backbones import cspdarknet53_rows, darknet53_rows
from yolomodels.graph import LayerGraph, Row, Scale, init_weights, last_row_prefix
from yolomodels.heads import CLASS_PARAMS, V3HeadRow, V4HeadRow
from yolomodels.layers import Act
from yolomodels.necks import V3_NECK_OUTPUTS, V4_NECK_OUTPUTS, v3_fpn_rows, v4_spp_pan_rows
from yolomodels.sizes import check_img_size as check_size

__all__ = [
    "YOLOv3",
    "YOLOv4",
    "check_size",
    "head_param_patterns",
    "param_table",
    "yolov3_rows",
    "yolov4_rows",
]

GRAPH_ATTR = "model"
"""Attribute holding the detector's :class:`LayerGraph`: parameter names start ``model.model.``."""


def yolov3_rows(num_classes: int = 80, act: Act = "silu") -> list[Row]:
    """Darknet53 + FPN neck + the YOLOv3 head row (last)."""
    return [*darknet53_rows(act), *v3_fpn_rows(act), Row(V3_NECK_OUTPUTS, V3HeadRow(num_classes))]


def yolov4_rows(
    num_classes: int = 80, backbone_act: Act = "mish", neck_act: Act = "leaky_relu"
) -> list[Row]:
    """CSPDarknet53 + SPP + PAN neck + the YOLOv4 head row (last)."""
    return [
        *cspdarknet53_rows(backbone_act),
        *v4_spp_pan_rows(neck_act),
        Row(V4_NECK_OUTPUTS, V4HeadRow(num_classes)),
    ]


def head_param_patterns(rows: list[Row]) -> tuple[str, ...]:
    """fnmatch patterns of the parameters whose shape depends on the class count.

    They are the head's per-level convs, and the head is the graph's last row; these are the
    parameters a class-count change (fine-tuning) leaves out of a strict load.
    """
    return (f"{GRAPH_ATTR}.{last_row_prefix(rows)}.{CLASS_PARAMS}",)


class _Detector(nn.Cell):
    """Shared plumbing: the indexed layer graph and the public attributes."""

    def __init__(self, rows: list[Row], *, num_classes: int, img_size: int, scale: Scale):
        super().__init__()
        self.model = LayerGraph(rows, in_channels=3, scale=scale)
        self.head_params = head_param_patterns(rows)
        self.num_classes = num_classes
        self.img_size = img_size
        self.scale = scale
        init_weights(self)

    @property
    def head(self) -> nn.Cell:
        """The detection head: the graph's last row."""
        return self.model.model[self.model.num_layers - 1]

    @property
    def strides(self) -> tuple[int, ...]:
        """Output strides in the order the head emits its levels."""
        return tuple(lv.stride for lv in self.head.levels)

    def construct(self, x):
        return self.model(x)

    def summary(self) -> str:
        """Row table (index, source, repeats, block, channels, parameter count)."""
        return self.model.summary()


class YOLOv3(_Detector):
    """Darknet53 + FPN neck + YOLOv3Head (SiLU everywhere, as MindYOLO's yolov3.yaml)."""

    def __init__(
        self,
        *,
        num_classes: int = 80,
        img_size: int = 640,
        depth_multiple: float = 1.0,
        width_multiple: float = 1.0,
        act: Act = "silu",
    ):
        super().__init__(
            yolov3_rows(num_classes, act),
            num_classes=num_classes,
            img_size=img_size,
            scale=Scale(depth_multiple, width_multiple),
        )
        self.head.init_bias_prior()


class YOLOv4(_Detector):
    """CSPDarknet53 + SPP + PAN + YOLOv4Head; outputs ordered stride 32, 16, 8."""

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
        super().__init__(
            yolov4_rows(num_classes, backbone_act, neck_act),
            num_classes=num_classes,
            img_size=img_size,
            scale=Scale(depth_multiple, width_multiple),
        )


def param_table(net: nn.Cell) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype) of every parameter, in ``get_parameters()`` order."""
    return [(p.name, tuple(p.shape), str(p.dtype)) for p in net.get_parameters()]

