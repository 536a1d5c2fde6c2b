"""The end-to-end demo, in its quick (CI) setting, through the real CLI."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from hub.cards.card import load_card
from hub.cli import main
from hub.errors import InputDataError
from hub.tasks.demo import DemoConfig, run_demo


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_quick_demo_publishes_serves_loads_and_reproduces(tmp_path, capsys):
    out = tmp_path / "demo"
    home = Path(os.environ["YOLOHUB_HOME"])

    assert main(["demo", "--quick", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)

    assert [s["name"] for s in summary["steps"]] == [
        "dataset", "train", "measure", "publish", "load", "eval", "gallery", "predict"
    ]
    # the published card is a valid yolohub card for the scaled-down network it was trained as
    card = load_card(Path(summary["card"]))
    assert card.architecture.name == "yolov3_darknet53"
    assert card.architecture.args["depth_multiple"] == DemoConfig.quick(out).depth_multiple
    assert card.class_names is not None and len(card.class_names) == 3
    # the weights came back through the HTTP server into the demo's own cache, bit for bit
    asset = card.assets[0]
    assert asset.links[0].startswith("http://127.0.0.1:")
    assert asset.sha256 == summary["sha256"] == _sha256(Path(summary["checkpoint"]))
    assert Path(summary["checkpoint"]).is_relative_to(out / "cache")
    trained = out / "train" / "weights" / "last.ckpt"
    assert _sha256(trained) == summary["sha256"]
    assert not (home / "blobs").exists(), "the demo must not write into the user's cache"
    # the claim written into the card is reproduced after download
    assert asset.claimed == pytest.approx(summary["claimed"], abs=0.01)
    assert summary["holds"] is True
    assert abs(summary["reproduced"] - summary["claimed"]) <= card.eval_protocol.tolerance
    report = json.loads(Path(summary["eval_report"]).read_text())
    assert report["model"] == f"{card.name}@{card.version}"
    # the gallery: validation images with their ground truth and the evaluation's detections,
    # counted against the annotations of the whole split
    gallery = Path(summary["gallery"])
    assert gallery.is_relative_to(out) and gallery.suffix == ".png"
    with Image.open(gallery) as grid:
        assert grid.format == "PNG" and grid.width > 4 * 96
    annotations = json.loads((out / "data" / "annotations" / "instances_val2017.json").read_text())
    assert summary["val_objects"] == len(annotations["annotations"])
    assert 0 <= summary["found"] <= summary["val_objects"] and summary["false_detections"] >= 0
    assert summary["duplicates"] >= 0
    assert Path(summary["pr_plot"]).is_file()
    # an annotated PNG of the validation image's size
    pred = Path(summary["prediction"])
    assert pred.suffix == ".png"
    source = next((out / "data" / "images" / "val2017").glob(pred.name))
    with Image.open(pred) as annotated, Image.open(source) as original:
        assert annotated.format == "PNG"
        assert annotated.size == original.size


def test_demo_refuses_a_directory_that_is_not_its_own(tmp_path):
    precious = tmp_path / "notes.txt"
    precious.write_text("keep me")
    with pytest.raises(InputDataError, match="does not look like an earlier demo"):
        run_demo(DemoConfig.quick(tmp_path), echo=lambda _line: None)
    assert precious.read_text() == "keep me"


def test_closing_summary_says_where_to_look_and_what_the_numbers_mean(tmp_path):
    from hub.tasks.demo import DemoResult
    from hub.tasks.gallery import Gallery, Tally

    out = tmp_path / "demo"
    config = DemoConfig(out=out)
    gallery = Gallery(path=out / "gallery.png", images_shown=8, shown=Tally(17, 16, 1, 3),
                      split=Tally(98, 93, 4, 21), split_images=48, conf=0.25)
    result = DemoResult(
        config=config, steps=(), card_path=out / "registry" / "card.md",
        checkpoint=out / "cache" / "w.ckpt", sha256="ab" * 32, asset_url="http://127.0.0.1:1/w",
        claimed=81.234, reproduced=81.234, holds=True, first_loss=1.1, last_loss=0.4, size=10,
        prediction_image=out / "predict" / "1.png", num_detections=2,
        eval_report=out / "eval" / "eval.json", eval_markdown=out / "eval" / "eval.md",
        pr_plot=out / "eval" / "eval_pr.png", gallery=gallery,
        train_log=out / "train" / "train_log.jsonl",
    )
    text = result.closing()
    first = text.splitlines()[0]
    assert "measured 81.23" in first and "claimed 81.23" in first and "holds" in first
    look = next(line for line in text.splitlines() if line.startswith("Look first"))
    assert str(out / "gallery.png") in look and "eval_pr.png" in look
    meaning = text.splitlines()[text.splitlines().index(look) + 1]
    assert "93 of 98 objects" in meaning and "4 false detections" in meaning
    assert "21 lower-scoring duplicate" in meaning
    for path in ("gallery.png", "eval_pr.png", "eval.md", "card.md", "w.ckpt", "train_log.jsonl"):
        assert path in text
    failed = DemoResult(**{**result.__dict__, "holds": False, "reproduced": 70.0})
    assert "NOT reproduced" in failed.closing().splitlines()[0]
