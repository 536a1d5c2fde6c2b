"""hub.predict and ``yolohub predict``: boxes back on the original image, JSON, annotated files.

The network is a scaled-down YOLOv3 whose detect convs have zero weights and chosen biases, so
its output does not depend on the image and every detection can be derived by hand from the
decode (fact sheet §2.1) and the letterbox arithmetic (§5.1, §5.3).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import matplotlib
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor
from nethelpers import small_net
from PIL import Image

import hub
from hub.cards.write import render_card
from hub.cli import main
from hub.errors import InputDataError
from yolomodels.checkpoint import save_checkpoint

ms.set_device("CPU")

NAMES = ("circle", "square", "triangle")
SIZE = 32  # input size: a 4x4 grid at stride 8
NO = 5 + len(NAMES)
OBJ, CLS = 5.0, 3.0
SCORE = 1 / (1 + math.exp(-OBJ)) / (1 + math.exp(-CLS))
PHOTO = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


@pytest.fixture(scope="module")
def cards(tmp_path_factory):
    """A card 'fixed-v3' whose network fires anchor 0 of every stride-8 cell with class 1."""
    root = tmp_path_factory.mktemp("predict")
    net = small_net("yolov3_darknet53", num_classes=len(NAMES), img_size=SIZE)
    for level, conv in enumerate(net.head.m):
        conv.weight.set_data(Tensor(np.zeros(conv.weight.shape, np.float32)))
        bias = np.full((3, NO), -10.0, np.float32)
        bias[:, :4] = 0.0  # centre of the cell, anchor-sized box
        if level == 0:
            bias[0, 4] = OBJ
            bias[0, 5 + 1] = CLS
        conv.bias.set_data(Tensor(bias.reshape(-1)))
    ckpt = save_checkpoint(net, root / "fixed-v3.ckpt")
    fm = {
        "format": "yolohub/1",
        "model-name": "fixed-v3",
        "model-version": "1.0",
        "summary": "image-independent test network",
        "asset": [{"file-format": "ckpt", "asset-link": ckpt.as_uri(),
                   "asset-sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest()}],
        "architecture": {"name": "yolov3_darknet53",
                         "args": {"num_classes": 3, "img_size": SIZE, "depth_multiple": 0.33,
                                  "width_multiple": 0.25},
                         "head-params": ["model.model.28.m.*"]},
        "class-names": list(NAMES),
        "eval-protocol": {"dataset": "synthetic-shapes", "split": "val", "metric": "AP50",
                          "img-size": SIZE, "iou-threshold": 0.6, "max-detections": 100},
    }
    (root / "cards").mkdir()
    (root / "cards" / "fixed-v3.md").write_text(render_card(fm, "test\n"))
    return root / "cards"


def expected_boxes(w0: int, h0: int) -> list[tuple[float, float, float, float]]:
    """The 16 stride-8 anchor-0 boxes (10 x 13 px at the cell centres), mapped back by hand."""
    r = SIZE / max(h0, w0)
    w, h = int(w0 * r), int(h0 * r)
    padw, padh = (SIZE - w) / 2, (SIZE - h) / 2
    ratio = h / h0
    out = []
    for j in range(4):
        for i in range(4):
            cx, cy = (i + 0.5) * 8, (j + 0.5) * 8
            x1, x2 = [(v - padw) / ratio for v in (cx - 5, cx + 5)]
            y1, y2 = [(v - padh) / ratio for v in (cy - 6.5, cy + 6.5)]
            out.append((min(max(x1, 0), w0), min(max(y1, 0), h0), min(max(x2, 0), w0),
                        min(max(y2, 0), h0)))
    return sorted(out)


def synthetic_image(path: Path, w: int, h: int) -> Path:
    rng = np.random.RandomState(w * h)
    Image.fromarray(rng.randint(0, 255, (h, w, 3), np.uint8)).save(path)
    return path


def _check(result, w0, h0):
    assert (result.width, result.height) == (w0, h0)
    dets = result.detections
    assert len(dets) == 16
    assert {d.class_name for d in dets} == {"square"} and {d.class_id for d in dets} == {1}
    np.testing.assert_allclose([d.score for d in dets], SCORE, rtol=1e-5)
    np.testing.assert_allclose(sorted(d.box for d in dets), expected_boxes(w0, h0), atol=1e-3)


def _drawn(original: np.ndarray, annotated: Path, w0: int, h0: int) -> np.ndarray:
    with Image.open(annotated) as im:
        im.verify()
    with Image.open(annotated) as im:
        assert im.size == (w0, h0)
        arr = np.asarray(im.convert("RGB")).astype(int)
    return np.abs(arr - original.astype(int)).max(axis=2)


def test_real_photo_boxes_and_annotated_jpeg(cards, tmp_path):
    assert PHOTO.is_file()
    with Image.open(PHOTO) as im:
        w0, h0 = im.size
        original = np.asarray(im.convert("RGB"))
    [result] = hub.predict("fixed-v3", [PHOTO], out=tmp_path / "out", cards_dirs=[cards],
                           mode="pynative")
    _check(result, w0, h0)
    assert result.annotated == tmp_path / "out" / "grace_hopper.jpg"
    assert result.annotated.read_bytes()[:3] == b"\xff\xd8\xff"  # a real JPEG
    diff = _drawn(original, result.annotated, w0, h0)
    # a box outline is drawn where the top-left detection's left edge is (JPEG noise is small)
    x1, y1, x2, y2 = (int(round(v)) for v in expected_boxes(w0, h0)[0])
    assert diff[y1 + 20 : y2 - 5, x1 : x1 + 2].mean() > 60
    # far from every box the photo is untouched apart from JPEG re-encoding noise
    assert np.median(diff[h0 - 40 :, :]) < 12 or np.median(diff) < 12


def test_directory_png_and_arrays(cards, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    synthetic_image(images / "wide.png", 64, 48)
    synthetic_image(images / "tall.bmp", 40, 72)
    (images / "notes.txt").write_text("not an image, skipped by suffix")
    array = np.full((50, 30, 3), 200, np.uint8)
    results = hub.predict("fixed-v3", [images, array], out=tmp_path / "out", cards_dirs=[cards],
                          mode="graph")
    assert [r.image.name if r.image else None for r in results] == ["tall.bmp", "wide.png", None]
    for r, (w0, h0) in zip(results, [(40, 72), (64, 48), (30, 50)]):
        _check(r, w0, h0)
        assert r.annotated.suffix == ".png"
        assert r.annotated.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    original = np.asarray(Image.open(images / "wide.png").convert("RGB"))
    diff = _drawn(original, results[1].annotated, 64, 48)
    assert (diff > 0).mean() > 0.2  # boxes and labels cover a good part of a small image
    # PNG is lossless: pixels that no box or label touches are bit-identical
    assert (diff == 0).any()


def test_cli_json_and_thresholds(cards, tmp_path, capsys):
    img = synthetic_image(tmp_path / "wide.png", 64, 48)
    code = main(["predict", "fixed-v3", str(img), "--cards", str(cards), "--json", "--mode",
                 "pynative"])
    assert code == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["image"] == str(img) and (row["width"], row["height"]) == (64, 48)
    assert row["annotated"] is None and len(row["detections"]) == 16
    assert {d["class"] for d in row["detections"]} == {"square"}
    assert row["detections"][0]["score"] == pytest.approx(SCORE, abs=1e-5)
    # above every score: nothing; max-det caps the count
    assert main(["predict", "fixed-v3", str(img), "--cards", str(cards), "--json",
                 "--conf", "0.95", "--mode", "pynative"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["detections"] == []
    assert main(["predict", "fixed-v3", str(img), "--cards", str(cards), "--max-det", "5",
                 "--out", str(tmp_path / "o"), "--mode", "pynative"]) == 0
    text = capsys.readouterr().out
    assert "5 detection(s) (square 0.95" in text and str(tmp_path / "o" / "wide.png") in text


def test_local_weights_option(cards, tmp_path, capsys):
    net = small_net("yolov3_darknet53", num_classes=3, img_size=SIZE)
    for conv in net.head.m:
        conv.weight.set_data(Tensor(np.zeros(conv.weight.shape, np.float32)))
        conv.bias.set_data(Tensor(np.full(conv.bias.shape, -10.0, np.float32)))
    ckpt = save_checkpoint(net, tmp_path / "silent.ckpt")
    img = synthetic_image(tmp_path / "a.png", 32, 32)
    assert main(["predict", "fixed-v3", str(img), "--cards", str(cards), "--weights", str(ckpt),
                 "--json", "--mode", "pynative"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["detections"] == []


def test_unreadable_images_are_input_errors(cards, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"definitely not a jpeg" * 10)
    with pytest.raises(InputDataError, match="broken.jpg is not an image Pillow can read"):
        hub.predict("fixed-v3", [broken], cards_dirs=[cards])
    truncated = tmp_path / "truncated.png"
    data = (synthetic_image(tmp_path / "full.png", 64, 64)).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputDataError, match="truncated.png cannot be decoded"):
        hub.predict("fixed-v3", [truncated], cards_dirs=[cards], mode="pynative")
    code = main(["predict", "fixed-v3", str(broken), str(tmp_path / "missing.png"),
                 "--cards", str(cards)])
    err = capsys.readouterr().err
    assert code == 9
    assert "missing.png does not exist" in err and "Traceback" not in err
    assert main(["predict", "fixed-v3", str(truncated.with_name("full.png")), "--cards",
                 str(cards), "--img-size", "100"]) == 9
    assert "img_size must be a positive multiple of 32, got 100" in capsys.readouterr().err
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    assert main(["predict", "fixed-v3", str(empty), "--cards", str(cards)]) == 9
    assert "directory without image files" in capsys.readouterr().err
