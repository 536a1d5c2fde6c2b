"""Box IoU variants and BCE-with-logits shared by the YOLO losses (MindSpore, graph-mode safe)."""

from __future__ import annotations

import math

import mindspore as ms
from mindspore import ops


def bce_with_logits(logits, target, pos_weight: float = 1.0):
    """Elementwise binary cross-entropy on logits, numerically stable, optional positive weight."""
    log_sig_neg = ops.softplus(-logits)  # -log(sigmoid(x))
    if pos_weight == 1.0:
        return (1.0 - target) * logits + log_sig_neg
    return (1.0 - target) * logits + (1.0 + (pos_weight - 1.0) * target) * log_sig_neg


def focal(loss, logits, target, gamma: float, alpha: float = 0.25):
    """Scale an elementwise BCE into the focal loss (Lin et al.); gamma = 0 leaves it unchanged."""
    p = ops.sigmoid(logits)
    p_t = target * p + (1.0 - target) * (1.0 - p)
    alpha_factor = target * alpha + (1.0 - target) * (1.0 - alpha)
    return loss * alpha_factor * ops.pow(1.0 - p_t, gamma)


def _corners(xy, wh):
    half = wh / 2.0
    return (
        xy[..., 0] - half[..., 0],
        xy[..., 1] - half[..., 1],
        xy[..., 0] + half[..., 0],
        xy[..., 1] + half[..., 1],
    )


def box_iou_xywh(xy1, wh1, xy2, wh2, *, kind: str = "iou", eps: float = 1e-7):
    """IoU / GIoU / CIoU of boxes given as centre and size (broadcasting over leading axes).

    The CIoU aspect term's weight alpha carries no gradient, as in YOLOv5/MindYOLO.
    """
    b1x1, b1y1, b1x2, b1y2 = _corners(xy1, wh1)
    b2x1, b2y1, b2x2, b2y2 = _corners(xy2, wh2)
    inter_w = ops.clamp(ops.minimum(b1x2, b2x2) - ops.maximum(b1x1, b2x1), min=0.0)
    inter_h = ops.clamp(ops.minimum(b1y2, b2y2) - ops.maximum(b1y1, b2y1), min=0.0)
    inter = inter_w * inter_h
    w1, h1 = b1x2 - b1x1, b1y2 - b1y1 + eps
    w2, h2 = b2x2 - b2x1, b2y2 - b2y1 + eps
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    if kind == "iou":
        return iou
    cw = ops.maximum(b1x2, b2x2) - ops.minimum(b1x1, b2x1)
    ch = ops.maximum(b1y2, b2y2) - ops.minimum(b1y1, b2y1)
    if kind == "giou":
        c_area = cw * ch + eps
        return iou - (c_area - union) / c_area
    c2 = cw * cw + ch * ch + eps
    rho2 = ((b2x1 + b2x2 - b1x1 - b1x2) ** 2 + (b2y1 + b2y2 - b1y1 - b1y2) ** 2) / 4.0
    v = (4.0 / math.pi**2) * ops.pow(ops.atan(w2 / h2) - ops.atan(w1 / h1), 2.0)
    alpha = ops.stop_gradient(v / (v - iou + (1.0 + eps)))
    return iou - (rho2 / c2 + v * alpha)


def f32(x):
    return ops.cast(x, ms.float32)
