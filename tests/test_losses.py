"""YOLOv3/YOLOv4 losses: each term on hand-computed cases, and the fact sheet's §3.4 values."""

from __future__ import annotations

import math

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor
from nethelpers import synthetic_value

from yolomodels.losses import build_loss
from yolomodels.losses.common import bce_with_logits, box_iou_xywh
from yolomodels.registry import build

LN2 = math.log(2.0)


def _targets(rows_per_image: list[list[list[float]]], max_boxes: int = 8) -> Tensor:
    """(bs, max_boxes, 6) padded target tensor from per-image [cls, cx, cy, w, h] rows."""
    bs = len(rows_per_image)
    t = np.full((bs, max_boxes, 6), -1.0, np.float32)
    t[:, :, 0] = np.arange(bs)[:, None]
    for b, rows in enumerate(rows_per_image):
        for k, row in enumerate(rows):
            t[b, k, 1:] = row
    return Tensor(t)


def test_bce_with_logits_matches_the_formula():
    x = np.array([-3.0, -0.5, 0.0, 0.7, 4.0], np.float32)
    y = np.array([0.0, 1.0, 0.3, 1.0, 0.0], np.float32)
    expected = -(y * np.log(1 / (1 + np.exp(-x))) + (1 - y) * np.log(1 - 1 / (1 + np.exp(-x))))
    got = bce_with_logits(Tensor(x), Tensor(y)).asnumpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Positive weight multiplies only the y * log(sigmoid) part.
    pw = bce_with_logits(Tensor(x), Tensor(y), 2.0).asnumpy()
    exp_pw = -(2 * y * np.log(1 / (1 + np.exp(-x))) + (1 - y) * np.log(1 - 1 / (1 + np.exp(-x))))
    np.testing.assert_allclose(pw, exp_pw, rtol=1e-5)


def test_iou_giou_ciou_on_hand_computed_boxes():
    # Box A: centre (1, 1), 2 x 2; box B: centre (2, 1), 2 x 2 -> overlap 1 x 2.
    a_xy, a_wh = Tensor([[1.0, 1.0]]), Tensor([[2.0, 2.0]])
    b_xy, b_wh = Tensor([[2.0, 1.0]]), Tensor([[2.0, 2.0]])
    iou = box_iou_xywh(a_xy, a_wh, b_xy, b_wh, kind="iou").asnumpy()[0]
    giou = box_iou_xywh(a_xy, a_wh, b_xy, b_wh, kind="giou").asnumpy()[0]
    ciou = box_iou_xywh(a_xy, a_wh, b_xy, b_wh, kind="ciou").asnumpy()[0]
    assert iou == pytest.approx(2 / 6, abs=1e-5)
    assert giou == pytest.approx(2 / 6 - 0 / 6, abs=1e-5)  # the hull (3 x 2) equals the union
    assert ciou == pytest.approx(2 / 6 - 1 / 13, abs=1e-5)  # centre distance 1, hull diagonal^2 13
    # Disjoint boxes: IoU 0, GIoU negative by the empty part of the hull.
    c_xy, c_wh = Tensor([[5.0, 1.0]]), Tensor([[2.0, 2.0]])
    assert box_iou_xywh(a_xy, a_wh, c_xy, c_wh, kind="iou").asnumpy()[0] == pytest.approx(0.0)
    g = box_iou_xywh(a_xy, a_wh, c_xy, c_wh, kind="giou").asnumpy()[0]
    assert g == pytest.approx(0 - (12 - 8) / 12, abs=1e-5)


def _ciou_same_centre(w1, h1, w2, h2):
    """CIoU of two boxes sharing a centre, the smaller inside the larger (by hand)."""
    iou = (min(w1, w2) * min(h1, h2)) / max(w1 * h1, w2 * h2)
    v = 4 / math.pi**2 * (math.atan(w2 / h2) - math.atan(w1 / h1)) ** 2
    alpha = v / (v - iou + 1 + 1e-7)
    return iou - v * alpha


