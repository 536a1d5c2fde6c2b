"""Evaluation pre- and post-processing as MindYOLO's ``test.py`` does it (fact sheet §5.1-5.3).

``preprocess`` turns an RGB image into the network input (long side resized to ``img_size``, then
a square letterbox with padding 114, values in [0, 1], CHW float32) and records how; ``nms`` turns
one image's decoded predictions into detections; ``scale_boxes_back`` maps detection boxes to the
original image.  Resizing is OpenCV's (the resampling filters decide pixels, and pixels decide
boxes); NMS and the mapping back run in float32 with MindYOLO's order of operations, because a
box at IoU 0.65001 against a 0.65 threshold is kept or dropped on the last bit.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from yolomodels.errors import ImageReadError

PAD_VALUE = 114
CLASS_OFFSET = 4096  # class-aware NMS shifts each class's boxes this far apart (as MindYOLO)
MAX_CANDIDATES = 30000  # (box, class) pairs kept for NMS, best scores first


@dataclass(frozen=True)
class PreprocessMeta:
    """How an image became the network input, so boxes can be mapped back.

    ``hw_scale`` is the (h, w) resize ratio before the letterbox, ``letterbox_ratio`` the
    letterbox's own scale (1 under the eval protocol), ``pad`` the (padw, padh) offset of the
    image inside the letterboxed input.  ``ratio`` divides input pixels back to original pixels.
    """

    original_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    hw_scale: tuple[float, float]
    letterbox_ratio: float
    pad: tuple[float, float]
    input_hw: tuple[int, int]

    @property
    def ratio(self) -> float:
        # MindYOLO maps both axes back with the height ratio (fact sheet §5.3)
        return self.hw_scale[0] * self.letterbox_ratio


def _as_rgb(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ImageReadError(
            f"expected an image array of dtype uint8 (H, W, 3) RGB, got dtype {img.dtype}; "
            "read images with yolomodels.images.read_image or convert with .astype(np.uint8)"
        )
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    elif img.ndim == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ImageReadError(
            f"expected an image array of shape (H, W, 3) RGB, got shape {tuple(np.shape(image))}"
        )
    return img


def _resize(img: np.ndarray, w: int, h: int, *, shrinking: bool) -> np.ndarray:
    """OpenCV resize as MindYOLO's loader calls it: pixel area averaging when shrinking, bilinear
    otherwise.  Every channel is resized on its own, so RGB and BGR give the same pixels."""
    if (h, w) == img.shape[:2]:
        return img
    import cv2

    method = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(img), (w, h), interpolation=method)


def letterbox(
    img: np.ndarray,
    size: int | tuple[int, int],
    *,
    pad: int = PAD_VALUE,
    scaleup: bool = False,
) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Fit ``img`` (H, W, 3 uint8) into ``size`` (int for a square, or (h, w)) keeping its
    aspect ratio, centred, with constant padding ``pad``.

    The image is shrunk if it is too large; it is enlarged only with ``scaleup=True``; either
    way with OpenCV's bilinear resize, as MindYOLO's letterbox does.  Returns
    ``(padded image, ratio, (padw, padh))`` where the paddings are the (float) half widths, as
    MindYOLO records them: the pixels of the left/top border are ``round(pad - 0.1)``.
    """
    img = _as_rgb(img)
    th, tw = (size, size) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    if th < 1 or tw < 1:
        raise ValueError(f"letterbox size must be positive, got {size}")
    h, w = img.shape[:2]
    r = min(th / h, tw / w)
    if not scaleup:
        r = min(r, 1.0)
    nw, nh = max(int(round(w * r)), 1), max(int(round(h * r)), 1)
    img = _resize(img, nw, nh, shrinking=False)
    dw, dh = (tw - nw) / 2, (th - nh) / 2
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    out = np.full((nh + top + bottom, nw + left + right, 3), pad, dtype=np.uint8)
    out[top : top + nh, left : left + nw] = img
    return out, r, (dw, dh)


def preprocess(image: np.ndarray, img_size: int) -> tuple[np.ndarray, PreprocessMeta]:
    """The eval input for one RGB image: ``(x (3, img_size, img_size) float32 in [0, 1], meta)``.

    The long side is resized to ``img_size`` first (small images are enlarged here), then the
    image is letterboxed to a square without further scaling (fact sheet §5.1).
    """
    img = _as_rgb(image)
    img_size = int(img_size)
    if img_size < 1:
        raise ValueError(f"img_size must be positive, got {img_size}")
    h0, w0 = img.shape[:2]
    r = img_size / max(h0, w0)
    if r != 1:
        # int() truncates the target size, as MindYOLO does; only a 1-px-thin image needs the max
        img = _resize(img, max(int(w0 * r), 1), max(int(h0 * r), 1), shrinking=r < 1)
    h, w = img.shape[:2]
    boxed, ratio, pad = letterbox(img, img_size, scaleup=False)
    x = np.ascontiguousarray(boxed.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)
    meta = PreprocessMeta(
        original_hw=(h0, w0),
        resized_hw=(h, w),
        hw_scale=(h / h0, w / w0),
        letterbox_ratio=float(ratio),
        pad=(float(pad[0]), float(pad[1])),
        input_hw=(int(boxed.shape[0]), int(boxed.shape[1])),
    )
    return x, meta


