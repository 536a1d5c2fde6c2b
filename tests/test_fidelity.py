"""Evaluation fidelity: our pipeline against MindYOLO's test path written out independently.

The references below are written from the fact sheet (§5.1-5.3) with plain NumPy and OpenCV, in
MindYOLO's own terms (BGR images, ``cv2.copyMakeBorder``, float32 arrays and Python scalars), and
never call the functions under test.  Where the fact sheet is silent the arithmetic follows what
mindyolo 0.5.0 was seen to do: the COCO box goes through its centre, in float32.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nethelpers import small_net
from PIL import Image

from yolomodels.data.synthetic import make_dataset
from yolomodels.eval.coco import open_split
from yolomodels.postprocess import letterbox, preprocess

# ------------------------------------------------------------------------- reference (§5.1)


def reference_input(bgr: np.ndarray, img_size: int):
    """One BGR image -> (CHW float32 RGB input, (h0, w0), hw_scale, (dh, dw)) as §5.1 says."""
    h0, w0 = bgr.shape[:2]
    r = img_size / max(h0, w0)
    img = bgr
    if r != 1:
        interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
        img = cv2.resize(img, (int(w0 * r), int(h0 * r)), interpolation=interp)
    h, w = img.shape[:2]
    r2 = min(img_size / h, img_size / w, 1.0)
    nw, nh = int(round(w * r2)), int(round(h * r2))
    if (nw, nh) != (w, h):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    dw, dh = (img_size - nw) / 2, (img_size - nh) / 2
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT,
                             value=(114, 114, 114))  # fmt: skip
    x = img.astype(np.float32) / 255.0
    x = np.ascontiguousarray(x[:, :, ::-1].transpose(2, 0, 1))
    return x, (h0, w0), (h / h0, w / w0), (dh, dw)


def textured(h: int, w: int, seed: int) -> np.ndarray:
    """An RGB image with noise, edges and gradients, so every resampling filter shows."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1),
                     ((xx // 7 + yy // 5) % 2) * 200], -1)  # fmt: skip
    return np.clip(base + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)


SHAPES = {
    "shrink-landscape": (300, 500),
    "shrink-portrait": (500, 300),
    "shrink-odd-ratio": (110, 150),
    "shrink-square": (200, 200),
    "enlarge-landscape": (50, 70),
    "enlarge-portrait": (120, 80),
    "enlarge-thin": (13, 91),
    "same-size": (96, 96),
    "long-side-equal": (61, 96),
}


@pytest.mark.parametrize("name", SHAPES)
def test_preprocess_equals_opencv_pixel_for_pixel(name):
    h0, w0 = SHAPES[name]
    rgb = textured(h0, w0, seed=h0 * 1000 + w0)
    x, meta = preprocess(rgb, 96)
    want, hw0, hw_scale, (dh, dw) = reference_input(np.ascontiguousarray(rgb[:, :, ::-1]), 96)
    assert x.dtype == want.dtype == np.float32 and x.shape == want.shape == (3, 96, 96)
    assert np.array_equal(x, want), f"{np.count_nonzero(x != want)} values differ"
    assert meta.original_hw == hw0 and meta.hw_scale == hw_scale
    assert meta.pad == (dw, dh) and meta.ratio == hw_scale[0]


def test_pillow_resampling_would_fail_the_pixel_test():
    """The test above has teeth: Pillow's box filter is not OpenCV's pixel-area resize."""
    rgb = textured(110, 150, seed=1)
    size = (96, 70)
    ours = preprocess(rgb, 96)[0]
    pillow = np.asarray(Image.fromarray(rgb).resize(size, Image.BOX))
    opencv = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    assert not np.array_equal(pillow, opencv)
    assert np.array_equal(ours[:, 13:83, :], opencv.transpose(2, 0, 1) / np.float32(255))


@pytest.mark.parametrize(
    ("shape", "target", "scaleup"),
    [((40, 60), 128, True), ((200, 90), (64, 96), False), ((33, 47), (100, 80), True)],
)
def test_letterbox_resizes_bilinearly_like_opencv(shape, target, scaleup):
    rgb = textured(*shape, seed=shape[0])
    out, r, (dw, dh) = letterbox(rgb, target, scaleup=scaleup)
    th, tw = (target, target) if isinstance(target, int) else target
    rr = min(th / shape[0], tw / shape[1])
    rr = rr if scaleup else min(rr, 1.0)
    nw, nh = int(round(shape[1] * rr)), int(round(shape[0] * rr))
    want = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = int(round((th - nh) / 2 - 0.1)), int(round((tw - nw) / 2 - 0.1))
    want = cv2.copyMakeBorder(want, top, th - nh - top, left, tw - nw - left,
                              cv2.BORDER_CONSTANT, value=(114, 114, 114))  # fmt: skip
    assert r == rr and (dw, dh) == ((tw - nw) / 2, (th - nh) / 2)
    assert np.array_equal(out, want)


# -------------------------------------------------------------------- reference (§5.2-5.3)


def reference_nms(p: np.ndarray, conf: float, iou: float, max_det: int = 300) -> np.ndarray:
    """§5.2 on one image's float32 output (several classes, multi-label), vectorized NumPy."""
    p = p[p[:, 4] > conf]
    scores = p[:, 5:] * p[:, 4:5]
    half_w, half_h = p[:, 2] / 2, p[:, 3] / 2
    box = np.stack([p[:, 0] - half_w, p[:, 1] - half_h, p[:, 0] + half_w, p[:, 1] + half_h], 1)
    i, j = np.nonzero(scores > conf)
    d = np.concatenate([box[i], scores[i, j][:, None], j[:, None].astype(np.float32)], 1)
    if len(d) > 30000:
        d = d[d[:, 4].argsort()[-30000:]]
    b = d[:, :4] + d[:, 5:6] * 4096
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    order, keep = d[:, 4].argsort()[::-1], []
    while len(order):
        k, rest = order[0], order[1:]
        keep.append(k)
        w = np.maximum(0.0, np.minimum(b[k, 2], b[rest, 2]) - np.maximum(b[k, 0], b[rest, 0]))
        h = np.maximum(0.0, np.minimum(b[k, 3], b[rest, 3]) - np.maximum(b[k, 1], b[rest, 1]))
        inter = w * h
        order = rest[inter / (area[k] + area[rest] - inter + 1e-6) <= iou]
    return d[keep[:max_det]]


def reference_records(det, image_id, hw0, hw_scale, pad_hw, cat_ids):
    """§5.3: back to original pixels in float32 (height ratio on both axes), clip, COCO form."""
    b = det[:, :4].copy()
    b[:, [0, 2]] -= pad_hw[1]
    b[:, [1, 3]] -= pad_hw[0]
    b[:, [0, 2]] /= hw_scale[0]
    b[:, [1, 3]] /= hw_scale[0]
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, hw0[1])
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, hw0[0])
    centre, wh = (b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]
    coco = np.concatenate([centre - wh / 2, wh], 1)
    return [
        {"image_id": image_id, "category_id": cat_ids[int(d[5])],
         "bbox": [round(v, 3) for v in c], "score": round(d[4], 5)}  # fmt: skip
        for d, c in zip(det.tolist(), coco.tolist())
    ]


