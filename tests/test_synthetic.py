"""The synthetic shapes dataset: deterministic, exact tight boxes, loadable by pycocotools."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from hub.cli import main
from yolomodels.data.synthetic import SHAPES, make_dataset, render_image
from yolomodels.errors import DatasetError


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path):
    a = make_dataset(tmp_path / "a", num_images=6, img_size=64, seed=3, split="val2017")
    b = make_dataset(tmp_path / "b", num_images=6, img_size=64, seed=3, split="val2017")
    c = make_dataset(tmp_path / "c", num_images=6, img_size=64, seed=4, split="val2017")
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_splits_differ_under_one_seed(tmp_path):
    make_dataset(tmp_path, num_images=4, img_size=64, split="train2017", image_format="png")
    make_dataset(tmp_path, num_images=4, img_size=64, split="val2017", image_format="png")
    tr = (tmp_path / "images/train2017/000000000001.png").read_bytes()
    va = (tmp_path / "images/val2017/000000000001.png").read_bytes()
    assert tr != va
    yaml_text = (tmp_path / "dataset.yaml").read_text()
    assert "train_set: ./train2017.txt" in yaml_text and "val_set: ./val2017.txt" in yaml_text


@pytest.mark.parametrize("num_classes", [1, 3, len(SHAPES)])
def test_boxes_are_exact_tight_and_inside(tmp_path, num_classes):
    """Each box's border rows/columns contain shape pixels and lie inside the image (PNG: lossless)."""
    root = make_dataset(
        tmp_path,
        num_images=12,
        img_size=(80, 64),
        num_classes=num_classes,
        seed=1,
        split="val2017",
        image_format="png",
        objects=(1, 4),
    )
    coco = json.loads((root / "annotations/instances_val2017.json").read_text())
    assert [c["name"] for c in coco["categories"]] == list(SHAPES[:num_classes])
    assert len(coco["annotations"]) >= 12
    by_image: dict[int, list] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    for im in coco["images"]:
        assert im["file_name"].split(".")[0].isdigit()
        assert int(im["file_name"].split(".")[0]) == im["id"]
        pixels = np.asarray(Image.open(root / "images/val2017" / im["file_name"]))
        assert pixels.shape == (64, 80, 3)
        boxes = [a["bbox"] for a in by_image.get(im["id"], [])]
        for x, y, w, h in boxes:
            assert x >= 0 and y >= 0 and w > 0 and h > 0
            assert x + w <= 80 and y + h <= 64
        # Boxes never overlap, so tightness can be checked against the drawn pixels.
        for i, (x, y, w, h) in enumerate(boxes):
            for j, (x2, y2, w2, h2) in enumerate(boxes):
                if i != j:
                    assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y


def test_box_edges_touch_the_shape(tmp_path):
    """Recolour test: the shape's solid colour appears on every edge of its box, never outside."""
    rng = np.random.default_rng(11)
    checked = 0
    for _ in range(20):
        img, objs = render_image(rng, 96, 96, num_classes=len(SHAPES), objects=(1, 3))
        for o in objs:
            x, y, w, h = o.box
            # the shape colour is the one most common pixel value inside the box
            crop = img[y : y + h, x : x + w].reshape(-1, 3)
            vals, counts = np.unique(crop, axis=0, return_counts=True)
            colour = vals[counts.argmax()]
            inside = np.all(img == colour, axis=-1)
            ys, xs = np.nonzero(inside)
            # background noise could coincide with the colour only by chance: restrict to box+1
            sel = (xs >= x - 1) & (xs <= x + w) & (ys >= y - 1) & (ys <= y + h)
            xs, ys = xs[sel], ys[sel]
            assert xs.min() == x and xs.max() == x + w - 1
            assert ys.min() == y and ys.max() == y + h - 1
            checked += 1
    assert checked > 20


def test_coco_json_and_yolo_labels_agree_and_load_in_pycocotools(tmp_path):
    root = make_dataset(tmp_path, num_images=8, img_size=(96, 64), seed=2, split="val2017")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(root / "annotations/instances_val2017.json"))
    assert sorted(gt.getImgIds()) == list(range(1, 9))
    assert gt.getCatIds() == [1, 2, 3]
    lines = (root / "val2017.txt").read_text().split()
    assert lines[0] == "./images/val2017/000000000001.jpg" and len(lines) == 8
    for img_id in gt.getImgIds():
        anns = gt.loadAnns(gt.getAnnIds(imgIds=[img_id]))
        rows = (root / f"labels/val2017/{img_id:012d}.txt").read_text().split("\n")
        rows = [list(map(float, r.split())) for r in rows if r]
        assert len(rows) == len(anns)
        for a, r in zip(anns, rows):
            x, y, w, h = a["bbox"]
            assert r[0] == a["category_id"] - 1
            np.testing.assert_allclose(
                r[1:], [(x + w / 2) / 96, (y + h / 2) / 64, w / 96, h / 64], atol=1e-6
            )
            assert a["area"] == w * h and a["iscrowd"] == 0


def test_existing_split_is_refused_unless_overwrite(tmp_path):
    make_dataset(tmp_path, num_images=2, img_size=48, split="val2017")
    before = _digest(tmp_path)
    with pytest.raises(DatasetError, match="already exists"):
        make_dataset(tmp_path, num_images=3, img_size=48, split="val2017", seed=9)
    assert _digest(tmp_path) == before
    make_dataset(tmp_path, num_images=3, img_size=48, split="val2017", seed=9, overwrite=True)
    assert _digest(tmp_path) != before


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_images": 0}, "num_images"),
        ({"img_size": 8}, "at least 32"),
        ({"num_classes": 99}, "num_classes"),
        ({"split": "../x"}, "split"),
        ({"image_format": "gif"}, "image_format"),
        ({"objects": (3, 1)}, "objects"),
    ],
)
def test_bad_arguments_raise_dataset_error(tmp_path, kwargs, match):
    with pytest.raises(DatasetError, match=match):
        make_dataset(tmp_path / "d", **kwargs)
    assert not (tmp_path / "d").exists()


def test_cli_make_dataset(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["make-dataset", str(out), "--images", "3", "--size", "64", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [s["split"] for s in report["splits"]] == ["train2017", "val2017"]
    train = json.loads((out / "annotations/instances_train2017.json").read_text())
    val = json.loads((out / "annotations/instances_val2017.json").read_text())
    assert {i["id"] for i in train["images"]}.isdisjoint({i["id"] for i in val["images"]})
    # second run without --overwrite: a clear one-line error, exit code 9, nothing lost
    assert main(["make-dataset", str(out), "--images", "3", "--size", "64"]) == 9
    assert "already exists" in capsys.readouterr().err
    assert main(["make-dataset", str(tmp_path / "bad"), "--classes", "0"]) == 9
