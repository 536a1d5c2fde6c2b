"""A picture of how a detector does on a split: ground truth beside its predictions, image by image.

``draw_gallery`` reads a COCO annotation file and a ``detections.json`` written by an evaluation
(the same detections the metric was computed from), keeps the detections scoring at least
``conf``, and draws the first ``count`` images of the split (in id order, not chosen) as pairs of
tiles: ground truth on the left, predictions on the right.  Tiles are upscaled so small images
stay legible; labels are sized to the tile and placed outside their box, so a label never hides
the object it names.  Each pair is captioned with what was found, missed and falsely detected
(a prediction is correct when it overlaps a same-class ground-truth box with IoU >= 0.5).

A short training run leaves several boxes on one object that the evaluation's NMS (IoU 0.65)
keeps (offset, nested or enclosing boxes); they cost AP little, being ranked below the best box,
but clutter a picture.  The gallery hides a prediction that shares at least ``duplicate_overlap``
of the smaller box's area with a higher-scoring one (any class) and counts it as a duplicate, so
the counts say what was hidden.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from hub.errors import InputDataError
from hub.tasks.drawing import class_color, label_font, place_label

MATCH_IOU = 0.5
_BG = (255, 255, 255)
_INK = (30, 30, 30)
_MUTED = (110, 110, 110)
_WRONG = (220, 30, 30)


@dataclass(frozen=True)
class Box:
    class_id: int  # 0-based index into the gallery's class names
    xyxy: tuple[float, float, float, float]  # pixels of the source image
    score: float | None = None  # None for ground truth


@dataclass(frozen=True)
class Tally:
    """Detections at the gallery's threshold, matched one to one against the ground truth."""

    objects: int
    found: int
    false: int  # detections matching no ground-truth object of their class
    duplicates: int = 0  # hidden: overlapping a higher-scoring detection

    @property
    def missed(self) -> int:
        return self.objects - self.found

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.objects + other.objects, self.found + other.found,
                     self.false + other.false, self.duplicates + other.duplicates)


@dataclass(frozen=True)
class Gallery:
    """The grid PNG, what it shows and the same counts over the whole split."""

    path: Path
    images_shown: int
    shown: Tally
    split: Tally  # every image of the split, not only those shown
    split_images: int
    conf: float


