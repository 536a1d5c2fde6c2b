"""Training losses of the YOLO detectors, built by name from a recipe's ``loss`` section.

The losses own their hyperparameters only: strides and anchors are the network head's
(``levels``, from :mod:`yolomodels.levels`), passed in by :func:`build_loss`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from yolomodels.errors import RecipeError

LOSS_NAMES = ("YOLOv3Loss", "YOLOv4Loss")


def build_loss(
    name: str,
    *,
    num_classes: int,
    options: Mapping[str, Any] | None = None,
    levels: Sequence[Any] | None = None,
):
    """The loss cell called ``name`` with hyperparameters ``options`` (snake_case keys).

    ``levels`` are the strides and anchors of the network's head (``net.head.levels``); without
    them the loss uses its architecture's default levels from :mod:`yolomodels.levels`.
    """
    from yolomodels.losses.yolov3 import YOLOv3Loss
    from yolomodels.losses.yolov4 import YOLOv4Loss

    classes = {"YOLOv3Loss": YOLOv3Loss, "YOLOv4Loss": YOLOv4Loss}
    if name not in classes:
        raise RecipeError(f"loss name {name!r} is unknown; expected one of {', '.join(LOSS_NAMES)}")
    try:
        extra = {} if levels is None else {"levels": tuple(levels)}
        return classes[name](num_classes=num_classes, **dict(options or {}), **extra)
    except TypeError as exc:
        raise RecipeError(f"loss {name}: {exc}; check the recipe's loss section") from None


__all__ = ["LOSS_NAMES", "build_loss"]