def scale_boxes_back(
    boxes: np.ndarray, meta: PreprocessMeta, original_hw: tuple[int, int] | None = None
) -> np.ndarray:
    """Map ``(K, 4)`` xyxy boxes from network-input pixels to the original image, clipped to it.

    Subtracts the letterbox padding and divides both axes by ``meta.ratio`` (fact sheet §5.3),
    in float32 like MindYOLO (its float64 pad and ratio meet a float32 array).  ``original_hw``
    defaults to the size recorded in ``meta``.  Returns float32.
    """
    h0, w0 = original_hw if original_hw is not None else meta.original_hw
    out = np.array(boxes, dtype=np.float32, copy=True).reshape(-1, 4)
    padw, padh = (np.float32(v) for v in meta.pad)
    out[:, [0, 2]] -= padw
    out[:, [1, 3]] -= padh
    out /= np.float32(meta.ratio)
    out[:, [0, 2]] = out[:, [0, 2]].clip(np.float32(0), np.float32(w0))
    out[:, [1, 3]] = out[:, [1, 3]].clip(np.float32(0), np.float32(h0))
    return out


def xyxy_to_coco(xyxy: np.ndarray) -> np.ndarray:
    """``[x1, y1, x2, y2]`` -> COCO ``[x, y, w, h]`` in float32, by way of the centre as MindYOLO
    computes it (``x = (x1 + x2) / 2 - (x2 - x1) / 2``, which is not always ``x1`` in float32)."""
    b = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
    two = np.float32(2)
    wh = b[:, 2:4] - b[:, 0:2]
    centre = (b[:, 0:2] + b[:, 2:4]) / two
    return np.concatenate([centre - wh / two, wh], axis=1)


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """``[cx, cy, w, h]`` -> ``[x1, y1, x2, y2]`` along the last axis (in the input's dtype)."""
    xywh = np.asarray(xywh)
    half = xywh[..., 2:4] / xywh.dtype.type(2) if xywh.dtype.kind == "f" else xywh[..., 2:4] / 2
    return np.concatenate([xywh[..., 0:2] - half, xywh[..., 0:2] + half], axis=-1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``(len(a), len(b))`` of xyxy boxes; area without +1, denominator + 1e-6."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-6)


def nms(
    pred: np.ndarray,
    *,
    conf: float = 0.001,
    iou: float = 0.65,
    multi_label: bool = True,
    max_det: int = 300,
) -> np.ndarray:
    """Detections ``(K, 6)`` float32 ``[x1, y1, x2, y2, score, cls]`` from one image's decoded
    predictions ``(N, 5 + nc)`` ``[cx, cy, w, h, obj, cls...]`` (fact sheet §5.2).

    score = obj * cls (obj alone for a one-class network) must exceed ``conf``; with
    ``multi_label`` (and more than one class) every class over it becomes a detection,
    otherwise only each box's best class.  All arithmetic is float32, as in MindYOLO: boxes are
    shifted by ``class * 4096`` *before* IoU is computed (the shifted coordinates lose low bits,
    and that decides boxes near the threshold), candidates are ordered by NumPy's default
    ``argsort`` of the float32 scores, reversed (its tie order, which is not a stable sort's),
    and a box is dropped when its IoU with a kept box exceeds ``iou``.  At most ``max_det``
    detections come back, best first.
    """
    pred = np.asarray(pred)
    if pred.ndim != 2 or pred.shape[1] < 6:
        raise ValueError(
            f"nms expects one image's predictions of shape (N, 5 + classes), got {pred.shape}; "
            "call it per image of a batch"
        )
    if not 0 <= conf <= 1 or not 0 <= iou <= 1:
        raise ValueError(f"conf and iou must lie in [0, 1], got conf={conf}, iou={iou}")
    if int(max_det) < 1:
        raise ValueError(f"max_det must be >= 1, got {max_det}")
    empty = np.zeros((0, 6), dtype=np.float32)
    conf32 = np.float32(conf)
    pred = np.asarray(pred, dtype=np.float32)
    pred = pred[pred[:, 4] > conf32]
    if not len(pred):
        return empty
    nc = pred.shape[1] - 5
    scores = pred[:, 4:5].copy() if nc == 1 else pred[:, 5:] * pred[:, 4:5]
    boxes = xywh_to_xyxy(pred[:, :4])
    if multi_label and nc > 1:
        rows, cls = np.nonzero(scores > conf32)
        score = scores[rows, cls]
    else:
        cls = scores.argmax(axis=1)
        score = scores[np.arange(len(scores)), cls]
        rows = np.nonzero(score > conf32)[0]
        cls, score = cls[rows], score[rows]
    if not len(rows):
        return empty
    if len(rows) > MAX_CANDIDATES:
        top = np.argsort(score)[-MAX_CANDIDATES:]  # MindYOLO's cut, in its (ascending) order
        rows, cls, score = rows[top], cls[top], score[top]
    cand = boxes[rows]
    shifted = cand + (cls.astype(np.float32) * np.float32(CLASS_OFFSET))[:, None]
    order = np.argsort(score)[::-1]
    if _classes_cannot_meet(cand):
        # the offsets keep every class apart, so greedy NMS per class is the same computation
        keep = greedy_nms_per_class(shifted[order], cls[order], iou, max_keep=int(max_det))
    else:
        keep = greedy_nms(shifted[order], iou, max_keep=int(max_det))
    picked = order[keep]
    det = np.empty((len(picked), 6), dtype=np.float32)
    det[:, :4] = cand[picked]
    det[:, 4] = score[picked]
    det[:, 5] = cls[picked]
    return det


def _classes_cannot_meet(boxes: np.ndarray) -> bool:
    """True when boxes of different classes, shifted 4096 px apart, can never overlap: finite
    coordinates spanning less than the offset, no negative widths or heights."""
    if not np.isfinite(boxes).all():
        return False
    if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        return False
    return float(boxes.max()) - float(boxes.min()) < CLASS_OFFSET


def _overlap(boxes, area, i, rest, one_e6):
    """IoU of box ``i`` with boxes ``rest``, in the boxes' dtype and MindYOLO's operation order."""
    x1, y1, x2, y2 = boxes.T
    iw = np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])
    ih = np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])
    np.maximum(iw, 0, out=iw)
    np.maximum(ih, 0, out=ih)
    inter = iw * ih
    return inter / (area[i] + area[rest] - inter + one_e6)


