"""Bad images and annotation files are refused before inference, naming what is wrong (exit 9).

Decompression bombs (a few bytes declaring hundreds of megapixels) are refused from the header
by every reader; COCO annotation files are checked entry by entry before pycocotools sees them.
No network is built and nothing is downloaded in these tests: the refusal comes first.
"""

from __future__ import annotations

import json
import math
import struct
import time
import warnings
import zlib
from pathlib import Path

import pytest

from hub.cli import main
from hub.errors import InputDataError
from yolomodels.errors import ImageReadError
from yolomodels.images import MAX_IMAGE_PIXELS, image_size


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels (the pixel data is not
    there: decoding it would need gigabytes before failing)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 4)) + chunk(b"IEND", b""))  # fmt: skip
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def bomb(tmp_path) -> Path:
    path = png_declaring(tmp_path / "bomb.png", 20000, 20000)
    assert path.stat().st_size == 69
    return path


# --- images ------------------------------------------------------------------------------------


def test_predict_refuses_a_decompression_bomb_with_exit_9(bomb, capsys, socket_guard):
    start = time.monotonic()
    code, out, err = run(capsys, "predict", "yolov3_darknet53", bomb)
    assert code == InputDataError.exit_code == 9 and out == ""
    assert time.monotonic() - start < 5
    assert err.startswith("error: image ") and "bomb.png declares 400 megapixels" in err
    assert "100-megapixel limit" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert socket_guard.attempts == []  # refused before the card's weights were fetched


def test_images_over_the_limit_but_under_pillows_are_refused_with_their_size(tmp_path):
    big = png_declaring(tmp_path / "big.png", 12000, 9000)  # 108 Mpx: Pillow itself only warns
    assert 12000 * 9000 > MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no DecompressionBombWarning leaks out either
        with pytest.raises(ImageReadError, match=r"declares 12000 x 9000 pixels \(108 megapixels"):
            image_size(big)
    ok = png_declaring(tmp_path / "ok.png", 10000, 9000)  # 90 Mpx: under the limit, header only
    assert image_size(ok) == (10000, 9000)


def test_every_image_reader_refuses_the_bomb(bomb, tmp_path):
    from hub.tasks.predict import read_image as predict_read
    from yolomodels.data.augment import load_image
    from yolomodels.eval.runner import read_image as eval_read

    for reader in (lambda p: load_image(p, 64), eval_read):
        with pytest.raises(ImageReadError, match="400 megapixels"):
            reader(bomb)
    with pytest.raises(InputDataError, match="400 megapixels"):
        predict_read(bomb)


def test_training_data_skips_the_bomb_and_reports_it(bomb, tmp_path):
    from yolomodels.data.datasets import DatasetWarning, load_dataset
    from yolomodels.data.synthetic import make_dataset

    root = make_dataset(tmp_path / "shapes", num_images=3, img_size=64, num_classes=1)
    ann = root / "annotations" / "instances_train2017.json"
    data = json.loads(ann.read_text())
    (root / "images" / "train2017" / "bomb.png").write_bytes(bomb.read_bytes())
    data["images"][0]["file_name"] = "bomb.png"
    ann.write_text(json.dumps(data))
    with pytest.warns(DatasetWarning, match="1 unreadable image"):
        ds = load_dataset(root, split="train")
    assert len(ds.records) == 2 and ds.report.corrupt_images[0].endswith("bomb.png")


# --- annotation files --------------------------------------------------------------------------


@pytest.fixture
def dataset(tmp_path) -> Path:
    from yolomodels.data.synthetic import make_dataset

    return make_dataset(tmp_path / "data", num_images=4, img_size=64, num_classes=3,
                        split="val2017", objects=(2, 2))  # fmt: skip


def _edit(dataset: Path, change) -> None:
    ann = dataset / "annotations" / "instances_val2017.json"
    data = json.loads(ann.read_text())
    change(data)
    ann.write_text(json.dumps(data))  # NaN and Infinity as Python's json writes them


def _set(section: str, index: int, key: str, value):
    def change(data):
        if value is _DELETE:
            del data[section][index][key]
        else:
            data[section][index][key] = value

    return change


