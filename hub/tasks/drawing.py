"""Drawing detections: class colours, label fonts and label placement, shared by ``predict``'s
annotated images and the demo's gallery."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def class_color(class_id: int) -> tuple[int, int, int]:
    # well-spread hues: golden-ratio steps around the colour wheel
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((class_id * 0.618033988749895) % 1.0, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


@functools.lru_cache(maxsize=8)
def label_font(size: int):
    """A scalable font of ``size`` px (Pillow >= 10.1), else Pillow's small bitmap font."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def place_label(draw, text, font, box, taken, size):
    """A label rectangle above or below the box (left- or right-aligned), else inside its top
    edge: of those inside the image (``size``: side, or (width, height)), the one covering least
    of the other boxes and labels in ``taken``."""
    width, height = (size, size) if isinstance(size, (int, float)) else size
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    tw, th = right - left + 4, bottom - top + 3
    x1, y1, x2, y2 = box
    xs = [min(max(0.0, x), max(0.0, width - tw)) for x in (x1, x2 - tw)]
    outside = [(x, y) for y in (y1 - th, y2 + 1) for x in xs]
    fits = [c for c in outside if 0 <= c[1] and c[1] + th <= height]
    others = [t for t in taken if t != box]

    def covered(c) -> float:
        rect = (c[0], c[1], c[0] + tw, c[1] + th)
        return sum(overlap_area(rect, t) for t in others)

    inside = (xs[0], max(0.0, y1))
    if fits:
        best = min(fits, key=covered)  # first wins ties: above, left-aligned
        if covered(best) == 0 or covered(best) <= covered(inside) + overlap_area(
            (inside[0], inside[1], inside[0] + tw, inside[1] + th), box
        ):
            inside = best
    return (inside[0], inside[1], inside[0] + tw, inside[1] + th)


def overlap_area(a, b) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    return iw * ih if iw > 0 and ih > 0 else 0.0


def draw_detections(image: np.ndarray, detections: Sequence):
    """A Pillow image of ``image`` with each detection (``box``, ``class_id``, ``class_name``,
    ``score``) drawn on it, labels placed outside the boxes where they fit."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    side = max(canvas.size)
    # small images get a smaller font (down to 8 px), so a label does not bury the picture
    font = label_font(max(8, min(11, round(side / 16)), round(side / 45)))
    width = max(1 if side < 256 else 2, round(side / 300))
    ranked = sorted(detections, key=lambda d: d.score)  # best drawn last, on top
    taken = [tuple(float(v) for v in det.box) for det in ranked]
    for det in ranked:
        color = class_color(det.class_id)
        box = tuple(float(v) for v in det.box)
        draw.rectangle(box, outline=color, width=width)
        label = f"{det.class_name} {det.score:.2f}"
        rect = place_label(draw, label, font, box, taken, canvas.size)  # outside the box
        taken.append(rect)
        top = draw.textbbox((0, 0), label, font=font)[1]
        draw.rectangle(rect, fill=color)
        draw.text((rect[0] + 2, rect[1] + 1 - top), label, fill=(0, 0, 0), font=font)
    return canvas
