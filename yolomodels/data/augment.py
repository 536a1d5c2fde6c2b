"""Training augmentations (mosaic, random perspective, mixup, HSV, flip, letterbox) in numpy + Pillow.

Images are HWC uint8 RGB arrays; labels are (n, 5) float32 ``[class, x1, y1, x2, y2]`` in pixels of
the image they travel with.  Every random choice comes from the ``numpy.random.Generator`` passed in,
and :class:`Augmenter` derives that generator from ``(seed, epoch, index)``, so a sample is the same
whichever worker process makes it and in whatever order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from yolomodels.errors import ImageReadError

PAD_VALUE = 114


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges; the defaults are MindYOLO's YOLOv3/YOLOv4 training values."""

    mosaic: float = 1.0  # probability of a 4-image mosaic
    degrees: float = 0.0  # rotation range, +/- degrees
    translate: float = 0.1  # translation range, fraction of the output size
    scale: float = 0.9  # scale factor drawn from [1 - scale, 1 + scale]
    shear: float = 0.0  # shear range, +/- degrees
    perspective: float = 0.0
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    fliplr: float = 0.5
    mixup: float = 0.1


NO_AUGMENT = AugmentConfig(
    mosaic=0.0, translate=0.0, scale=0.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, fliplr=0.0, mixup=0.0
)


def load_image(path: str | Path, img_size: int) -> np.ndarray:
    """Read an image as RGB and resize it so its long side is ``img_size`` (bilinear)."""
    from yolomodels.images import read_rgb

    im = read_rgb(path)  # ImageReadError for unreadable or oversized files
    try:
        w0, h0 = im.size
        r = img_size / max(w0, h0)
        if r != 1:
            size = (max(int(w0 * r), 1), max(int(h0 * r), 1))
            im = im.resize(size, Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"image {path} cannot be read ({exc})") from None


def labels_to_pixels(labels: np.ndarray, w: int, h: int) -> np.ndarray:
    """[cls, cx, cy, w, h] normalised -> [cls, x1, y1, x2, y2] pixels of a w x h image."""
    out = np.empty((len(labels), 5), np.float32)
    out[:, 0] = labels[:, 0]
    out[:, 1] = (labels[:, 1] - labels[:, 3] / 2) * w
    out[:, 2] = (labels[:, 2] - labels[:, 4] / 2) * h
    out[:, 3] = (labels[:, 1] + labels[:, 3] / 2) * w
    out[:, 4] = (labels[:, 2] + labels[:, 4] / 2) * h
    return out


def labels_to_normalised(labels: np.ndarray, w: int, h: int) -> np.ndarray:
    """[cls, x1, y1, x2, y2] pixels -> [cls, cx, cy, w, h] normalised to a w x h image."""
    out = np.empty((len(labels), 5), np.float32)
    out[:, 0] = labels[:, 0]
    out[:, 1] = (labels[:, 1] + labels[:, 3]) / 2 / w
    out[:, 2] = (labels[:, 2] + labels[:, 4]) / 2 / h
    out[:, 3] = (labels[:, 3] - labels[:, 1]) / w
    out[:, 4] = (labels[:, 4] - labels[:, 2]) / h
    return out