MIXED_SIZES = [(150, 110), (70, 50), (80, 120), (200, 200), (96, 96), (33, 97), (640, 360)]


def mixed_size_dataset(root, *, num_images=14, num_classes=3, seed=5):
    """A synthetic val2017 split whose JPEGs are resized to the (w, h) of ``MIXED_SIZES`` in
    turn, boxes scaled with them, so evaluation takes the resize paths of real datasets."""
    make_dataset(root, num_images=num_images, img_size=96, num_classes=num_classes, seed=seed,
                 split="val2017", objects=(1, 4))  # fmt: skip
    ann_file = root / "annotations" / "instances_val2017.json"
    coco = json.loads(ann_file.read_text())
    by_image = {}
    for k, im in enumerate(coco["images"]):
        w, h = MIXED_SIZES[k % len(MIXED_SIZES)]
        sx, sy = w / im["width"], h / im["height"]
        path = root / "images" / "val2017" / im["file_name"]
        img = cv2.imread(str(path))
        cv2.imwrite(str(path), cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC))
        im["width"], im["height"] = w, h
        by_image[im["id"]] = (sx, sy)
    for a in coco["annotations"]:
        sx, sy = by_image[a["image_id"]]
        x, y, bw, bh = a["bbox"]
        a["bbox"] = [x * sx, y * sy, bw * sx, bh * sy]
        a["area"] = bw * sx * bh * sy
    ann_file.write_text(json.dumps(coco))
    return root


