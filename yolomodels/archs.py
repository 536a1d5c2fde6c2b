"""The built-in registered architectures (the names cards refer to).

Builders import the network modules only when called, so registering them — and therefore
listing architectures or checking a card's arguments — does not import MindSpore.
"""

from __future__ import annotations

from yolomodels.errors import ArchitectureArgumentError
from yolomodels.registry import register_arch

__all__ = ["yolov3_darknet53", "yolov4_cspdarknet53", "yolov4_cspdarknet53_silu"]

V3_HEAD = ("model.model.28.m.*",)
V4_HEAD = ("model.model.66.m.*",)


def _check(num_classes: int, img_size: int, depth_multiple: float, width_multiple: float) -> None:
    problems = []
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        problems.append(f"num_classes must be a positive integer, got {num_classes!r}")
    if not isinstance(img_size, int) or isinstance(img_size, bool) or img_size <= 0 or img_size % 32:
        problems.append(f"img_size must be a positive multiple of 32, got {img_size!r}")
    for name, value in (("depth_multiple", depth_multiple), ("width_multiple", width_multiple)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 4:
            problems.append(f"{name} must be a number in (0, 4], got {value!r}")
    if problems:
        raise ArchitectureArgumentError("; ".join(problems))


def _register(
    name: str,
    detector: str,
    *,
    head_params: tuple[str, ...],
    img_size: int,
    summary: str,
    **fixed: str,
):
    """Register a builder of ``yolomodels.detectors.<detector>`` under ``name``.

    Every builder takes the same keyword arguments (what cards put in ``architecture.args``);
    ``fixed`` are detector arguments the architecture pins, such as its activations.
    """

    def builder(
        *,
        num_classes: int = 80,
        img_size: int = img_size,
        depth_multiple: float = 1.0,
        width_multiple: float = 1.0,
    ):
        _check(num_classes, img_size, depth_multiple, width_multiple)
        from yolomodels import detectors

        return getattr(detectors, detector)(
            num_classes=num_classes,
            img_size=img_size,
            depth_multiple=depth_multiple,
            width_multiple=width_multiple,
            **fixed,
        )

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = summary
    register_arch(name, head_params=head_params, defaults={"num_classes": 80, "img_size": img_size})(
        builder
    )
    return builder


yolov3_darknet53 = _register(
    "yolov3_darknet53",
    "YOLOv3",
    head_params=V3_HEAD,
    img_size=640,
    summary="YOLOv3 with a Darknet53 backbone, SiLU activations (MindYOLO ``yolov3.yaml``).",
)
yolov4_cspdarknet53 = _register(
    "yolov4_cspdarknet53",
    "YOLOv4",
    head_params=V4_HEAD,
    img_size=608,
    summary="YOLOv4 with CSPDarknet53 (Mish), SPP + PAN (LeakyReLU 0.1) (MindYOLO ``yolov4.yaml``).",
)
yolov4_cspdarknet53_silu = _register(
    "yolov4_cspdarknet53_silu",
    "YOLOv4",
    head_params=V4_HEAD,
    img_size=608,
    summary="YOLOv4 with SiLU everywhere (MindYOLO ``yolov4-silu.yaml``); same parameters as yolov4.",
    backbone_act="silu",
    neck_act="silu",
)