def test_yolov3_loss_terms_by_hand():
    """Zero logits: every BCE is ln 2, predicted boxes are the anchors centred in their cells."""
    img = 64  # levels 8x8, 4x4, 2x2
    nc = 2
    preds = tuple(
        Tensor(np.zeros((1, 3, img // s, img // s, 5 + nc), np.float32)) for s in (8, 16, 32)
    )
    # Centre x = y = 2.5 cells at stride 8 (fraction 0.5 disables both neighbour cells); size =
    # anchor 0 of level 0 (10 x 13 px). Anchors 1 (16x30) and 2 (33x23) pass the ratio-4 test too;
    # no anchor of the coarser levels does.
    targets = _targets([[[1, 2.5 / 8, 2.5 / 8, 10 / img, 13 / img]]])
    loss_fn = build_loss("YOLOv3Loss", num_classes=nc)
    loss, items = loss_fn(preds, targets, None)
    total, lbox, lobj, lcls = items.asnumpy()
    t_wh = (10 / 8, 13 / 8)
    cious = [
        _ciou_same_centre(*t_wh, 10 / 8, 13 / 8),
        _ciou_same_centre(*t_wh, 16 / 8, 30 / 8),
        _ciou_same_centre(*t_wh, 33 / 8, 23 / 8),
    ]
    assert cious[0] == pytest.approx(1.0)
    assert lbox == pytest.approx(0.05 * sum(1 - c for c in cious) / 3, rel=1e-4)
    assert lobj == pytest.approx(0.7 * LN2 * (4.0 + 1.0 + 0.4), rel=1e-5)
    assert lcls == pytest.approx(0.3 * LN2, rel=1e-5)  # only level 0 has matches
    assert total == pytest.approx(lbox + lobj + lcls, rel=1e-6)
    assert float(loss.asnumpy()) == pytest.approx(total * 1, rel=1e-6)  # x batch size 1


def test_yolov3_loss_uses_neighbour_cells_and_scales_with_batch():
    img, nc = 64, 3
    preds = tuple(
        Tensor(np.zeros((2, 3, img // s, img // s, 5 + nc), np.float32)) for s in (8, 16, 32)
    )
    # Same box as above but at x = 2.3 cells: the left neighbour joins (3 cells per anchor).
    rows = [[0, 2.3 / 8, 2.5 / 8, 10 / img, 13 / img]]
    loss_fn = build_loss("YOLOv3Loss", num_classes=nc)
    loss, items = loss_fn(preds, _targets([rows, []]), None)
    _, lbox, _, _ = items.asnumpy()
    # Centre cell target xy (0.3, 0.5), neighbour (1.3, 0.5); prediction xy (0.5, 0.5).
    assert lbox > 0.05 * (1 - _ciou_same_centre(1.25, 1.625, 16 / 8, 30 / 8)) * 2 / 3 * 0.5
    assert float(loss.asnumpy()) == pytest.approx(float(items.asnumpy()[0]) * 2, rel=1e-6)


def test_yolov4_loss_terms_by_hand():
    """Zero logits, fixed far-away predicted boxes: obj is N_cells * ln 2, cls 2 * nc * ln 2."""
    img, nc, bs = 64, 2, 1
    images = Tensor(np.zeros((bs, 3, img, img), np.float32))
    preds = []
    n_cells = 0
    for s in (32, 16, 8):
        g = img // s
        n_cells += bs * g * g * 3
        raw = Tensor(np.zeros((bs, g, g, 3, 5 + nc), np.float32))
        xy = Tensor(np.full((bs, g, g, 3, 2), 0.9, np.float32))
        wh = Tensor(np.full((bs, g, g, 3, 2), 0.05, np.float32))
        preds.append((raw, xy, wh))
    # 12 x 16 px = anchor 6 exactly (IoU 1); anchor 7 (19 x 36) has IoU 192/684 = 0.28 > 0.213.
    tx, ty, tw, th = 0.3, 0.3, 12 / img, 16 / img
    targets = _targets([[[1, tx, ty, tw, th]]])
    loss, items = build_loss("YOLOv4Loss", num_classes=nc)(tuple(preds), targets, images)
    total, lbox, lobj, lcls = items.asnumpy()
    # GIoU of the predicted 0.05 box at (0.9, 0.9) with the target: no overlap.
    px1, py1, px2, py2 = 0.875, 0.875, 0.925, 0.925
    tx1, ty1, tx2, ty2 = tx - tw / 2, ty - th / 2, tx + tw / 2, ty + th / 2
    hull = (max(px2, tx2) - min(px1, tx1)) * (max(py2, ty2) - min(py1, ty1))
    union = 0.05 * 0.05 + tw * th
    giou = 0 - (hull - union) / hull
    scale = 2 - tw * th / (img * img)
    assert lbox == pytest.approx(10 * 2 * (1 - giou) * scale, rel=1e-4)
    assert lobj == pytest.approx(n_cells * LN2, rel=1e-5)
    assert lcls == pytest.approx(2 * nc * LN2, rel=1e-5)
    assert total == pytest.approx(lbox + lobj + lcls, rel=1e-6)
    assert float(loss.asnumpy()) == pytest.approx(total / 8, rel=1e-5)


def test_unknown_loss_name_and_bad_option_raise_recipe_errors():
    from yolomodels.errors import RecipeError

    with pytest.raises(RecipeError, match="YOLOv3Loss"):
        build_loss("YOLOv9Loss", num_classes=3)
    with pytest.raises(RecipeError, match="loss YOLOv4Loss"):
        build_loss("YOLOv4Loss", num_classes=3, options={"anchor_t": 4.0})


# --- fact sheet §3.4: synthetic weights (§9.2), two 320 px images, BN in train mode ---------------


def _synthetic_weights(net) -> None:
    for p in net.get_parameters():
        value = synthetic_value(p.name, tuple(p.shape))
        if value is not None:
            p.set_data(Tensor(value))


def _reference_batch():
    yy, xx = np.mgrid[0:320, 0:320].astype(np.float64)
    structured = np.stack(
        [
            0.5 + 0.5 * np.sin(xx / 9) * np.cos(yy / 13),
            (xx // 40 + yy // 40) % 2,
            np.where((xx - 160) ** 2 + (yy - 120) ** 2 < 70**2, 0.9, 0.1),
        ]
    )[None]
    noise = np.random.RandomState(123).rand(1, 3, 320, 320)
    images = np.concatenate([structured, noise]).astype(np.float32)
    targets = np.full((2, 160, 6), -1.0, np.float32)
    targets[:, :, 0] = np.arange(2)[:, None]
    targets[0, 0, 1:] = [0, 0.5, 0.375, 0.4375, 0.4375]
    targets[0, 1, 1:] = [17, 0.2, 0.8, 0.1, 0.15]
    targets[1, 0, 1:] = [56, 0.7, 0.3, 0.3, 0.5]
    return Tensor(images), Tensor(targets)


REFERENCE = {
    "yolov3_darknet53": ("YOLOv3Loss", 6.941597, [3.470798, 0.113180, 2.630936, 0.726682]),
    "yolov4_cspdarknet53": (
        "YOLOv4Loss",
        561.478577,
        [4491.828613, 109.370026, 3999.456055, 383.002533],
    ),
    "yolov4_cspdarknet53_silu": (
        "YOLOv4Loss",
        589.857361,
        [4718.858887, 93.614723, 4203.555176, 421.688873],
    ),
}


@pytest.mark.parametrize(
    "arch",
    [
        "yolov3_darknet53",
        pytest.param("yolov4_cspdarknet53", marks=pytest.mark.slow),
        pytest.param("yolov4_cspdarknet53_silu", marks=pytest.mark.slow),
    ],
)
def test_reference_loss_values_of_the_fact_sheet(arch):
    loss_name, expected_loss, expected_items = REFERENCE[arch]
    net = build(arch, num_classes=80, img_size=320)
    _synthetic_weights(net)
    net.set_train(True)
    loss_fn = build_loss(loss_name, num_classes=80)

    @ms.jit
    def run(x, t):
        return loss_fn(net(x), t, x)

    images, targets = _reference_batch()
    loss, items = run(images, targets)
    # 1e-4: the forward pass runs on whatever convolution kernel oneDNN picks for this CPU
    # (AVX2 gemm here, something else where the fact sheet was measured); the box term summed
    # over thousands of CIoU values moved by 3e-5 between them
    assert float(loss.asnumpy()) == pytest.approx(expected_loss, rel=1e-4)
    np.testing.assert_allclose(items.asnumpy(), expected_items, rtol=1e-4)
