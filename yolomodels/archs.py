"""The built-in registered architectures (the names cards refer to).

Builders import the network modules only when called, so registering them — and therefore
listing architectures or checking a card's arguments — does not import MindSpore.  The head
parameters are derived from the layer graph's last row when first asked for (that needs the
network modules, hence MindSpore).
"""

from __future__ import annotations

import functools

from yolomodels.errors import ArchitectureArgumentError
from yolomodels.registry import register_arch
from yolomodels.sizes import img_size_problem

__all__ = ["yolov3_darknet53", "yolov4_cspdarknet53", "yolov4_cspdarknet53_silu"]


@functools.cache
def _head_params(detector: str) -> tuple[str, ...]:
    from yolomodels import detectors

    rows = {"YOLOv3": detectors.yolov3_rows, "YOLOv4": detectors.yolov4_rows}[detector]()
    return detectors.head_param_patterns(rows)


def _check(num_classes: int, img_size: int, depth_multiple: float, width_multiple: float) -> None:
    problems = []
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        problems.append(f"num_classes must be a positive integer, got {num_classes!r}")
    size_problem = img_size_problem(img_size)
    if size_problem:
        problems.append(size_problem)
    for name, value in (("depth_multiple", depth_multiple), ("width_multiple", width_multiple)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 4:
            problems.append(f"{name} must be a number in (0, 4], got {value!r}")
    if problems:
        raise ArchitectureArgumentError("; ".join(problems))


def _register(
    name: str,
    detector: str,
    *,
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
    register_arch(
        name,
        head_params=functools.partial(_head_params, detector),
        defaults={"num_classes": 80, "img_size": img_size},
    )(builder)
    return builder


yolov3_darknet53 = _register(
    "yolov3_darknet53",
    "YOLOv3",
    img_size=640,
    summary="YOLOv3 with a Darknet53 backbone, SiLU activations (MindYOLO ``yolov3.yaml``).",
)
yolov4_cspdarknet53 = _register(
    "yolov4_cspdarknet53",
    "YOLOv4",
    img_size=608,
    summary="YOLOv4 with CSPDarknet53 (Mish), SPP + PAN (LeakyReLU 0.1) (MindYOLO ``yolov4.yaml``).",
)
yolov4_cspdarknet53_silu = _register(
    "yolov4_cspdarknet53_silu",
    "YOLOv4",
    img_size=608,
    summary="YOLOv4 with SiLU everywhere (MindYOLO ``yolov4-silu.yaml``); same parameters as yolov4.",
    backbone_act="silu",
    neck_act="silu",
)
