"""The input-size rule, owned here and asked for by everyone (builders, eval, export, predict).

A network's input side must be a positive multiple of its head's largest stride
(:data:`yolomodels.levels.MAX_STRIDE`, 32), or the feature maps of the levels do not line up.
Imports neither MindSpore nor NumPy.
"""

from __future__ import annotations

import numbers

from yolomodels.errors import ImageSizeError
from yolomodels.levels import MAX_STRIDE

__all__ = ["MAX_STRIDE", "check_img_size", "img_size_problem"]


def img_size_problem(size: object, *, what: str = "img_size") -> str | None:
    """Why ``size`` is not a valid input side (one sentence with a suggestion), else None."""
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        if size >= MAX_STRIDE and size % MAX_STRIDE == 0:
            return None
        near = max(MAX_STRIDE, round(int(size) / MAX_STRIDE) * MAX_STRIDE)
        hint = f"; try {near}"
    else:
        hint = ""
    return (
        f"{what} must be a positive multiple of {MAX_STRIDE}, got {size!r} "
        f"({MAX_STRIDE} is the networks' largest stride){hint}"
    )


def check_img_size(size: object, *, what: str = "img_size") -> int:
    """``size`` as an int if it is a positive multiple of the largest stride; else raise
    :class:`~yolomodels.errors.ImageSizeError` saying what to use instead."""
    problem = img_size_problem(size, what=what)
    if problem:
        raise ImageSizeError(problem)
    return int(size)
