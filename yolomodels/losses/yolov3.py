"""YOLOv3Loss: YOLOv5-style assignment (3 cells per anchor match), CIoU box, IoU-target objectness.

Follows fact sheet §3.2, including its quirks: matched entries that are disabled keep their slot
with a zero mask and point at (image 0, anchor 0, cell 0, 0); objectness is a mean over every
cell times the level balance; the returned loss is multiplied by the batch size.
"""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from yolomodels.levels import V3_LEVELS, Level
from yolomodels.losses.common import bce_with_logits, box_iou_xywh, f32, focal


class YOLOv3Loss(nn.Cell):
    """``loss(preds, targets, images=None) -> (loss * bs, items[sum, box, obj, cls])``.

    ``preds``: the training-mode YOLOv3 outputs, a tuple of 3 raw tensors (bs, 3, H, W, 5 + nc)
    for strides 8, 16, 32.  ``targets``: (bs, T, 6) rows [image, class, cx, cy, w, h]
    normalised, padding rows with class -1.  ``levels`` (strides and pixel anchors) are the
    network head's (``net.head.levels``); they default to :data:`yolomodels.levels.V3_LEVELS`.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        levels: tuple[Level, ...] = V3_LEVELS,
        box: float = 0.05,
        obj: float = 0.7,
        cls: float = 0.3,
        anchor_t: float = 4.0,
        label_smoothing: float = 0.0,
        fl_gamma: float = 0.0,
        cls_pw: float = 1.0,
        obj_pw: float = 1.0,
        balance=(4.0, 1.0, 0.4),
        gr: float = 1.0,
    ):
        super().__init__()
        self.levels = tuple(levels)
        pix = np.asarray([lv.anchors for lv in levels], np.float32)  # (nl, na, 2)
        grid = pix / np.asarray([lv.stride for lv in levels], np.float32)[:, None, None]
        self.nl, self.na = grid.shape[0], grid.shape[1]
        self.anchors = Tensor(grid)  # (nl, na, 2) in grid units
        self.nc = int(num_classes)
        self.hyp_box, self.hyp_obj, self.hyp_cls = float(box), float(obj), float(cls)
        self.anchor_t = float(anchor_t)
        self.cp, self.cn = 1.0 - 0.5 * label_smoothing, 0.5 * label_smoothing
        self.fl_gamma = float(fl_gamma)
        self.cls_pw, self.obj_pw = float(cls_pw), float(obj_pw)
        self.balance = tuple(float(b) for b in balance)
        self.gr = float(gr)

    def _bce(self, logits, target, pw):
        loss = bce_with_logits(logits, target, pw)
        if self.fl_gamma > 0:
            loss = focal(loss, logits, target, self.fl_gamma)
        return loss

    def construct(self, preds, targets, images=None):
        bs = targets.shape[0]
        t = f32(targets.reshape(-1, 6))
        valid = f32(t[:, 1] >= 0)  # (nt,)
        lbox = ops.zeros((), ms.float32)
        lobj = ops.zeros((), ms.float32)
        lcls = ops.zeros((), ms.float32)
        for i in range(self.nl):
            p = preds[i]
            h, w, no = p.shape[2], p.shape[3], p.shape[4]
            anchors = self.anchors[i]  # (na, 2)
            size = Tensor(np.array([w, h], np.float32))
            gxy = t[:, 2:4] * size  # (nt, 2)
            gwh = t[:, 4:6] * size
            # Shape match of every target with every anchor of this level: (na, nt).
            r = ops.expand_dims(gwh, 0) / ops.expand_dims(anchors, 1)
            rmax = ops.maximum(r, 1.0 / r).max(axis=2)
            match = f32(rmax < self.anchor_t) * ops.expand_dims(valid, 0)
            # One horizontal and one vertical neighbour cell (0.5 offsets), else disabled.
            frac = gxy - ops.floor(gxy)
            gxi = size - gxy
            fraci = gxi - ops.floor(gxi)
            low = f32(frac < 0.5) * f32(gxy > 1.0)  # left / above
            high = (1.0 - low) * f32(fraci < 0.5) * f32(gxi > 1.0)  # right / below
            off = low * 0.5 - high * 0.5  # (nt, 2)
            zero = ops.zeros_like(off[:, 0])
            offsets = ops.stack(
                [
                    ops.zeros_like(off),
                    ops.stack([off[:, 0], zero], 1),
                    ops.stack([zero, off[:, 1]], 1),
                ],
                0,
            )  # (3 slots, nt, 2)
            slot_ok = ops.stack(
                [ops.ones_like(zero), low[:, 0] + high[:, 0], low[:, 1] + high[:, 1]], 0
            )
            gij = ops.floor(ops.expand_dims(gxy, 0) - offsets)  # (3, nt, 2)
            gi = ops.clamp(gij[..., 0], 0.0, w - 1.0)
            gj = ops.clamp(gij[..., 1], 0.0, h - 1.0)
            # Entries: (slot, anchor, target) flattened.
            mask = (ops.expand_dims(slot_ok, 1) * ops.expand_dims(match, 0)).reshape(-1)
            ones3 = ops.ones((3, self.na, t.shape[0]), ms.float32)
            b = (ones3 * t[:, 0]).reshape(-1)
            a = (ones3 * ops.arange(self.na).astype(ms.float32).reshape(1, -1, 1)).reshape(-1)
            gi_e = (ones3 * ops.expand_dims(gi, 1)).reshape(-1)
            gj_e = (ones3 * ops.expand_dims(gj, 1)).reshape(-1)
            txy = ops.stack(
                [
                    (ones3 * ops.expand_dims(ops.expand_dims(gxy[:, 0], 0) - gi, 1)).reshape(-1),
                    (ones3 * ops.expand_dims(ops.expand_dims(gxy[:, 1], 0) - gj, 1)).reshape(-1),
                ],
                1,
            )
            twh = ops.stack([(ones3 * gwh[:, 0]).reshape(-1), (ones3 * gwh[:, 1]).reshape(-1)], 1)
            tcls = (ones3 * t[:, 1]).reshape(-1)
            lin = ((((b * self.na + a) * h + gj_e) * w + gi_e) * mask).astype(ms.int32)
            ps = ops.gather(p.reshape(-1, no), lin, 0)  # (E, no)
            pxy = ops.sigmoid(ps[:, 0:2]) * 2.0 - 0.5
            anc = ops.gather(anchors, a.astype(ms.int32), 0)
            pwh = ops.pow(ops.sigmoid(ps[:, 2:4]) * 2.0, 2.0) * anc
            iou = box_iou_xywh(pxy, pwh, txy, twh, kind="ciou")
            n_match = mask.sum()
            lbox = lbox + ((1.0 - iou) * mask).sum() / ops.maximum(n_match, 1.0)
            score = ops.clamp(ops.stop_gradient(iou), min=0.0)
            tobj_val = ((1.0 - self.gr) + self.gr * score) * mask
            tobj = ops.tensor_scatter_update(
                ops.zeros((bs * self.na * h * w,), ms.float32), ops.expand_dims(lin, 1), tobj_val
            )
            obj_loss = self._bce(p[..., 4].reshape(-1), tobj, self.obj_pw).mean()
            lobj = lobj + obj_loss * self.balance[i]
            if self.nc > 1:
                onehot = ops.one_hot(
                    ops.clamp(tcls, min=0.0).astype(ms.int32),
                    self.nc,
                    Tensor(self.cp, ms.float32),
                    Tensor(self.cn, ms.float32),
                )
                cls_loss = self._bce(ps[:, 5:], onehot, self.cls_pw)
                lcls = lcls + (cls_loss * ops.expand_dims(mask, 1)).sum() / ops.maximum(
                    n_match * self.nc, 1.0
                )
        lbox = lbox * self.hyp_box
        lobj = lobj * self.hyp_obj
        lcls = lcls * self.hyp_cls
        total = lbox + lobj + lcls
        items = ops.stop_gradient(ops.stack([total, lbox, lobj, lcls]))
        return total * bs, items
