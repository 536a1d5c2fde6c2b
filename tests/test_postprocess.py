"""Eval pre/post-processing: NMS against a brute-force reference, letterbox and box round trips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yolomodels.errors import ImageReadError
from yolomodels.postprocess import (
    PAD_VALUE,
    box_iou,
    greedy_nms,
    greedy_nms_per_class,
    letterbox,
    nms,
    preprocess,
    scale_boxes_back,
    xywh_to_xyxy,
)


def reference_nms(pred, *, conf, iou, multi_label, max_det):
    """Fact sheet §5.2 written plainly, one Python loop per candidate, with MindYOLO's numerics:
    float32 scalars throughout, obj alone as the score of a one-class network, boxes shifted by
    class * 4096 before IoU, candidates in NumPy's default argsort order of the scores, reversed."""
    f = np.float32
    pred = np.asarray(pred, dtype=np.float32)
    nc = pred.shape[1] - 5
    cands = []
    for row in pred:
        cx, cy, w, h, obj = row[:5]
        if not obj > f(conf):
            continue
        box = (cx - w / f(2), cy - h / f(2), cx + w / f(2), cy + h / f(2))
        scores = [obj] if nc == 1 else [obj * c for c in row[5:]]
        if multi_label and nc > 1:
            pairs = [(s, k) for k, s in enumerate(scores) if s > f(conf)]
        else:
            best = int(np.argmax(scores))
            pairs = [(scores[best], best)] if scores[best] > f(conf) else []
        cands += [(box, s, k) for s, k in pairs]
    order = np.argsort(np.array([c[1] for c in cands], dtype=np.float32))[::-1]
    kept = []
    for idx in order:
        box, s, k = cands[idx]
        moved = tuple(v + f(k * 4096) for v in box)
        if all(_iou(other, moved) <= f(iou) for other, *_ in kept):
            kept.append((moved, box, s, k))
    return np.array([[*b, s, k] for _, b, s, k in kept[:max_det]], dtype=np.float32).reshape(-1, 6)


def _iou(a, b):
    """IoU of kept box ``a`` and candidate ``b`` in their own (float32) arithmetic."""
    zero = type(a[0])(0)  # not a[0] * 0: NumPy 1.x makes float32 * int a float64 scalar
    iw = max(zero, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(zero, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area_a + area_b - inter + type(zero)(1e-6))


@st.composite
def predictions(draw, max_rows=40, max_classes=4):
    """Decoded predictions on an integer grid (exact box arithmetic) clustered so NMS has work."""
    n = draw(st.integers(0, max_rows))
    nc = draw(st.integers(1, max_classes))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    centres = rng.integers(10, 200, size=(3, 2))
    which = rng.integers(0, 3, size=n)
    cxy = centres[which] + rng.integers(-6, 7, size=(n, 2))
    wh = 2 * rng.integers(1, 30, size=(n, 2))
    # scores from a coarse grid so ties occur and ordering rules matter
    obj = rng.integers(0, 11, size=(n, 1)) / 10
    cls = rng.integers(0, 11, size=(n, nc)) / 10
    return np.concatenate([cxy, wh, obj, cls], axis=1).astype(np.float64)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pred=predictions(),
    conf=st.sampled_from([0.001, 0.05, 0.25, 0.5]),
    iou=st.sampled_from([0.3, 0.45, 0.6, 0.65, 0.9]),
    multi_label=st.booleans(),
    max_det=st.integers(1, 60),
)
def test_nms_equals_brute_force_reference(pred, conf, iou, multi_label, max_det):
    got = nms(pred, conf=conf, iou=iou, multi_label=multi_label, max_det=max_det)
    want = reference_nms(pred, conf=conf, iou=iou, multi_label=multi_label, max_det=max_det)
    assert got.dtype == np.float32 and got.shape[1] == 6
    np.testing.assert_array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(pred=predictions(max_rows=60, max_classes=3), iou=st.sampled_from([0.3, 0.5, 0.7]))
def test_nms_output_invariants(pred, iou):
    det = nms(pred, conf=0.01, iou=iou, max_det=300)
    assert np.all(np.diff(det[:, 4]) <= 0), "detections come best first"
    assert np.all(det[:, 4] >= np.float32(0.01))  # 0.1 * 0.1 > 0.01 in float64, 0.01 in float32
    for k in np.unique(det[:, 5]):
        same = det[det[:, 5] == k, :4]
        m = box_iou(same, same)
        np.fill_diagonal(m, 0)
        # float64 IoU of boxes NMS compared in float32 after a class offset: equal to ~1e-4
        assert m.max(initial=0) <= iou + 1e-3, "no two kept boxes of one class overlap > iou"


@settings(max_examples=80, deadline=None)
@given(pred=predictions(max_rows=60, max_classes=5), iou=st.sampled_from([0.2, 0.5, 0.8]),
       max_keep=st.integers(1, 80))  # fmt: skip
