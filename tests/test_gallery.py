"""The demo's gallery: tallies against the ground truth, labels that never cover their object."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from hub.errors import InputDataError
from hub.tasks.drawing import label_font, place_label
from hub.tasks.gallery import draw_gallery


def _split(tmp_path: Path, detections: list[dict]) -> tuple[Path, Path, Path]:
    images = tmp_path / "images"
    images.mkdir()
    coco = {"images": [], "annotations": [], "categories": [
        {"id": 1, "name": "circle"}, {"id": 2, "name": "square"}]}
    for image_id in (1, 2, 3):
        name = f"{image_id:012d}.png"
        Image.new("RGB", (96, 96), (40, 90, 160)).save(images / name)
        coco["images"].append({"id": image_id, "file_name": name, "width": 96, "height": 96})
    boxes = {1: [(1, [10, 10, 30, 30]), (2, [50, 50, 30, 30])], 2: [(1, [0, 0, 40, 40])], 3: []}
    for image_id, objs in boxes.items():
        for cat, bbox in objs:
            coco["annotations"].append({"id": len(coco["annotations"]) + 1,
                                        "image_id": image_id, "category_id": cat, "bbox": bbox,
                                        "area": bbox[2] * bbox[3], "iscrowd": 0})
    ann = tmp_path / "instances_val.json"
    ann.write_text(json.dumps(coco))
    det = tmp_path / "detections.json"
    det.write_text(json.dumps(detections))
    return ann, det, images


def test_gallery_counts_found_missed_and_false_at_its_threshold(tmp_path):
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [11, 10, 30, 29], "score": 0.9},  # found
        {"image_id": 1, "category_id": 1, "bbox": [50, 50, 30, 30], "score": 0.8},  # wrong class
        {"image_id": 1, "category_id": 2, "bbox": [50, 50, 30, 30], "score": 0.1},  # below conf
        {"image_id": 2, "category_id": 1, "bbox": [1, 1, 39, 39], "score": 0.7},  # found
        {"image_id": 2, "category_id": 1, "bbox": [2, 0, 38, 40], "score": 0.6},  # duplicate
        {"image_id": 2, "category_id": 2, "bbox": [10, 10, 12, 12], "score": 0.5},  # nested: dup
        {"image_id": 2, "category_id": 1, "bbox": [30, 30, 40, 40], "score": 0.4},  # false
        {"image_id": 3, "category_id": 2, "bbox": [60, 60, 20, 20], "score": 0.5},  # nothing there
    ]
    ann, det, images = _split(tmp_path, dets)
    g = draw_gallery(ann, det, images, tmp_path / "out" / "gallery.png", count=2, conf=0.25,
                     title="test", tile=160)
    s = g.split
    assert (s.objects, s.found, s.missed, s.false, s.duplicates) == (3, 2, 1, 3, 2)
    assert g.split_images == 3 and g.images_shown == 2
    assert (g.shown.objects, g.shown.found, g.shown.false, g.shown.duplicates) == (3, 2, 2, 2)
    with Image.open(g.path) as im:
        assert im.format == "PNG"
        assert im.width >= 2 * 2 * 160  # two pairs of 160-px tiles side by side
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_a_label_sits_outside_its_box_when_there_is_room():
    draw = ImageDraw.Draw(Image.new("RGB", (256, 256)))
    font = label_font(12)
    for box in [(40, 60, 120, 140), (0, 0, 100, 100), (30, 150, 90, 256)]:
        rect = place_label(draw, "triangle 0.93", font, box, [box], 256)
        inside_x = rect[0] < box[2] and box[0] < rect[2]
        inside_y = rect[1] < box[3] and box[1] < rect[3]
        assert not (inside_x and inside_y), (box, rect)
        assert 0 <= rect[1] and rect[3] <= 256 and 0 <= rect[0] and rect[2] <= 256


def test_gallery_of_detections_that_do_not_match_the_annotations_is_a_clear_error(tmp_path):
    ann, det, images = _split(tmp_path, [{"image_id": 1, "category_id": 7, "bbox": [0, 0, 5, 5],
                                          "score": 0.9}])
    with pytest.raises(InputDataError, match="not a COCO results list"):
        draw_gallery(ann, det, images, tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()


def test_gallery_tiles_keep_the_picture_under_the_boxes(tmp_path):
    ann, det, images = _split(tmp_path, [])
    g = draw_gallery(ann, det, images, tmp_path / "g.png", count=1, tile=192)
    pixels = np.asarray(Image.open(g.path).convert("RGB"))
    # the background colour of the source images dominates the canvas around the header
    assert ((pixels == (40, 90, 160)).all(-1)).mean() > 0.2