def draw_gallery(
    annotations: str | Path,
    detections: str | Path,
    images_dir: str | Path,
    out: str | Path,
    *,
    count: int = 8,
    conf: float = 0.25,
    title: str = "",
    tile: int = 256,
    pairs_per_row: int = 2,
    duplicate_overlap: float = 0.6,
) -> Gallery:
    """Draw the first ``count`` images of a split with their ground truth and predictions."""
    from PIL import Image

    names, images, truth = _read_ground_truth(Path(annotations))
    predicted = _read_detections(Path(detections), names, conf)
    labels = list(names.values())

    hidden: dict[int, int] = {}
    for image_id, boxes in predicted.items():
        kept = _drop_duplicates(boxes, duplicate_overlap)
        hidden[image_id] = len(boxes) - len(kept)
        predicted[image_id] = kept
    per_image = {}
    for image_id in images:
        tally, verdicts = _match(truth.get(image_id, []), predicted.get(image_id, []))
        per_image[image_id] = (replace(tally, duplicates=hidden.get(image_id, 0)), verdicts)
    total = sum((t for t, _ in per_image.values()), Tally(0, 0, 0))
    shown_ids = sorted(images)[: max(1, int(count))]

    rows = -(-len(shown_ids) // pairs_per_row)
    font = label_font(max(10, tile // 20))
    small = label_font(max(9, tile // 22))
    gap = max(6, tile // 32)
    head_h = _header_height(font, small, gap)
    caption_h = tile // 9 + 6
    pair_w = 2 * tile + gap
    width = pairs_per_row * pair_w + (pairs_per_row + 1) * 2 * gap
    height = head_h + rows * (tile + caption_h + gap) + gap
    canvas = Image.new("RGB", (width, height), _BG)
    _draw_header(canvas, title, labels, conf, duplicate_overlap, font, small, gap)

    shown = Tally(0, 0, 0)
    for n, image_id in enumerate(shown_ids):
        row, col = divmod(n, pairs_per_row)
        x0 = 2 * gap + col * (pair_w + 2 * gap)
        y0 = head_h + row * (tile + caption_h + gap)
        info = images[image_id]
        path = Path(images_dir) / info["file_name"]
        try:
            with Image.open(path) as im:
                source = im.convert("RGB")
        except OSError as exc:
            raise InputDataError(f"{path} cannot be read for the gallery ({exc})") from None
        tally, verdicts = per_image[image_id]
        shown += tally
        gt = truth.get(image_id, [])
        left = _tile(source, tile, gt, [None] * len(gt), labels, font)
        preds = predicted.get(image_id, [])
        right = _tile(source, tile, preds, verdicts, labels, font)
        canvas.paste(left, (x0, y0))
        canvas.paste(right, (x0 + tile + gap, y0))
        _caption(canvas, (x0, y0 + tile + 2), info["file_name"], tally, small)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    canvas.save(tmp, "PNG")
    tmp.replace(out)
    return Gallery(path=out, images_shown=len(shown_ids), shown=shown, split=total,
                   split_images=len(images), conf=conf)


# --- reading ------------------------------------------------------------------------------------


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputDataError(f"{what} {path} cannot be read as JSON ({exc})") from None


def _read_ground_truth(path: Path):
    """({category id: name} in id order, {image id: image record}, {image id: [Box]})."""
    coco = _read_json(path, "annotation file")
    try:
        cats = sorted(coco["categories"], key=lambda c: c["id"])
        names = {int(c["id"]): str(c["name"]) for c in cats}
        index = {cid: k for k, cid in enumerate(names)}
        images = {int(im["id"]): im for im in coco["images"]}
        truth: dict[int, list[Box]] = {}
        for a in coco["annotations"]:
            if a.get("iscrowd", 0):
                continue
            x, y, w, h = (float(v) for v in a["bbox"])
            truth.setdefault(int(a["image_id"]), []).append(
                Box(index[int(a["category_id"])], (x, y, x + w, y + h))
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputDataError(
            f"annotation file {path} is not COCO json (images, annotations, categories): "
            f"missing or bad {exc}"
        ) from None
    return names, images, truth


def _read_detections(path: Path, names: Mapping[int, str], conf: float):
    """{image id: [Box]} of the detections scoring at least ``conf``, best first."""
    rows = _read_json(path, "detections file")
    index = {cid: k for k, cid in enumerate(names)}
    out: dict[int, list[Box]] = {}
    try:
        for r in rows:
            score = float(r["score"])
            if score < conf:
                continue
            x, y, w, h = (float(v) for v in r["bbox"])
            out.setdefault(int(r["image_id"]), []).append(
                Box(index[int(r["category_id"])], (x, y, x + w, y + h), score)
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputDataError(
            f"detections file {path} is not a COCO results list matching the annotations "
            f"(image_id, category_id, bbox, score): bad {exc}"
        ) from None
    for boxes in out.values():
        boxes.sort(key=lambda b: -b.score)
    return out


# --- matching -----------------------------------------------------------------------------------


def _drop_duplicates(boxes: Sequence[Box], overlap: float) -> list[Box]:
    """The boxes (best first) sharing less than ``overlap`` of the smaller box's area with every
    better kept box."""
    kept: list[Box] = []
    for b in boxes:
        if all(_overlap_of_smaller(b.xyxy, k.xyxy) < overlap for k in kept):
            kept.append(b)
    return kept


def _overlap_of_smaller(a, b) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / smaller if smaller > 0 else 0.0


def _iou(a, b) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _match(truth: Sequence[Box], preds: Sequence[Box]) -> tuple[Tally, list[bool]]:
    """Greedy by score, as COCO does: each prediction takes the best free same-class object."""
    free = list(range(len(truth)))
    verdicts = []
    for p in preds:
        best, best_iou = None, MATCH_IOU
        for i in free:
            if truth[i].class_id != p.class_id:
                continue
            v = _iou(truth[i].xyxy, p.xyxy)
            if v >= best_iou:
                best, best_iou = i, v
        if best is not None:
            free.remove(best)
        verdicts.append(best is not None)
    found = sum(verdicts)
    return Tally(len(truth), found, len(preds) - found), verdicts


# --- drawing ------------------------------------------------------------------------------------


def _tile(source, size: int, boxes: Sequence[Box], verdicts, labels, font):
    """``source`` scaled to fit ``size`` x ``size``, boxes and labels drawn on it."""
    from PIL import Image, ImageDraw

    w0, h0 = source.size
    s = size / max(w0, h0)
    image = source.resize((max(1, round(w0 * s)), max(1, round(h0 * s))), Image.BICUBIC)
    tile = Image.new("RGB", (size, size), _BG)
    tile.paste(image, (0, 0))
    draw = ImageDraw.Draw(tile)
    scaled = [tuple(v * s for v in b.xyxy) for b in boxes]
    line = max(2, size // 128)
    taken = list(scaled)
    # lowest score first, so the best box and label end up on top
    for k in sorted(range(len(boxes)), key=lambda i: boxes[i].score or 0.0):
        b, xyxy, ok = boxes[k], scaled[k], verdicts[k]
        color = class_color(b.class_id)
        # a dark edge around every box keeps it visible on a background of its own colour
        halo = (xyxy[0] - 1, xyxy[1] - 1, xyxy[2] + 1, xyxy[3] + 1)
        if ok is False:
            _dashed(draw, halo, _INK, line + 2)
            _dashed(draw, xyxy, color, line)
        else:
            draw.rectangle(halo, outline=_INK, width=line + 2)
            draw.rectangle(xyxy, outline=color, width=line)
        text = labels[b.class_id] if b.score is None else f"{labels[b.class_id]} {b.score:.2f}"
        if ok is False:
            text += " ?"
        rect = place_label(draw, text, font, xyxy, taken, size)
        taken.append(rect)
        draw.rectangle(rect, fill=color)
        top = draw.textbbox((0, 0), text, font=font)[1]
        draw.text((rect[0] + 2, rect[1] + 1 - top), text, fill=(0, 0, 0), font=font)
    return tile


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _dashed(draw, xyxy, color, width: int) -> None:
    x1, y1, x2, y2 = xyxy
    dash = max(4, 3 * width)
    for (ax, ay, bx, by) in ((x1, y1, x2, y1), (x2, y1, x2, y2), (x2, y2, x1, y2),
                             (x1, y2, x1, y1)):
        length = max(abs(bx - ax), abs(by - ay))
        steps = max(1, int(length // dash))
        for i in range(0, steps, 2):
            t0, t1 = i / steps, min(1.0, (i + 1) / steps)
            draw.line((ax + (bx - ax) * t0, ay + (by - ay) * t0,
                       ax + (bx - ax) * t1, ay + (by - ay) * t1), fill=color, width=width)


def _px(font, fallback: int = 11) -> int:
    return int(getattr(font, "size", fallback))


def _header_height(font, small, gap) -> int:
    return gap + _px(font, 16) + 6 + 3 * (_px(small) + 6) + gap


def _draw_header(canvas, title, labels, conf, duplicate_overlap, font, small, gap) -> None:
    from PIL import ImageDraw

    draw = ImageDraw.Draw(canvas)
    x, y = 2 * gap, gap
    draw.text((x, y), title, fill=_INK, font=font)
    y += _px(font, 16) + 6
    for line in (
        f"left: ground truth    right: predictions scoring >= {conf:.2f}",
        f"dashed, '?': no object of its class under it (IoU >= {MATCH_IOU})    hidden: "
        f"duplicates, sharing >= {duplicate_overlap:.0%} of the smaller box with a better one",
    ):
        draw.text((x, y), line, fill=_MUTED, font=small)
        y += _px(small) + 6
    sw = _px(small)
    for k, name in enumerate(labels):
        draw.rectangle((x, y, x + sw, y + sw), fill=class_color(k), outline=_INK)
        draw.text((x + sw + 4, y), name, fill=_INK, font=small)
        x += sw + 12 + int(draw.textlength(name, font=small))


def _caption(canvas, xy, name, tally: Tally, font) -> None:
    from PIL import ImageDraw

    draw = ImageDraw.Draw(canvas)
    parts = [f"{name}: {tally.found}/{tally.objects} found"]
    if tally.missed:
        parts.append(f"{tally.missed} missed")
    parts.append(f"{tally.false} false" if tally.false else "no false detections")
    if tally.duplicates:
        parts.append(f"{tally.duplicates} duplicate{'s' * (tally.duplicates > 1)} hidden")
    text = ", ".join(parts)
    color = _INK if not tally.missed and not tally.false else _WRONG
    draw.text(xy, text, fill=color, font=font)