def test_per_class_greedy_equals_greedy_over_offset_boxes(pred, iou, max_keep):
    boxes = np.concatenate([pred[:, :2] - pred[:, 2:4] / 2, pred[:, :2] + pred[:, 2:4] / 2], 1)
    cls = np.random.default_rng(len(pred)).integers(0, 5, len(pred))
    shifted = boxes + (cls * 4096.0)[:, None]
    want = greedy_nms(shifted, iou, max_keep=max_keep)
    np.testing.assert_array_equal(greedy_nms_per_class(boxes, cls, iou, max_keep=max_keep), want)


def test_boxes_spanning_more_than_the_class_offset_follow_mindyolo():
    """Past 4096 px the class offsets no longer separate classes; MindYOLO's answer is kept."""
    pred = np.array(
        [_row(5000, 5000, 100, 100, 1.0, 0.9, 0.0), _row(904, 904, 100, 100, 1.0, 0.0, 0.8)]
    )
    det = nms(pred, iou=0.65)
    assert det[:, 5].tolist() == [0]  # class 1 at (904, 904) lands on class 0 after the offsets
    pred[0, :2] = 3000  # within 4096: the classes are independent again
    assert sorted(nms(pred, iou=0.65)[:, 5].tolist()) == [0, 1]


def _row(cx, cy, w, h, obj, *cls):
    return [cx, cy, w, h, obj, *cls]


def test_no_predictions_and_all_below_conf_give_empty_float32():
    for pred in (np.zeros((0, 85), np.float32), np.full((50, 85), 0.0005, np.float32)):
        det = nms(pred, conf=0.001)
        assert det.shape == (0, 6) and det.dtype == np.float32
    # obj above conf, but every obj*cls below it
    pred = np.array([_row(50, 50, 10, 10, 0.5, 0.001, 0.0019)], np.float32)
    assert nms(pred, conf=0.001).shape == (0, 6)


def test_conf_is_strict_and_applies_to_obj_times_cls():
    pred = np.array([_row(50, 50, 10, 10, 0.5, 0.5, 0.2)])  # scores 0.25, 0.1
    assert nms(pred, conf=0.25).shape == (0, 6)
    det = nms(pred, conf=0.2499)
    assert det.shape == (1, 6) and det[0, 5] == 0 and det[0, 4] == pytest.approx(0.25)
    np.testing.assert_allclose(det[0, :4], [45, 45, 55, 55])


def test_multi_label_on_and_off():
    pred = np.array([_row(50, 50, 10, 10, 0.9, 0.8, 0.6, 0.001)])
    on = nms(pred, conf=0.1, multi_label=True)
    off = nms(pred, conf=0.1, multi_label=False)
    assert on[:, 5].tolist() == [0, 1]  # same box, two classes, both kept (class-aware)
    np.testing.assert_allclose(on[:, 4], [0.72, 0.54], rtol=1e-6)
    assert off[:, 5].tolist() == [0] and off[0, 4] == pytest.approx(0.72)


def test_class_aware_suppression_and_iou_threshold_is_inclusive():
    # two boxes of one class, IoU exactly 1/3 (w 20 overlap 10): suppressed only when iou < 1/3
    pred = np.array([_row(50, 50, 20, 20, 1.0, 0.9, 0.0), _row(60, 50, 20, 20, 1.0, 0.8, 0.0)])
    assert len(nms(pred, iou=0.3)) == 1
    assert len(nms(pred, iou=0.34)) == 2
    # the same geometry in different classes never suppresses
    pred[1, 5:] = [0.0, 0.8]
    assert len(nms(pred, iou=0.0)) == 2


def test_max_det_keeps_the_best():
    rng = np.random.default_rng(0)
    n = 500
    grid = np.stack(np.meshgrid(np.arange(25), np.arange(20)), -1).reshape(-1, 2)[:n] * 30 + 20
    pred = np.concatenate(
        [grid, np.full((n, 2), 10.0), np.ones((n, 1)), rng.uniform(0.1, 1, (n, 1))], axis=1
    )
    det = nms(pred, conf=0.001, max_det=300)
    assert len(det) == 300  # disjoint boxes: nothing suppressed, the cut decides
    assert det[-1, 4] >= np.sort(pred[:, 5])[::-1][299] - 1e-6


def test_nms_handles_a_realistic_candidate_count():
    """~25k candidates from an untrained-looking 640-px output: runs, respects every limit."""
    rng = np.random.default_rng(1)
    n, nc = 25200, 80
    cxy = rng.uniform(0, 640, (n, 2))
    wh = rng.uniform(4, 200, (n, 2))
    pred = np.concatenate([cxy, wh, rng.uniform(0, 1, (n, 1 + nc))], axis=1).astype(np.float32)
    det = nms(pred, conf=0.001, iou=0.65, max_det=300)
    assert det.shape == (300, 6)
    assert np.all(np.diff(det[:, 4]) <= 0)
    assert set(np.unique(det[:, 5])) <= set(range(nc))


