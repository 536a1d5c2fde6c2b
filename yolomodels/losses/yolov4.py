"""YOLOv4Loss: best-anchor-or-IoU>0.213 assignment over all 9 anchors, centre cell only, GIoU box,
objectness with an ignore mask, all terms summed (fact sheet §3.3, quirks included).

Quirks kept on purpose: the box weight is ``2 - w*h/(W*H)`` with normalised w, h but pixel W, H
(so about 2); unassigned entries scatter objectness 1 into (image 0, cell 0, 0, anchor 0) of
every level; the returned loss is ``L / bs / 8`` with a hard-coded 8.
"""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from yolomodels.levels import V4_LEVELS, Level
from yolomodels.losses.common import bce_with_logits, box_iou_xywh, f32


class YOLOv4Loss(nn.Cell):
    """``loss(preds, targets, images) -> (L / bs / 8, items[L, box, obj, cls] / bs)``.

    ``preds``: 3 tuples (raw (bs, H, W, 3, 5 + nc), box_xy (bs, H, W, 3, 2), box_wh (...)),
    stride 32 first, boxes normalised to the input.  ``images`` supplies the input H and W.
    ``levels`` (pixel anchors per level, in the head's order) are the network head's
    (``net.head.levels``); they default to :data:`yolomodels.levels.V4_LEVELS`.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        levels: tuple[Level, ...] = V4_LEVELS,
        box: float = 10.0,
        obj: float = 1.0,
        cls: float = 1.0,
        ignore_threshold: float = 0.7,
        iou_threshold: float = 0.213,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.levels = tuple(levels)
        self.anchors = Tensor(np.asarray([lv.anchors for lv in levels], np.float32).reshape(-1, 2))
        self.nl = len(levels)
        self.na = self.anchors.shape[0] // self.nl
        self.nc = int(num_classes)
        self.hyp_box, self.hyp_obj, self.hyp_cls = float(box), float(obj), float(cls)
        self.ignore_threshold = float(ignore_threshold)
        self.iou_threshold = float(iou_threshold)
        self.cp, self.cn = 1.0 - 0.5 * label_smoothing, 0.5 * label_smoothing

    def construct(self, preds, targets, images):
        bs = targets.shape[0]
        in_h, in_w = images.shape[2], images.shape[3]
        targets = f32(targets)
        t = targets.reshape(-1, 6)
        nt = t.shape[0]
        valid = f32(t[:, 1] >= 0)
        # Anchor assignment on width/height only (both boxes centred at the origin).
        gwh = t[:, 4:6] * Tensor(np.array([in_w, in_h], np.float32))
        inter = ops.minimum(ops.expand_dims(gwh, 1), ops.expand_dims(self.anchors, 0)).prod(2)
        union = ops.expand_dims(gwh.prod(1), 1) + ops.expand_dims(self.anchors.prod(1), 0) - inter
        aiou = inter / (union + 1e-7)  # (nt, 9)
        best = aiou.max(axis=1, keepdims=True)
        assigned = ops.maximum(f32(aiou == best), f32(aiou > self.iou_threshold))
        assigned = assigned * ops.expand_dims(valid, 1)
        # Ground truth per image for the ignore mask.
        gt_xy, gt_wh = targets[:, :, 2:4], targets[:, :, 4:6]
        gt_valid = f32(targets[:, :, 1] >= 0)
        box_scale = 2.0 - t[:, 4] * t[:, 5] / float(in_w * in_h)
        lbox = ops.zeros((), ms.float32)
        lobj = ops.zeros((), ms.float32)
        lcls = ops.zeros((), ms.float32)
        for i in range(self.nl):
            raw, pxy, pwh = preds[i]
            h, w, no = raw.shape[1], raw.shape[2], raw.shape[4]
            raw = f32(raw)
            pxy, pwh = f32(pxy), f32(pwh)
            # Ignore mask: best IoU of each predicted box with its image's ground truth.
            pxy_f = pxy.reshape(bs, -1, 1, 2)
            pwh_f = pwh.reshape(bs, -1, 1, 2)
            ious = box_iou_xywh(
                pxy_f, pwh_f, ops.expand_dims(gt_xy, 1), ops.expand_dims(gt_wh, 1), kind="iou"
            ) * ops.expand_dims(gt_valid, 1)
            ignore = ops.stop_gradient(f32(ious.max(axis=2) < self.ignore_threshold)).reshape(-1)
            # Entries (anchor of this level, target), centre cell only.
            mask = ops.transpose(assigned[:, i * self.na : (i + 1) * self.na], (1, 0)).reshape(
                -1
            )  # (na * nt,)
            ones = ops.ones((self.na, nt), ms.float32)
            gi = ops.clamp(ops.floor(t[:, 2] * w), 0.0, w - 1.0)
            gj = ops.clamp(ops.floor(t[:, 3] * h), 0.0, h - 1.0)
            a = ones * ops.arange(self.na).astype(ms.float32).reshape(-1, 1)
            lin = ((((t[:, 0] * h + gj) * w + gi) * self.na + a).reshape(-1) * mask).astype(
                ms.int32
            )
            idx = ops.expand_dims(lin, 1)
            y_obj = ops.tensor_scatter_update(
                ops.zeros((bs * h * w * self.na,), ms.float32), idx, ops.ones_like(mask)
            )
            bce = bce_with_logits(raw[..., 4].reshape(-1), y_obj)
            lobj = lobj + (y_obj * bce + (1.0 - y_obj) * bce * ignore).sum()
            exy = ops.gather(pxy.reshape(-1, 2), lin, 0)
            ewh = ops.gather(pwh.reshape(-1, 2), lin, 0)
            txy = (ones.reshape(self.na, nt, 1) * t[:, 2:4]).reshape(-1, 2)
            twh = (ones.reshape(self.na, nt, 1) * t[:, 4:6]).reshape(-1, 2)
            giou = box_iou_xywh(exy, ewh, txy, twh, kind="giou")
            scale = (ones * box_scale).reshape(-1)
            lbox = lbox + ((1.0 - giou) * scale * mask).sum()
            logits = ops.gather(raw.reshape(-1, no), lin, 0)[:, 5:]
            tcls = (ones * t[:, 1]).reshape(-1)
            onehot = ops.one_hot(
                ops.clamp(tcls, min=0.0).astype(ms.int32),
                self.nc,
                Tensor(self.cp, ms.float32),
                Tensor(self.cn, ms.float32),
            )
            lcls = lcls + (bce_with_logits(logits, onehot) * ops.expand_dims(mask, 1)).sum()
        lbox = lbox * self.hyp_box
        lobj = lobj * self.hyp_obj
        lcls = lcls * self.hyp_cls
        total = lbox + lobj + lcls
        items = ops.stop_gradient(ops.stack([total, lbox, lobj, lcls])) / bs
        return total / bs / 8.0, items
