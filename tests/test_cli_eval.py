"""``yolohub eval`` / ``hub.evaluate`` end to end with a real scaled-down YOLOv3 and a user card.

One random-init network is saved as a checkpoint and measured once directly with yolomodels; the
cards below claim that number (holds), or that number + 5 points (does not hold).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
from PIL import Image

from hub._paths import builtin_cards_dir
from hub.cards.card import load_card
from hub.cli import main
from hub.errors import (
    CardNotFoundError,
    CheckpointError,
    CheckpointMismatchError,
    ClaimNotReproducedError,
    InputDataError,
    PublishError,
)

ARCH_ARGS = {"num_classes": 3, "img_size": 96, "depth_multiple": 0.33, "width_multiple": 0.25}
SPLIT = "val2017"


def _card_text(
    ckpt: Path,
    *,
    claims: dict[str, float | None],
    metric: str = "AP",
    names: str = "circle, square, triangle",
    arch_args: dict | None = None,
) -> str:
    arch_args = arch_args or ARCH_ARGS
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assets = "".join(
        f"""  - file-format: ckpt
    asset-link: <{ckpt.resolve().as_uri()}>
    asset-sha256: {sha}
    size: {ckpt.stat().st_size}
    version: "{version}"
"""
        + ("" if claimed is None else f"    claimed: {claimed!r}\n")
        for version, claimed in claims.items()
    )
    args = ", ".join(f"{k}: {v}" for k, v in arch_args.items())
    return f"""# tiny_shapes

---
format: yolohub/1
model-name: tiny_shapes
model-version: "{next(iter(claims))}"
backbone-name: darknet53
train-dataset: synthetic-shapes
license: Apache2.0
summary: A scaled-down YOLOv3 with random weights, for testing yolohub eval.
asset:
{assets}architecture:
  name: yolov3_darknet53
  args: {{{args}}}
  head-params: ["model.model.28.m.*"]
class-names: [{names}]
eval-protocol:
  dataset: synthetic-shapes
  split: {SPLIT}
  metric: {metric}
  img-size: {arch_args["img_size"]}
  conf-threshold: 0.001
  iou-threshold: 0.65
  max-detections: 100
  multi-label: true
  batch-size: 8
  tolerance: 0.001
---

# tiny_shapes