def test_nms_rejects_bad_arguments():
    with pytest.raises(ValueError, match="per image"):
        nms(np.zeros((1, 10, 85)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        nms(np.zeros((1, 85)), conf=2)
    with pytest.raises(ValueError, match="max_det"):
        nms(np.zeros((1, 85)), max_det=0)


# ----------------------------------------------------------------------------- letterbox


def test_letterbox_pads_with_114_centred_and_does_not_scale_up_by_default():
    img = np.full((40, 60, 3), 7, np.uint8)
    out, r, (dw, dh) = letterbox(img, 64)
    assert out.shape == (64, 64, 3) and r == 1.0
    assert (dw, dh) == (2.0, 12.0)
    assert np.all(out[12:52, 2:62] == 7)
    assert np.all(out[:12] == PAD_VALUE) and np.all(out[52:] == PAD_VALUE)
    assert np.all(out[:, :2] == PAD_VALUE) and np.all(out[:, 62:] == PAD_VALUE)
    up, r_up, _ = letterbox(img, 120, scaleup=True)
    assert up.shape == (120, 120, 3) and r_up == 2.0
    assert np.all(up[20:100] == 7)


def test_letterbox_odd_padding_splits_like_mindyolo():
    img = np.zeros((31, 64, 3), np.uint8)
    out, _, (dw, dh) = letterbox(img, 64)
    assert dh == 16.5 and out.shape == (64, 64, 3)
    # top = round(16.4) = 16, bottom = round(16.6) = 17
    assert np.all(out[:16] == PAD_VALUE) and np.all(out[16:47] == 0) and np.all(out[47:] == 114)


def test_letterbox_shrinks_large_images_and_accepts_rectangular_targets():
    img = np.zeros((200, 100, 3), np.uint8)
    out, r, (dw, dh) = letterbox(img, (64, 96))
    assert out.shape == (64, 96, 3) and r == pytest.approx(0.32)
    assert dh == 0 and dw == pytest.approx((96 - 32) / 2)


def test_preprocess_layout_range_and_rgb_order():
    img = np.zeros((30, 50, 3), np.uint8)
    img[..., 0] = 255  # pure red
    x, meta = preprocess(img, 96)
    assert x.shape == (3, 96, 96) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    # small image enlarged so the long side is 96, then padded top/bottom only
    assert meta.resized_hw == (57, 96) and meta.pad[0] == 0 and meta.pad[1] == 19.5
    assert meta.letterbox_ratio == 1.0 and meta.ratio == pytest.approx(57 / 30)
    inner = x[:, 20:76, :]
    assert np.all(inner[0] == 1.0) and np.all(inner[1:] == 0.0)
    assert np.allclose(x[:, :19], 114 / 255)


def test_preprocess_accepts_grey_and_rgba_and_rejects_garbage():
    assert preprocess(np.zeros((20, 20), np.uint8), 32)[0].shape == (3, 32, 32)
    assert preprocess(np.zeros((20, 20, 4), np.uint8), 32)[0].shape == (3, 32, 32)
    with pytest.raises(ImageReadError, match="uint8"):
        preprocess(np.zeros((20, 20, 3), np.float32), 32)
    with pytest.raises(ImageReadError, match="shape"):
        preprocess(np.zeros((20, 20, 2), np.uint8), 32)


@settings(max_examples=40, deadline=None)
@given(
    h0=st.integers(20, 300),
    w0=st.integers(20, 300),
    img_size=st.sampled_from([64, 96, 128, 160]),
    data=st.data(),
)
def test_drawn_box_found_in_the_input_maps_back_to_itself(h0, w0, img_size, data):
    """Draw a white rectangle, preprocess, find it in the network input, map it back."""
    bw = data.draw(st.integers(max(4, w0 // 8), w0 // 2))
    bh = data.draw(st.integers(max(4, h0 // 8), h0 // 2))
    x1 = data.draw(st.integers(0, w0 - bw))
    y1 = data.draw(st.integers(0, h0 - bh))
    img = np.zeros((h0, w0, 3), np.uint8)
    img[y1 : y1 + bh, x1 : x1 + bw] = 255
    x, meta = preprocess(img, img_size)
    assert x.shape == (3, img_size, img_size)
    ys, xs = np.nonzero(x[0] > 0.5)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float64)
    back = scale_boxes_back(found, meta, (h0, w0))
    # one input pixel is 1/ratio original pixels; x is divided by the height ratio (MindYOLO)
    tol = 1.5 / meta.ratio + abs(meta.hw_scale[1] / meta.hw_scale[0] - 1) * w0 + 0.5
    np.testing.assert_allclose(back[0], [x1, y1, x1 + bw, y1 + bh], atol=tol)


def test_scale_boxes_back_inverts_the_forward_map_and_clips():
    img = np.zeros((300, 200, 3), np.uint8)
    _, meta = preprocess(img, 128)
    boxes = np.array([[10.0, 20.0, 150.0, 280.0], [-50, -50, 500, 900]])
    fwd = boxes * meta.ratio
    fwd[:, [0, 2]] += meta.pad[0]
    fwd[:, [1, 3]] += meta.pad[1]
    back = scale_boxes_back(fwd, meta, (300, 200))
    np.testing.assert_allclose(back[0], boxes[0], atol=1e-9)
    np.testing.assert_allclose(back[1], [0, 0, 200, 300])
    # original_hw defaults to the recorded size
    np.testing.assert_allclose(scale_boxes_back(fwd, meta), back)
    assert scale_boxes_back(np.zeros((0, 4)), meta).shape == (0, 4)


# ------------------------------------------------------- float32 decisions at the IoU threshold


def _pair(cls, first, second, nc=80):
    """Two boxes (cx, cy, w, h) of class ``cls``, scores 0.9 and 0.8."""
    rows = np.zeros((2, 5 + nc), np.float32)
    rows[:, :4] = [first, second]
    rows[:, 4] = 1.0
    rows[:, 5 + cls] = [0.9, 0.8]
    return rows


def _iou64(pred):
    return box_iou(xywh_to_xyxy(pred[:1, :4].astype(np.float64)),
                   xywh_to_xyxy(pred[1:, :4].astype(np.float64)))[0, 0]  # fmt: skip


def test_class_offset_in_float32_suppresses_a_box_float64_would_keep():
    # float64 IoU 0.64976 <= 0.65, but shifted by 68 * 4096 in float32 the IoU is 0.65022
    pred = _pair(68, (171.40402221679688, 68.4380874633789, 22.974973678588867, 166.38864135742188),
                 (176.28152465820312, 68.4380874633789, 22.974973678588867, 166.38864135742188))  # fmt: skip
    assert _iou64(pred) < 0.65
    assert len(nms(pred, iou=0.65)) == 1
    np.testing.assert_array_equal(nms(pred, iou=0.65), reference_nms(
        pred, conf=0.001, iou=0.65, multi_label=True, max_det=300))  # fmt: skip
    # the same two boxes in class 0 (no offset): float32 IoU 0.64976, both kept
    assert len(nms(_pair(0, *pred[:, :4].tolist()), iou=0.65)) == 2


def test_class_offset_in_float32_keeps_a_box_float64_would_suppress():
    # float64 IoU 0.6500001 > 0.65, but shifted by 78 * 4096 in float32 the IoU is 0.64990
    pred = _pair(78, (309.9595642089844, 321.00762939453125, 193.2361602783203, 33.007747650146484),
                 (350.94903564453125, 321.00762939453125, 193.2361602783203, 33.007747650146484))  # fmt: skip
    assert _iou64(pred) > 0.65
    assert len(nms(pred, iou=0.65)) == 2
    np.testing.assert_array_equal(nms(pred, iou=0.65), reference_nms(
        pred, conf=0.001, iou=0.65, multi_label=True, max_det=300))  # fmt: skip
    assert len(nms(_pair(0, *pred[:, :4].tolist()), iou=0.65)) == 1


def test_equal_scores_are_ordered_by_numpys_default_argsort_reversed():
    """A chain of equal-score boxes, each overlapping the next: which survive depends on the
    tie order alone.  MindYOLO orders candidates by ``np.argsort(scores)[::-1]``."""
    n = 24
    pred = np.zeros((n, 5 + 3), np.float32)
    pred[:, 0] = 50 + 6 * np.arange(n)  # IoU 0.54 with a neighbour, 0.25 two apart
    pred[:, 1], pred[:, 2:4], pred[:, 4] = 50, 20, 1.0
    pred[:, 6] = 0.5  # every box: class 1, score exactly 0.5
    det = nms(pred, iou=0.3)
    order = np.argsort(np.full(n, 0.5, np.float32))[::-1]
    assert det[0, 0] == pred[order[0], 0] - 10  # the first kept is argsort's last
    np.testing.assert_array_equal(det, reference_nms(
        pred, conf=0.001, iou=0.3, multi_label=True, max_det=300))  # fmt: skip


def test_one_class_network_scores_by_objectness_alone():
    pred = np.array([_row(50, 50, 10, 10, 0.8, 0.5)], np.float32)
    det = nms(pred, conf=0.001)
    assert det[0, 4] == np.float32(0.8) and det[0, 5] == 0