def letterbox(img: np.ndarray, labels: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad (centred, value 114) an image whose long side is at most ``size`` to size x size."""
    h, w = img.shape[:2]
    if max(h, w) > size:
        r = size / max(h, w)
        nw, nh = max(round(w * r), 1), max(round(h * r), 1)
        img = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))
        labels = labels.copy()
        labels[:, 1:] *= np.array([nw / w, nh / h, nw / w, nh / h], np.float32)
        h, w = nh, nw
    top, left = (size - h) // 2, (size - w) // 2
    out = np.full((size, size, 3), PAD_VALUE, np.uint8)
    out[top : top + h, left : left + w] = img
    labels = labels.copy()
    labels[:, [1, 3]] += left
    labels[:, [2, 4]] += top
    return out, labels


def mosaic(
    parts: list[tuple[np.ndarray, np.ndarray]], size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Tile four images around a random centre of a 2s x 2s canvas; boxes are clipped to it."""
    s = size
    canvas = np.full((2 * s, 2 * s, 3), PAD_VALUE, np.uint8)
    xc, yc = (int(v) for v in rng.uniform(s / 2, 3 * s / 2, size=2))
    all_labels = []
    for i, (img, labels) in enumerate(parts):
        h, w = img.shape[:2]
        if i == 0:  # top left
            xa1, ya1, xa2, ya2 = max(xc - w, 0), max(yc - h, 0), xc, yc
            xb1, yb1 = w - (xa2 - xa1), h - (ya2 - ya1)
        elif i == 1:  # top right
            xa1, ya1, xa2, ya2 = xc, max(yc - h, 0), min(xc + w, 2 * s), yc
            xb1, yb1 = 0, h - (ya2 - ya1)
        elif i == 2:  # bottom left
            xa1, ya1, xa2, ya2 = max(xc - w, 0), yc, xc, min(2 * s, yc + h)
            xb1, yb1 = w - (xa2 - xa1), 0
        else:  # bottom right
            xa1, ya1, xa2, ya2 = xc, yc, min(xc + w, 2 * s), min(2 * s, yc + h)
            xb1, yb1 = 0, 0
        canvas[ya1:ya2, xa1:xa2] = img[yb1 : yb1 + (ya2 - ya1), xb1 : xb1 + (xa2 - xa1)]
        shifted = labels.copy()
        shifted[:, [1, 3]] += xa1 - xb1
        shifted[:, [2, 4]] += ya1 - yb1
        all_labels.append(shifted)
    labels = np.concatenate(all_labels, 0) if all_labels else np.zeros((0, 5), np.float32)
    labels[:, 1:] = labels[:, 1:].clip(0, 2 * s)
    return canvas, labels


def random_perspective(
    img: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    *,
    degrees: float = 0.0,
    translate: float = 0.1,
    scale: float = 0.5,
    shear: float = 0.0,
    perspective: float = 0.0,
    border: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Random rotation/scale/shear/translation about the centre; output side = input - 2*border.

    Boxes are the hull of their warped corners, clipped to the output, and dropped when they
    become thinner than 2 px, keep less than 10% of their (scaled) area, or exceed aspect 20.
    """
    h_in, w_in = img.shape[:2]
    h, w = h_in + 2 * border, w_in + 2 * border
    centre = np.eye(3)
    centre[0, 2], centre[1, 2] = -w_in / 2, -h_in / 2
    persp = np.eye(3)
    persp[2, 0], persp[2, 1] = rng.uniform(-perspective, perspective, size=2)
    rot = np.eye(3)
    angle = rng.uniform(-degrees, degrees)
    s = rng.uniform(1 - scale, 1 + scale)
    a, c = math.cos(math.radians(angle)) * s, math.sin(math.radians(angle)) * s
    rot[:2, :2] = [[a, c], [-c, a]]
    sh = np.eye(3)
    sh[0, 1] = math.tan(math.radians(rng.uniform(-shear, shear)))
    sh[1, 0] = math.tan(math.radians(rng.uniform(-shear, shear)))
    tr = np.eye(3)
    tr[0, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * w
    tr[1, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * h
    m = tr @ sh @ rot @ persp @ centre
    if border != 0 or not np.allclose(m, np.eye(3)):
        inv = np.linalg.inv(m)
        pil = Image.fromarray(img)
        fill = (PAD_VALUE,) * 3
        if perspective:
            inv = inv / inv[2, 2]
            coeffs = tuple(inv.ravel()[:8])
            pil = pil.transform((w, h), Image.PERSPECTIVE, coeffs, Image.BILINEAR, fillcolor=fill)
        else:
            coeffs = tuple(inv[:2].ravel())
            pil = pil.transform((w, h), Image.AFFINE, coeffs, Image.BILINEAR, fillcolor=fill)
        img = np.asarray(pil)
    n = len(labels)
    if n:
        corners = np.ones((n * 4, 3))
        corners[:, :2] = labels[:, [1, 2, 3, 4, 1, 4, 3, 2]].reshape(n * 4, 2)
        warped = corners @ m.T
        warped = warped[:, :2] / (warped[:, 2:3] if perspective else 1.0)
        xs, ys = warped[:, 0].reshape(n, 4), warped[:, 1].reshape(n, 4)
        boxes = np.stack([xs.min(1), ys.min(1), xs.max(1), ys.max(1)], 1)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        keep = box_candidates(labels[:, 1:].T * s, boxes.T)
        labels = np.concatenate([labels[keep, :1], boxes[keep]], 1).astype(np.float32)
    return img, labels


def box_candidates(before: np.ndarray, after: np.ndarray, *, wh_thr=2.0, ar_thr=20.0, area_thr=0.1):
    """Mask of boxes (4, n xyxy) that survived a warp well enough to keep as targets."""
    w1, h1 = before[2] - before[0], before[3] - before[1]
    w2, h2 = after[2] - after[0], after[3] - after[1]
    ar = np.maximum(w2 / (h2 + 1e-16), h2 / (w2 + 1e-16))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + 1e-16) > area_thr) & (ar < ar_thr)


def mixup(a: tuple, b: tuple, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Blend two same-size samples with a Beta(8, 8) ratio and keep both label sets."""
    r = rng.beta(8.0, 8.0)
    img = (a[0].astype(np.float32) * r + b[0].astype(np.float32) * (1 - r)).astype(np.uint8)
    return img, np.concatenate([a[1], b[1]], 0)


def hsv_augment(img: np.ndarray, rng: np.random.Generator, *, h=0.015, s=0.7, v=0.4) -> np.ndarray:
    """Random multiplicative hue/saturation/value gains applied through lookup tables."""
    if not (h or s or v):
        return img
    gains = rng.uniform(-1, 1, 3) * np.array([h, s, v]) + 1
    hsv = np.asarray(Image.fromarray(img).convert("HSV"))
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x * gains[0]) % 256).astype(np.uint8)
    lut_s = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    out = np.stack([lut_h[hsv[..., 0]], lut_s[hsv[..., 1]], lut_v[hsv[..., 2]]], -1)
    return np.asarray(Image.fromarray(out, "HSV").convert("RGB"))