Test card.
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Dataset, checkpoint, its directly measured AP, and a directory with its card."""
    import mindspore as ms

    import yolomodels
    from yolomodels.checkpoint import save_checkpoint
    from yolomodels.data.synthetic import make_dataset
    from yolomodels.eval.coco import open_split
    from yolomodels.eval.runner import InferenceSettings
    from yolomodels.eval.scoring import evaluate_network

    root = tmp_path_factory.mktemp("evalworld")
    data = make_dataset(root / "data", num_images=8, img_size=(96, 80), num_classes=3, seed=5,
                        split=SPLIT, objects=(1, 3))  # fmt: skip
    ms.set_device("CPU")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.set_seed(1)
    net = yolomodels.build("yolov3_darknet53", **ARCH_ARGS)
    ckpt = root / "tiny.ckpt"
    save_checkpoint(net, ckpt)
    direct = evaluate_network(
        net,
        open_split(data, SPLIT),
        settings=InferenceSettings(img_size=96, max_detections=100, batch_size=8),
    )
    measured = direct.result.metrics.percent("AP")
    cards = root / "cards"
    cards.mkdir()
    claims = {"1.0": measured, "1.0-optimistic": measured + 5.0}
    (cards / "tiny_shapes.md").write_text(_card_text(ckpt, claims=claims))
    other = yolomodels.build("yolov3_darknet53", **{**ARCH_ARGS, "num_classes": 4})
    wrong = root / "four_classes.ckpt"
    save_checkpoint(other, wrong)
    return {"data": data, "ckpt": ckpt, "measured": measured, "cards": cards, "wrong": wrong,
            "root": root}  # fmt: skip


def _run(capsys, *argv):
    code = main(["eval", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_claim_reproduced_exits_zero_with_reports(world, capsys, tmp_path):
    out_dir = tmp_path / "report"
    code, out, err = _run(
        capsys, "tiny_shapes", "--data", world["data"], "--weights", world["ckpt"],
        "--cards", world["cards"], "--out", out_dir, "--mode", "pynative", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert err == ""  # not a TTY: no progress bar, and nothing else on stderr
    report = json.loads(out)
    assert report["model"] == "tiny_shapes@1.0"
    assert report["claim"]["verdict"] == "reproduced" and report["claim"]["holds"] is True
    assert report["claim"]["measured"] == pytest.approx(world["measured"], abs=1e-9)
    assert report["weights_sha256"] == hashlib.sha256(world["ckpt"].read_bytes()).hexdigest()
    assert report["protocol"]["img_size"] == 96 and report["protocol"]["max_detections"] == 100
    assert report["num_images"] == 8
    files = report["files"]
    assert Path(files["report_json"]).parent == out_dir
    assert json.loads(Path(files["report_json"]).read_text())["claim"]["verdict"] == "reproduced"
    assert "**Verdict: reproduced**" in Path(files["report_markdown"]).read_text()
    with Image.open(files["plot"]) as im:
        assert im.format == "PNG"
    # the detections file re-scores to the same metrics without inference
    from yolomodels.eval.coco import evaluate_file

    again = evaluate_file(report["annotations"], files["detections"])
    assert again.metrics.percent("AP") == pytest.approx(report["claim"]["measured"], abs=1e-9)
    # ... and through the CLI, which checks the claim again without loading a network
    code, out, err = _run(
        capsys, "tiny_shapes", "--data", world["data"], "--detections", files["detections"],
        "--cards", world["cards"], "--out", tmp_path / "rescored", "--json",
    )  # fmt: skip
    assert code == 0, err
    rescored = json.loads(out)
    assert rescored["metrics"] == report["metrics"] and rescored["inference_seconds"] == 0
    assert rescored["weights_sha256"] is None and rescored["claim"]["verdict"] == "reproduced"
    code, _, err = _run(capsys, "tiny_shapes", "--data", world["data"], "--detections",
                        files["detections"], "--weights", world["ckpt"], "--cards", world["cards"])  # fmt: skip
    assert code == InputDataError.exit_code and "cannot be combined" in err


def test_claim_not_reproduced_exits_with_its_code(world, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("YOLOHUB_PROGRESS", "1")
    code, out, err = _run(
        capsys, "tiny_shapes@1.0-optimistic", "--data", world["data"], "--weights",
        world["ckpt"], "--cards", world["cards"], "--out", tmp_path, "--mode", "pynative",
    )  # fmt: skip
    assert code == ClaimNotReproducedError.exit_code != 0
    assert "eval" in err and "img" in err  # YOLOHUB_PROGRESS=1: the bar shows on stderr
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: tiny_shapes@1.0-optimistic: measured AP")
    assert "differs by -5.00 (tolerance ±0.001)" in last and "Traceback" not in err
    assert "not reproduced" in out and "report:" in out
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["claim"]["verdict"] == "not reproduced"
    assert saved["claim"]["claimed"] == pytest.approx(world["measured"] + 5, abs=1e-9)


def test_update_card_records_the_result_in_a_user_card(world, tmp_path):
    import hub

    cards = tmp_path / "mine"
    shutil.copytree(world["cards"], cards)
    before = (cards / "tiny_shapes.md").read_text()
    report = hub.evaluate(
        "tiny_shapes", data=world["data"], weights=world["ckpt"], cards_dirs=[cards],
        out=tmp_path / "r", update_card=True, mode="pynative",
    )  # fmt: skip
    assert report.holds is True and report.card_updated
    card = load_card(cards / "tiny_shapes.md")  # still a valid card
    (entry,) = card.front_matter["eval-results"]
    assert entry["metric"] == "AP" and entry["value"] == pytest.approx(report.measured, abs=1e-4)
    assert entry["dataset"] == "synthetic-shapes" and entry["split"] == SPLIT
    assert entry["version"] == "1.0" and entry["date"] == report.date
    assert entry["yolohub-version"] == hub.__version__
    assert entry["weights-sha256"] == hashlib.sha256(world["ckpt"].read_bytes()).hexdigest()
    assert entry["settings"]["img-size"] == 96 and entry["settings"]["iou-threshold"] == 0.65
    assert entry["settings"]["images"] == 8
    after = (cards / "tiny_shapes.md").read_text()
    assert after.endswith("Test card.\n") and before.split("---")[0] == after.split("---")[0]


def test_update_card_refuses_builtin_cards_before_inference(world, capsys):
    name = sorted(builtin_cards_dir().glob("*.md"))[0].stem
    code, out, err = _run(capsys, name, "--data", world["data"], "--update-card")
    assert code == PublishError.exit_code
    assert "built into yolohub" in err and "--cards DIR" in err and out == ""


def test_bad_inputs_give_one_line_errors(world, capsys, tmp_path):
    common = ("--cards", world["cards"], "--mode", "pynative")
    code, _, err = _run(capsys, "tiny_shapes", "--data", tmp_path / "nowhere", *common)
    assert code == InputDataError.exit_code and "does not exist" in err
    code, _, err = _run(capsys, "tiny_shapes", "--data", world["data"], "--split", "test", *common)
    assert code == InputDataError.exit_code and "no annotations for split 'test'" in err
    missing = tmp_path / "none.ckpt"
    code, _, err = _run(capsys, "tiny_shapes", "--data", world["data"], "--weights", missing,
                        *common)  # fmt: skip
    assert code == InputDataError.exit_code and "none.ckpt does not exist" in err
    code, _, err = _run(capsys, "tiny_shapes", "--data", world["data"], "--weights",
                        world["wrong"], *common)  # fmt: skip
    assert code == CheckpointMismatchError.exit_code
    assert "does not fit the network of card tiny_shapes@1.0" in err and "mis-shaped" in err
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    code, _, err = _run(capsys, "tiny_shapes", "--data", world["data"], "--weights", garbage,
                        *common)  # fmt: skip
    assert code == CheckpointError.exit_code and "garbage.ckpt" in err
    assert all(len(e.splitlines()) == 1 for e in [err]) and "Traceback" not in err


def test_hub_evaluate_is_the_function_even_after_the_modules_are_imported():
    import hub
    import hub.cli.evaluate  # noqa: F401
    import hub.tasks.evaluate  # noqa: F401

    with pytest.raises(CardNotFoundError, match="no card named 'no_such_model'"):
        hub.evaluate("no_such_model", data=".")


def test_card_weights_load_through_the_cache_in_graph_mode(world, tmp_path, yolohub_env):
    """No --weights: hub.load fetches the card's file:// asset, verifies it, compiles a graph."""
    import hub

    report = hub.evaluate("tiny_shapes", data=world["data"], cards_dirs=[world["cards"]],
                          out=tmp_path / "r")  # fmt: skip
    assert report.weights_sha256 == hashlib.sha256(world["ckpt"].read_bytes()).hexdigest()
    assert Path(report.weights).is_file() and yolohub_env in Path(report.weights).parents
    # graph and PyNative kernels may differ in the last bits; the measured AP does not move
    assert report.measured == pytest.approx(world["measured"], abs=0.01)
    assert report.report_markdown.is_file() and report.detections.is_file()