@pytest.fixture(scope="module")
def mixed_split(tmp_path_factory):
    return open_split(mixed_size_dataset(tmp_path_factory.mktemp("mixed")), "val2017")


@pytest.mark.parametrize("arch", ["yolov3_darknet53", "yolov4_cspdarknet53"])
def test_eval_on_mixed_sizes_writes_mindyolos_records(arch, mixed_split, tmp_path):
    """Every detection record of our eval equals the independent reference, byte for byte."""
    import mindspore as ms

    from yolomodels.eval.runner import InferenceSettings
    from yolomodels.eval.scoring import evaluate_network

    ms.set_device("CPU")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.set_seed(3)
    net = small_net(arch, num_classes=3, img_size=96)
    net.set_train(False)
    ids = list(mixed_split.image_ids)
    cat_ids = sorted(mixed_split.gt.getCatIds())

    inputs, metas = [], []
    for image_id in ids:
        bgr = cv2.imread(str(mixed_split.image_path(image_id)))
        x, *meta = reference_input(bgr, 96)
        inputs.append(x)
        metas.append(meta)
    out = net(ms.Tensor(np.stack(inputs)))
    out = (out[0] if isinstance(out, (tuple, list)) else out).asnumpy()
    want = []
    for k, image_id in enumerate(ids):
        det = reference_nms(out[k], conf=0.001, iou=0.65)
        want += reference_records(det, image_id, *metas[k], cat_ids)

    settings = InferenceSettings(img_size=96, batch_size=len(ids))  # one batch, as above
    ev = evaluate_network(net, mixed_split, settings=settings, detections_path=tmp_path / "d.json")
    got = json.loads(ev.detections_path.read_text())
    assert len(want) > 1000  # an untrained net: hundreds of candidates per image
    assert len(got) == len(want)
    differ = [(g, w) for g, w in zip(got, want) if g != w]
    assert not differ, f"{len(differ)} of {len(want)} records differ, first: {differ[:3]}"


# ------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("fmt", ["jpg", "png", "bmp", "jpg-exif-rotated"])
def test_images_decode_as_opencv_reads_them(fmt, tmp_path):
    from yolomodels.images import read_image

    rgb = textured(37, 61, seed=2)
    path = tmp_path / f"x.{fmt.split('-')[0]}"
    im = Image.fromarray(rgb)
    if fmt == "jpg-exif-rotated":
        exif = im.getexif()
        exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
        im.save(path, exif=exif.tobytes())
    else:
        im.save(path)
    got = read_image(path)
    want = cv2.imread(str(path))[:, :, ::-1]  # what MindYOLO's loader sees, as RGB
    assert got.dtype == np.uint8 and np.array_equal(got, want)
    assert got.shape[:2] == ((61, 37) if fmt.endswith("rotated") else (37, 61))


def test_formats_opencv_lacks_fall_back_to_pillow(tmp_path):
    from yolomodels.images import read_image

    path = tmp_path / "x.gif"
    Image.fromarray(textured(20, 30, seed=4)).save(path)
    got = read_image(path)
    assert got.shape == (20, 30, 3)
    assert np.array_equal(got, np.asarray(Image.open(path).convert("RGB")))


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=300), prefix=st.sampled_from([b"", b"\xff\xd8\xff\xe0",
                                                              b"\x89PNG\r\n\x1a\n", b"BM"]))
def test_any_bytes_decode_to_an_image_or_a_clear_error(data, prefix):
    from yolomodels.errors import ImageReadError
    from yolomodels.images import decode_image

    try:
        img = decode_image(prefix + data, name="blob")
    except ImageReadError as exc:
        assert str(exc).startswith("blob ")
    else:
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
