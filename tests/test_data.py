"""Training data: dataset checks, augmentations (rendered to a PNG), padded batches and shards."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from yolomodels.data.augment import (
    NO_AUGMENT,
    AugmentConfig,
    Augmenter,
    fliplr,
    labels_to_normalised,
    labels_to_pixels,
    letterbox,
)
from yolomodels.data.datasets import DatasetWarning, load_dataset
from yolomodels.data.loader import MAX_BOXES, TrainLoader
from yolomodels.data.synthetic import make_dataset
from yolomodels.errors import DatasetError

BOX_COLOUR = (255, 0, 255)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    make_dataset(root, num_images=12, img_size=(120, 96), num_classes=3, seed=3)
    return root


def test_coco_and_yolo_layouts_give_the_same_boxes(shapes):
    coco = load_dataset(shapes, split="train", layout="coco")
    yolo = load_dataset(shapes, split="train", layout="yolo")
    assert coco.layout == "coco" and yolo.layout == "yolo"
    assert coco.class_names == yolo.class_names == ("circle", "square", "triangle")
    assert len(coco) == len(yolo) == 12
    for a, b in zip(coco.records, yolo.records):
        assert a.path == b.path and (a.width, a.height) == (120, 96)
        np.testing.assert_allclose(a.labels, b.labels, atol=1e-5)
    assert coco.report.problems == 0


def test_augmented_batch_renders_to_a_png_with_boxes(shapes, tmp_path):
    ds = load_dataset(shapes, split="train")
    aug = Augmenter(ds.records, img_size=96, config=AugmentConfig(), seed=0)
    tiles, n_boxes = [], 0
    corners = []
    for i in range(4):
        img, labels = aug.sample(i, epoch=0)
        assert img.shape == (96, 96, 3) and img.dtype == np.uint8
        # Every box lies inside the image and is not degenerate.
        assert np.all(labels[:, 1:] >= 0) and np.all(labels[:, [1, 3]] <= 96)
        assert np.all(labels[:, 3] > labels[:, 1]) and np.all(labels[:, 4] > labels[:, 2])
        tile = Image.fromarray(img)
        draw = ImageDraw.Draw(tile)
        for _, x1, y1, x2, y2 in labels:
            draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=BOX_COLOUR)
            corners.append((i, int(x1), int(y1)))
        n_boxes += len(labels)
        tiles.append(tile)
    assert n_boxes > 0, "mosaic of shapes images produced no boxes"
    sheet = Image.new("RGB", (96 * 4, 96))
    for i, t in enumerate(tiles):
        sheet.paste(t, (96 * i, 0))
    out = tmp_path / "augmented_batch.png"
    sheet.save(out)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (384, 96)
        pixels = np.asarray(im.convert("RGB"))
    for i, x, y in corners:
        assert tuple(pixels[min(y, 95), 96 * i + min(x, 95)]) == BOX_COLOUR
    assert (pixels == BOX_COLOUR).all(-1).sum() >= 4 * n_boxes


def test_augmentation_is_deterministic_per_seed_epoch_and_index(shapes):
    ds = load_dataset(shapes, split="train")
    a = Augmenter(ds.records, img_size=96, config=AugmentConfig(), seed=5)
    b = Augmenter(ds.records, img_size=96, config=AugmentConfig(), seed=5)
    img1, lab1 = a.sample(3, epoch=2)
    img2, lab2 = b.sample(3, epoch=2)
    assert np.array_equal(img1, img2) and np.array_equal(lab1, lab2)
    img3, _ = a.sample(3, epoch=3)
    assert not np.array_equal(img1, img3)


def test_no_augment_letterboxes_and_keeps_boxes_exact(shapes):
    ds = load_dataset(shapes, split="train")
    rec = ds.records[0]
    aug = Augmenter(ds.records, img_size=96, config=NO_AUGMENT, seed=0)
    chw, labels = aug(0)
    assert chw.shape == (3, 96, 96) and chw.dtype == np.float32 and 0 <= chw.min() <= chw.max() <= 1
    # 120 x 96 -> 96 x 77 (long side 96), padded 9 px top and 10 px bottom with 114.
    assert np.allclose(chw[:, 0, :], 114 / 255) and np.allclose(chw[:, -1, :], 114 / 255)
    scale = 96 / 120
    expected = rec.labels.copy()
    expected[:, 1] = rec.labels[:, 1]
    expected[:, 2] = (rec.labels[:, 2] * 96 * scale + (96 - int(96 * scale)) // 2) / 96
    expected[:, 4] = rec.labels[:, 4] * 96 * scale / 96
    np.testing.assert_allclose(labels, expected, atol=2e-2)


def test_fliplr_and_label_conversions_round_trip():
    img = np.zeros((10, 20, 3), np.uint8)
    img[:, :5] = 255
    labels = np.array([[1, 2.0, 3.0, 6.0, 9.0]], np.float32)
    flipped, fl = fliplr(img, labels)
    assert flipped[:, -5:].min() == 255 and flipped[:, :5].max() == 0
    np.testing.assert_allclose(fl, [[1, 14.0, 3.0, 18.0, 9.0]])
    norm = labels_to_normalised(labels, 20, 10)
    np.testing.assert_allclose(labels_to_pixels(norm, 20, 10), labels, atol=1e-5)
    boxed, moved = letterbox(img, labels, 20)
    assert boxed.shape == (20, 20, 3)
    np.testing.assert_allclose(moved, [[1, 2.0, 8.0, 6.0, 14.0]])


def test_loader_batches_are_padded_indexed_and_sharded(shapes):
    ds = load_dataset(shapes, split="train")
    cfg = AugmentConfig(mixup=0.0)
    loaders = [
        TrainLoader(ds, img_size=64, batch_size=2, augment=cfg, seed=1, workers=1, rank=r, world=2)
        for r in (0, 1)
    ]
    assert loaders[0].steps_per_epoch == 3  # 12 images, 6 per rank, batches of 2
    idx0, idx1 = (set(ld.epoch_indices(0).tolist()) for ld in loaders)
    assert not idx0 & idx1 and len(idx0) == len(idx1) == 6
    assert loaders[0].epoch_indices(0).tolist() != loaders[0].epoch_indices(1).tolist()
    batches = list(loaders[0].batches(0, 2))
    assert [(e, k) for e, k, _, _ in batches] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    _, _, images, labels = batches[0]
    assert images.shape == (2, 3, 64, 64) and images.dtype == np.float32
    assert labels.shape == (2, MAX_BOXES, 6) and labels.dtype == np.float32
    assert np.array_equal(labels[:, :, 0], np.repeat([[0.0], [1.0]], MAX_BOXES, 1))
    valid = labels[:, :, 1] >= 0
    assert valid.any()
    assert np.all(labels[~valid][:, 1:] == -1)
    assert np.all((labels[valid][:, 2:] >= 0) & (labels[valid][:, 2:] <= 1))
    # The same epoch again gives the same batches (workers or not).
    again = list(loaders[0].batches(0, 1))
    assert np.array_equal(again[0][2], images) and np.array_equal(again[0][3], labels)


def test_dataset_checks_count_and_skip_bad_images_and_boxes(tmp_path):
    root = tmp_path / "ds"
    make_dataset(root, num_images=6, img_size=64, num_classes=2, seed=0)
    ann_path = root / "annotations" / "instances_train2017.json"
    coco = json.loads(ann_path.read_text())
    images = root / "images" / "train2017"
    (images / coco["images"][0]["file_name"]).unlink()  # missing
    (images / coco["images"][1]["file_name"]).write_bytes(b"\xff\xd8\xff\xe0 not really")  # corrupt
    img2 = coco["images"][2]["id"]
    coco["annotations"] += [
        {"id": 901, "image_id": img2, "category_id": 1, "bbox": [5, 5, 0, 4], "iscrowd": 0},
        {"id": 902, "image_id": img2, "category_id": 1, "bbox": [50, 50, 40, 40], "iscrowd": 0},
        {"id": 903, "image_id": img2, "category_id": 7, "bbox": [5, 5, 4, 4], "iscrowd": 0},
    ]
    ann_path.write_text(json.dumps(coco))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(root, split="train")
    r = ds.report
    assert (len(r.missing_images), len(r.corrupt_images)) == (1, 1)
    assert (r.empty_boxes, r.out_of_range_boxes, r.unknown_class_boxes) == (1, 1, 1)
    assert len(ds) == 4 and r.images_listed == 6
    messages = [str(w.message) for w in caught if issubclass(w.category, DatasetWarning)]
    assert len(messages) == 1
    assert "1 missing image" in messages[0] and "1 unreadable image" in messages[0]
    assert "box(es) outside the image" in messages[0]


def test_unusable_datasets_raise_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")
    root = tmp_path / "broken"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_train2017.json").write_text("{ not json")
    with pytest.raises(DatasetError, match="do not parse as JSON"):
        load_dataset(root, split="train")
    (root / "annotations" / "instances_train2017.json").write_text('{"images": 3}')
    with pytest.raises(DatasetError, match="not a COCO instances file"):
        load_dataset(root, split="train")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no 'train' split"):
        load_dataset(empty, split="train")