def test_a_dataset_with_other_classes_is_refused_before_inference(world, capsys, tmp_path):
    from yolomodels.data.synthetic import make_dataset

    cards = tmp_path / "cards"
    cards.mkdir()
    text = _card_text(world["ckpt"], claims={"1.0": 1.0}, names="cat, dog, bird")
    (cards / "tiny_shapes.md").write_text(text)
    code, _, err = _run(capsys, "tiny_shapes", "--data", world["data"], "--cards", cards)
    assert code == InputDataError.exit_code
    assert "not the classes of card 'tiny_shapes'" in err and "'cat' vs 'circle'" in err
    five = make_dataset(tmp_path / "five", num_images=2, img_size=64, num_classes=5, split=SPLIT)
    code, _, err = _run(capsys, "tiny_shapes", "--data", five, "--cards", world["cards"])
    assert code == InputDataError.exit_code
    assert "predicts 3 classes but the dataset has 5 categories" in err


# ------------------------------------------------------------------ a trained network

TRAINED_ARGS = {"num_classes": 1, "img_size": 64, "depth_multiple": 0.33, "width_multiple": 0.25}
# A short run that learns: no warm-up floor, no EMA (its decay ramp outlasts 100 steps), no
# mosaic/mixup/colour jitter; 32 images x 25 epochs = 100 steps of 8 images at 64 px.
SHORT_RECIPE = (
    "epochs=25", "batch-size=8", "workers=1", "optimizer.lr=0.05", "optimizer.lrf=0.2",
    "warmup.epochs=1", "warmup.min-steps=0", "ema.enabled=false", "loss-scale.mode=none",
    "augment.mosaic=0", "augment.mixup=0", "augment.scale=0.2", "augment.hsv-h=0",
    "augment.hsv-s=0", "augment.hsv-v=0",
)  # fmt: skip


@pytest.fixture(scope="session")
def trained_shapes(tmp_path_factory):
    """One short hub.train run on synthetic circles (shared by every test that needs it)."""
    import hub
    from yolomodels.data.synthetic import make_dataset

    root = tmp_path_factory.mktemp("trained")
    shapes = {"num_classes": 1, "objects": (1, 2), "object_scale": (0.3, 0.6), "img_size": 64}
    make_dataset(root / "data", num_images=32, seed=0, split="train2017", **shapes)
    make_dataset(root / "data", num_images=16, seed=1, split=SPLIT, first_id=1000, **shapes)
    result = hub.train("yolov3_darknet53", data=root / "data", out=root / "train",
                       arch_args=TRAINED_ARGS, overrides=SHORT_RECIPE, progress=False)  # fmt: skip
    return root, result