def _float_boxes(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes)
    if boxes.dtype not in (np.float32, np.float64):
        boxes = boxes.astype(np.float64)
    return boxes.reshape(-1, 4)


def greedy_nms_per_class(
    boxes: np.ndarray, cls: np.ndarray, iou: float, *, max_keep: int | None = None
) -> np.ndarray:
    """``greedy_nms`` for boxes that only suppress boxes of their own class.

    Same answer and order as the global greedy pass (boxes sorted best first), but each kept box
    is compared only with the survivors of its class: a heap holds each class's best survivor,
    and the overall best is kept next.  Arithmetic in the boxes' dtype (float32 or float64).
    """
    boxes = _float_boxes(boxes)
    n = len(boxes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    limit = n if max_keep is None else min(n, max_keep)
    t = boxes.dtype.type
    one_e6, thr = t(1e-6), t(iou)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    cls = np.asarray(cls)
    by_class = np.argsort(cls, kind="stable")  # within a class: still best first
    starts = np.flatnonzero(np.r_[True, np.diff(cls[by_class]) != 0])
    alive = dict(enumerate(np.split(by_class, starts[1:])))
    heap = [(int(a[0]), g) for g, a in alive.items()]
    heapq.heapify(heap)
    keep = []
    while heap and len(keep) < limit:
        i, g = heapq.heappop(heap)
        keep.append(i)
        rest = alive[g][1:]
        rest = rest[_overlap(boxes, area, i, rest, one_e6) <= thr]
        alive[g] = rest
        if len(rest):
            heapq.heappush(heap, (int(rest[0]), g))
    return np.asarray(keep, dtype=np.int64)


def greedy_nms(boxes: np.ndarray, iou: float, *, max_keep: int | None = None) -> np.ndarray:
    """Indices kept by greedy NMS over xyxy ``boxes`` already sorted best first.

    Each step keeps the best surviving box and removes, in one vectorized comparison, every
    later box overlapping it by more than ``iou`` (compared in the boxes' dtype); so the loop
    runs once per *kept* box and stops after ``max_keep`` of them, never once per candidate.
    """
    boxes = _float_boxes(boxes)
    n = len(boxes)
    limit = n if max_keep is None else min(n, max_keep)
    t = boxes.dtype.type
    one_e6, thr = t(1e-6), t(iou)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    alive = np.arange(n)
    keep = []
    while len(alive) and len(keep) < limit:
        i = alive[0]
        keep.append(i)
        rest = alive[1:]
        alive = rest[_overlap(boxes, area, i, rest, one_e6) <= thr]
    return np.asarray(keep, dtype=np.int64)