_DELETE = object()
CASES = [
    (_set("annotations", 0, "bbox", "x"), "annotations[0] (id 1): bbox: expected [x, y, w, h] "
                                          "with 4 finite numbers, found 'x'"),
    (_set("annotations", 1, "bbox", [1, 2, math.nan, 4]), "annotations[1] (id 2): bbox"),
    (_set("annotations", 1, "bbox", [1, 2, math.inf, 4]), "4 finite numbers, found [1, 2, inf"),
    (_set("annotations", 2, "bbox", [1, 2, 0, 4]), "width and height must be positive"),
    (_set("annotations", 3, "category_id", 99), "annotations[3] (id 4): category_id 99 is not"),
    (_set("annotations", 0, "image_id", "1"), "image_id '1' is not the id of an entry"),
    (_set("annotations", 0, "bbox", [True, 1, 2, 3]), "4 finite numbers"),
    (_set("images", 2, "file_name", _DELETE), "images[2] (id 3): file_name: expected a file name"),
    (_set("images", 0, "file_name", "../../secret.png"), "points outside the image directory"),
    (_set("images", 1, "file_name", "gone.jpg"), "images[1] (id 2): "),
    (_set("images", 0, "id", 2), "images[1] (id 2): id 2 appears twice"),
    (_set("categories", 0, "id", "one"), "categories[0] (id 'one'): id: expected an integer"),
    (lambda d: d["annotations"].append(7), "annotations[8]: expected an object, found 7"),
]


@pytest.mark.parametrize("change, message", CASES, ids=[m[:40] for _, m in CASES])
def test_eval_refuses_bad_annotations_before_inference_naming_the_entry(
    dataset, change, message, capsys, tmp_path, socket_guard
):
    _edit(dataset, change)
    code, out, err = run(capsys, "eval", "yolov3_darknet53", "--data", dataset, "--out",
                         tmp_path / "report")  # fmt: skip
    assert code == 9, err
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "nothing was evaluated" in err and not (tmp_path / "report").exists()
    assert socket_guard.attempts == []  # refused before the weights were even looked for


def test_many_problems_are_counted_not_all_listed(dataset, capsys):
    def change(data):
        for a in data["annotations"]:
            a["bbox"] = "x"

    _edit(dataset, change)
    code, _, err = run(capsys, "eval", "yolov3_darknet53", "--data", dataset)
    assert code == 9 and "8 problem(s) in the annotations" in err and "... and 3 more" in err


def test_a_bomb_in_the_eval_split_is_named_before_inference(dataset, bomb, capsys):
    (dataset / "images" / "val2017" / "bomb.png").write_bytes(bomb.read_bytes())
    _edit(dataset, _set("images", 3, "file_name", "bomb.png"))
    code, _, err = run(capsys, "eval", "yolov3_darknet53", "--data", dataset)
    assert code == 9 and "images[3] (id 4): image " in err and "400 megapixels" in err


def test_training_data_skips_unusable_entries_and_never_reads_outside(tmp_path):
    from yolomodels.data.datasets import DatasetWarning, load_dataset
    from yolomodels.data.synthetic import make_dataset

    root = make_dataset(tmp_path / "shapes", num_images=4, img_size=64, num_classes=1,
                        objects=(1, 1))  # fmt: skip
    outside = tmp_path / "outside.jpg"
    outside.write_bytes((root / "images" / "train2017").iterdir().__next__().read_bytes())
    ann = root / "annotations" / "instances_train2017.json"
    data = json.loads(ann.read_text())
    data["images"][0]["file_name"] = "../../../outside.jpg"
    data["annotations"][1]["bbox"] = [1, 2, math.nan, 4]
    data["annotations"][2]["bbox"] = "x"
    ann.write_text(json.dumps(data))
    with pytest.warns(DatasetWarning, match="3/4 images .*3 label line"):
        ds = load_dataset(root, split="train")
    assert [r.path.name for r in ds.records] == [p["file_name"] for p in data["images"][1:]]
    assert ds.report.boxes_used == 1 and all(outside != r.path for r in ds.records)