def test_a_network_trained_by_hub_train_is_scored_by_eval_as_measured_directly(
    trained_shapes, capsys
):
    """hub.train's weights, through a card, ``yolohub eval --weights`` and the cache.

    This test does not ask how well 100 SGD steps detect.  Measured over training seeds 0-2
    and OMP_NUM_THREADS / MindSpore CPU threads 1 and 2 (bench/results/margins.md), held-out
    AP50 after this run ranged from 0.3 to 17.5 with the seed alone (the card's seed 2 scored
    17.5 here and 2.36 on another CPU), below the untrained network's 1.4-1.6 for seeds 0 and
    1; even "the top detection is centred on an object" held for 25-56 % of images against 75 %
    untrained, and the loss of the last five epochs was 0.86-0.95 of the first.  No threshold
    on those has a margin; learning itself is test_train's job (a recipe whose loss falls
    with margin).  What holds everywhere: eval scores hub.train's checkpoint exactly as a
    direct yolomodels evaluation of the same weights does.
    """
    import mindspore as ms

    import yolomodels
    from yolomodels.checkpoint import load_strict, read_checkpoint, save_checkpoint
    from yolomodels.eval.coco import open_split
    from yolomodels.eval.runner import InferenceSettings
    from yolomodels.eval.scoring import evaluate_network

    root, trained = trained_shapes
    assert trained.steps == 100 and trained.class_names == ("circle",)
    assert all(math.isfinite(v) for v in trained.epoch_losses), trained.epoch_losses
    ms.set_seed(3)
    untrained = root / "untrained.ckpt"
    save_checkpoint(yolomodels.build("yolov3_darknet53", **TRAINED_ARGS), untrained)
    cards = root / "cards"
    cards.mkdir(exist_ok=True)
    (cards / "tiny_shapes.md").write_text(
        _card_text(
            trained.checkpoint,
            claims={"1.0": None},
            metric="AP50",
            names="circle",
            arch_args=TRAINED_ARGS,
        )  # fmt: skip
    )
    split = open_split(root / "data", SPLIT)
    settings = InferenceSettings(img_size=64, conf_threshold=0.001, iou_threshold=0.65,
                                 max_detections=100, multi_label=True, batch_size=8)  # fmt: skip
    for label, ckpt in (("trained", trained.checkpoint), ("untrained", untrained)):
        code, out, err = _run(
            capsys, "tiny_shapes", "--data", root / "data", "--weights", ckpt, "--cards", cards,
            "--out", root / label, "--mode", "pynative", "--json",
        )  # fmt: skip
        assert code == 0, err  # the card claims nothing, so there is nothing to fail
        report = json.loads(out)
        assert report["claim"]["verdict"] == "no claim" and report["split"] == SPLIT
        assert report["num_images"] == 16 and report["num_detections"] > 0
        net = yolomodels.build("yolov3_darknet53", **TRAINED_ARGS)
        assert load_strict(net, read_checkpoint(ckpt)).ok
        direct = evaluate_network(net, split, settings=settings).result.metrics.as_percent()
        assert report["metrics"] == pytest.approx(direct, abs=1e-4), label  # 4 decimals
        if label == "untrained":
            # a fixed seed: 1.39 on this machine and on the one where the old test failed
            assert report["metrics"]["AP50"] < 3.0, report["metrics"]


@pytest.mark.parametrize(
    "path", sorted(builtin_cards_dir().glob("*.md")), ids=lambda p: p.stem
)  # fmt: skip
def test_builtin_card_protocols_are_mindyolos(path):
    """Fact sheet §5: conf 0.001, multi-label, 300 detections, IoU 0.65 (v3) / 0.6 (v4), the
    network's own image size, and AP@[.5:.95] as the claimed metric."""
    from hub.tasks.evaluate import inference_settings

    card = load_card(path)
    settings = inference_settings(card.eval_protocol)
    assert settings.img_size == card.architecture.args["img_size"]
    assert settings.conf_threshold == 0.001 and settings.multi_label is True
    assert settings.max_detections == 300
    assert settings.iou_threshold == (0.65 if card.name.startswith("yolov3") else 0.6)
    assert card.eval_protocol.metric == "AP" and card.eval_protocol.dataset == "coco2017"