def fliplr(img: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right."""
    w = img.shape[1]
    labels = labels.copy()
    labels[:, [1, 3]] = w - labels[:, [3, 1]]
    return np.ascontiguousarray(img[:, ::-1]), labels


class Augmenter:
    """Makes training samples from a dataset's records, reproducibly from (seed, epoch, index)."""

    def __init__(self, records, *, img_size: int, config: AugmentConfig, seed: int = 0):
        self.records = records
        self.img_size = int(img_size)
        self.config = config
        self.seed = int(seed)

    def rng(self, index: int, epoch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(epoch), int(index)])

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rec = self.records[index]
        img = load_image(rec.path, self.img_size)
        h, w = img.shape[:2]
        return img, labels_to_pixels(rec.labels, w, h)

    def _mosaic_sample(self, index: int, rng: np.random.Generator) -> tuple:
        cfg, s = self.config, self.img_size
        others = rng.integers(0, len(self.records), size=3)
        img, labels = mosaic([self._load(i) for i in (index, *others)], s, rng)
        return random_perspective(
            img,
            labels,
            rng,
            degrees=cfg.degrees,
            translate=cfg.translate,
            scale=cfg.scale,
            shear=cfg.shear,
            perspective=cfg.perspective,
            border=-s // 2,
        )

    def sample(self, index: int, epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(HWC uint8 image of img_size^2, labels [cls, x1, y1, x2, y2] px) for one index."""
        cfg, s = self.config, self.img_size
        rng = self.rng(index, epoch)
        if cfg.mosaic > 0 and rng.random() < cfg.mosaic:
            img, labels = self._mosaic_sample(index, rng)
            if cfg.mixup > 0 and rng.random() < cfg.mixup:
                partner = self._mosaic_sample(int(rng.integers(0, len(self.records))), rng)
                img, labels = mixup((img, labels), partner, rng)
        else:
            img, labels = letterbox(*self._load(index), s)
            if cfg.degrees or cfg.translate or cfg.scale or cfg.shear or cfg.perspective:
                img, labels = random_perspective(
                    img,
                    labels,
                    rng,
                    degrees=cfg.degrees,
                    translate=cfg.translate,
                    scale=cfg.scale,
                    shear=cfg.shear,
                    perspective=cfg.perspective,
                )
        img = hsv_augment(img, rng, h=cfg.hsv_h, s=cfg.hsv_s, v=cfg.hsv_v)
        if cfg.fliplr > 0 and rng.random() < cfg.fliplr:
            img, labels = fliplr(img, labels)
        return img, labels

    def __call__(self, index: int, epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(CHW float32 in [0, 1], labels [cls, cx, cy, w, h] normalised) for one index."""
        img, labels = self.sample(index, epoch)
        chw = np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32) / 255.0
        return chw, labels_to_normalised(labels, self.img_size, self.img_size)
