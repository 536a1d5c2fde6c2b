"""Synthetic detection datasets: geometric shapes on textured backgrounds, with exact boxes.

Offline tests and the demo need a dataset that a small network can learn in minutes and whose
ground truth is exact.  Every shape is rendered into its own binary mask first; its box is the
mask's pixel extent, so boxes are tight by construction.  Shapes never overlap, so no box is
occluded.  Everything is drawn from one ``numpy`` generator seeded by ``(seed, split)``, so the
same arguments give byte-identical files.

Layout written (MindYOLO's, see the fact sheet §6)::

    out_dir/
      annotations/instances_<split>.json   COCO json, category ids 1..K, image_id = int(stem)
      images/<split>/000000000001.jpg      numeric file stems
      labels/<split>/000000000001.txt      YOLO txt: ``cls xc yc w h`` normalised
      <split>.txt                          list of ``./images/<split>/<file>`` lines
      dataset.yaml                         names, nc and the split lists
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from yolomodels.errors import DatasetError

SHAPES = ("circle", "square", "triangle", "cross", "diamond", "hexagon", "star", "ring")
"""Class names, in class-index order; a dataset with K classes uses the first K."""

_FORMATS = {"jpg": "JPEG", "png": "PNG"}
_MAX_PLACEMENT_TRIES = 60


@dataclass(frozen=True)
class SyntheticObject:
    """One rendered shape: class index and tight box ``(x, y, w, h)`` in pixels."""

    cls: int
    box: tuple[int, int, int, int]


def make_dataset(
    out_dir: str | Path,
    *,
    num_images: int = 64,
    img_size: int | tuple[int, int] = 96,
    num_classes: int = 3,
    seed: int = 0,
    split: str = "train2017",
    objects: tuple[int, int] = (1, 3),
    object_scale: tuple[float, float] = (0.2, 0.45),
    image_format: str = "jpg",
    first_id: int = 1,
    overwrite: bool = False,
) -> Path:
    """Write one split of a synthetic shapes dataset under ``out_dir`` and return ``out_dir``.

    ``img_size`` is an int (square) or ``(width, height)``.  ``objects`` is the inclusive range of
    shapes per image, ``object_scale`` the range of a shape's size relative to the image's
    shorter side.  Several splits can share one ``out_dir``; give them disjoint ``first_id``
    ranges if their image ids must be unique across splits.  An existing split is refused
    unless ``overwrite`` is true.
    """
    out = Path(out_dir)
    width, height = _check_args(
        num_images, img_size, num_classes, split, objects, object_scale, image_format, first_id
    )
    ann_path = out / "annotations" / f"instances_{split}.json"
    image_dir = out / "images" / split
    label_dir = out / "labels" / split
    if not overwrite and (ann_path.exists() or (image_dir.exists() and any(image_dir.iterdir()))):
        raise DatasetError(
            f"split {split!r} already exists in {out}; pass overwrite=True "
            "(CLI: --overwrite) or choose another directory"
        )
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    ann_path.parent.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng([seed, zlib.crc32(split.encode())])
    ext = image_format.lower()
    images, annotations, list_lines = [], [], []
    for i in range(num_images):
        image_id = first_id + i
        file_name = f"{image_id:012d}.{ext}"
        pixels, objs = render_image(
            rng, width, height, num_classes=num_classes, objects=objects, object_scale=object_scale
        )
        save_kwargs = {"quality": 95, "subsampling": 0} if ext == "jpg" else {}
        Image.fromarray(pixels).save(image_dir / file_name, _FORMATS[ext], **save_kwargs)
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        rows = []
        for obj in objs:
            x, y, w, h = obj.box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": obj.cls + 1,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
            rows.append(
                f"{obj.cls} {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} "
                f"{w / width:.6f} {h / height:.6f}"
            )
        (label_dir / f"{image_id:012d}.txt").write_text("".join(r + "\n" for r in rows))
        list_lines.append(f"./images/{split}/{file_name}")

    coco = {
        "info": {
            "description": "yolohub synthetic shapes",
            "seed": seed,
            "split": split,
            "version": "1",
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": k + 1, "name": SHAPES[k], "supercategory": "shape"} for k in range(num_classes)
        ],
    }
    ann_path.write_text(json.dumps(coco, indent=1) + "\n")
    (out / f"{split}.txt").write_text("".join(line + "\n" for line in list_lines))
    _write_dataset_yaml(out, num_classes)
    return out


def render_image(
    rng: np.random.Generator,
    width: int,
    height: int,
    *,
    num_classes: int,
    objects: tuple[int, int] = (1, 3),
    object_scale: tuple[float, float] = (0.2, 0.45),
) -> tuple[np.ndarray, list[SyntheticObject]]:
    """Render one image (H, W, 3) uint8 and the shapes placed on it, boxes exact and disjoint."""
    canvas = _background(rng, width, height)
    bg_mean = canvas.reshape(-1, 3).mean(axis=0)
    taken = np.zeros((height, width), dtype=bool)
    placed: list[SyntheticObject] = []
    want = int(rng.integers(objects[0], objects[1] + 1))
    short = min(width, height)
    for _ in range(want):
        for _try in range(_MAX_PLACEMENT_TRIES):
            cls = int(rng.integers(num_classes))
            size = max(6, int(round(short * rng.uniform(*object_scale))))
            aspect = rng.uniform(0.75, 1.33) if SHAPES[cls] in ("square", "cross") else 1.0
            sw = min(width - 2, max(6, int(round(size * aspect))))
            sh = min(height - 2, size)
            x0 = int(rng.integers(1, width - sw))
            y0 = int(rng.integers(1, height - sh))
            mask = _shape_mask(SHAPES[cls], width, height, (x0, y0, x0 + sw - 1, y0 + sh - 1), rng)
            ys, xs = np.nonzero(mask)
            if len(xs) == 0:
                continue
            box = (
                int(xs.min()),
                int(ys.min()),
                int(xs.max() - xs.min() + 1),
                int(ys.max() - ys.min() + 1),
            )
            bx, by, bw, bh = box
            margin = 2
            region = taken[
                max(0, by - margin) : by + bh + margin, max(0, bx - margin) : bx + bw + margin
            ]
            if region.any():
                continue
            canvas[mask] = _contrasting_colour(rng, bg_mean)
            taken[by : by + bh, bx : bx + bw] = True
            placed.append(SyntheticObject(cls=cls, box=box))
            break
    return canvas, placed


def _check_args(num_images, img_size, num_classes, split, objects, object_scale, fmt, first_id):
    if not isinstance(num_images, int) or num_images < 1:
        raise DatasetError(f"num_images must be a positive integer, got {num_images!r}")
    if isinstance(img_size, int):
        width = height = img_size
    else:
        try:
            width, height = (int(v) for v in img_size)
        except (TypeError, ValueError):
            raise DatasetError(
                f"img_size must be an int or (width, height), got {img_size!r}"
            ) from None
    if min(width, height) < 32:
        raise DatasetError(f"images must be at least 32x32 pixels, got {width}x{height}")
    if not isinstance(num_classes, int) or not 1 <= num_classes <= len(SHAPES):
        raise DatasetError(
            f"num_classes must be between 1 and {len(SHAPES)} ({', '.join(SHAPES)}), "
            f"got {num_classes!r}"
        )
    if not split or "/" in split or split.startswith("."):
        raise DatasetError(f"split must be a plain name such as 'train2017', got {split!r}")
    lo, hi = objects
    if not 0 <= lo <= hi:
        raise DatasetError(
            f"objects must be a range (min, max) with 0 <= min <= max, got {objects}"
        )
    slo, shi = object_scale
    if not 0.0 < slo <= shi <= 0.9:
        raise DatasetError(
            f"object_scale must satisfy 0 < min <= max <= 0.9 of the shorter side, got {object_scale}"
        )
    if fmt.lower() not in _FORMATS:
        raise DatasetError(f"image_format must be one of {sorted(_FORMATS)}, got {fmt!r}")
    if not isinstance(first_id, int) or first_id < 1:
        raise DatasetError(f"first_id must be a positive integer, got {first_id!r}")
    return width, height


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A textured background: noise, a gradient, stripes or a checkerboard, plus mild noise."""
    kind = int(rng.integers(4))
    c1 = rng.uniform(0, 255, 3)
    c2 = rng.uniform(0, 255, 3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == 0:  # blotchy low-frequency noise, upsampled
        coarse = rng.uniform(0, 1, (max(2, height // 12), max(2, width // 12), 1))
        t = (
            np.asarray(
                Image.fromarray((coarse[..., 0] * 255).astype(np.uint8)).resize(
                    (width, height), Image.BILINEAR
                ),
                dtype=np.float32,
            )[..., None]
            / 255.0
        )
    elif kind == 1:  # linear gradient in a random direction
        angle = rng.uniform(0, 2 * math.pi)
        proj = xx * math.cos(angle) + yy * math.sin(angle)
        t = ((proj - proj.min()) / max(1e-6, np.ptp(proj)))[..., None]
    elif kind == 2:  # soft stripes
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(6, 20)
        proj = xx * math.cos(angle) + yy * math.sin(angle)
        t = (0.5 + 0.5 * np.sin(2 * math.pi * proj / period))[..., None]
    else:  # checkerboard
        cell = int(rng.integers(6, 16))
        t = (((xx // cell) + (yy // cell)) % 2)[..., None]
    img = c1 * (1 - t) + c2 * t
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _contrasting_colour(rng: np.random.Generator, bg_mean: np.ndarray) -> np.ndarray:
    """A random colour far enough from the background's mean to stay visible."""
    best, best_d = None, -1.0
    for _ in range(8):
        c = rng.uniform(0, 255, 3)
        d = float(np.linalg.norm(c - bg_mean))
        if d > 120:
            return c.astype(np.uint8)
        if d > best_d:
            best, best_d = c, d
    return best.astype(np.uint8)


def _shape_mask(
    name: str, width: int, height: int, box: tuple[int, int, int, int], rng: np.random.Generator
) -> np.ndarray:
    """Binary (H, W) mask of one shape drawn inside ``box`` (inclusive pixel corners)."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rx, ry = (x1 - x0) / 2, (y1 - y0) / 2
    m = Image.new("1", (width, height), 0)
    d = ImageDraw.Draw(m)
    if name == "circle":
        d.ellipse(box, fill=1)
    elif name == "square":
        d.rectangle(box, fill=1)
    elif name == "triangle":
        if rng.random() < 0.5:
            pts = [(cx, y0), (x1, y1), (x0, y1)]
        else:
            pts = [(x0, y0), (x1, y0), (cx, y1)]
        d.polygon(pts, fill=1)
    elif name == "cross":
        tx, ty = max(2, (x1 - x0) // 3), max(2, (y1 - y0) // 3)
        d.rectangle((cx - tx / 2, y0, cx + tx / 2, y1), fill=1)
        d.rectangle((x0, cy - ty / 2, x1, cy + ty / 2), fill=1)
    elif name == "diamond":
        d.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=1)
    elif name == "hexagon":
        d.polygon(_regular(cx, cy, rx, ry, 6, 0.0), fill=1)
    elif name == "star":
        outer = _regular(cx, cy, rx, ry, 5, -math.pi / 2)
        inner = _regular(cx, cy, rx * 0.45, ry * 0.45, 5, -math.pi / 2 + math.pi / 5)
        d.polygon([p for pair in zip(outer, inner) for p in pair], fill=1)
    elif name == "ring":
        d.ellipse(box, fill=1)
        bx, by = (x1 - x0) * 0.28, (y1 - y0) * 0.28
        d.ellipse((x0 + bx, y0 + by, x1 - bx, y1 - by), fill=0)
    else:  # pragma: no cover - SHAPES and this function are kept in step
        raise AssertionError(name)
    return np.asarray(m, dtype=bool)


def _regular(cx, cy, rx, ry, n, phase):
    return [
        (
            cx + rx * math.cos(phase + 2 * math.pi * k / n),
            cy + ry * math.sin(phase + 2 * math.pi * k / n),
        )
        for k in range(n)
    ]


def _write_dataset_yaml(out: Path, num_classes: int) -> None:
    """``dataset.yaml`` in MindYOLO's ``data:`` form, listing every split written so far."""
    splits = sorted(p.stem for p in out.glob("*.txt"))
    lines = ["# written by yolohub make-dataset", "dataset_name: synthetic-shapes"]
    for s in splits:
        key = (
            "train_set"
            if s.startswith("train")
            else "val_set"
            if s.startswith("val")
            else f"{s}_set"
        )
        lines.append(f"{key}: ./{s}.txt")
    lines.append(f"nc: {num_classes}")
    lines.append("names: [" + ", ".join(SHAPES[:num_classes]) + "]")
    (out / "dataset.yaml").write_text("\n".join(lines) + "\n")
