"""Training: recipes and overrides, schedule, a short real run (loss falls, exact resume), CLI errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from hub.errors import InputDataError
from yolomodels.errors import RecipeError
from yolomodels.train.config import (
    OptimizerConfig,
    TrainConfig,
    WarmupConfig,
    apply_overrides,
    config_from_mapping,
)
from yolomodels.train.schedule import Schedule

CARDS = ("yolov3_darknet53", "yolov4_cspdarknet53", "yolov4_cspdarknet53_silu")
SMALL = {"img_size": 96, "depth_multiple": 0.33, "width_multiple": 0.25}
QUICK = [
    "batch-size=4",
    "workers=1",
    "keep-checkpoints=20",
    "warmup.epochs=1",
    "warmup.min-steps=0",
    "optimizer.lr=0.02",
    "augment.mosaic=0",
    "augment.mixup=0",
    "augment.scale=0",
    "augment.translate=0",
    "augment.hsv-h=0",
    "augment.hsv-s=0",
    "augment.hsv-v=0",
    "augment.fliplr=0",
]


# --- recipes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CARDS)
def test_every_card_recipe_is_a_complete_checked_config(name):
    from hub.cards.catalog import resolve

    card = resolve(name).card
    cfg = config_from_mapping(card.recipe)
    assert cfg.img_size == card.architecture.args["img_size"]
    assert cfg.batch_size == 16 and cfg.loss.name.startswith("YOLOv")
    # The recipe round-trips through its kebab-case form.
    assert config_from_mapping(cfg.to_recipe()) == cfg
    if name.startswith("yolov3"):
        assert (cfg.epochs, cfg.optimizer.lr, cfg.optimizer.nesterov, cfg.ema.enabled) == (
            300,
            0.01,
            True,
            True,
        )
    else:
        assert (cfg.epochs, cfg.optimizer.loss_scale, cfg.ema.enabled) == (320, 64.0, False)


def test_overrides_are_dotted_yaml_values_with_type_checks():
    recipe = apply_overrides({"optimizer": {"lr": 0.01}}, ["optimizer.lr=0.05", "ema=false"])
    cfg = config_from_mapping(recipe)
    assert cfg.optimizer.lr == 0.05 and cfg.ema.enabled is False
    with pytest.raises(RecipeError) as err:
        config_from_mapping(apply_overrides({}, ["optimizer.momentum=fast"]))
    msg = str(err.value)
    assert "recipe.optimizer.momentum" in msg and "expected a number" in msg and "'fast'" in msg
    with pytest.raises(RecipeError, match="unknown key 'epoch'.*did you mean epochs"):
        config_from_mapping({"epoch": 3})
    with pytest.raises(RecipeError, match="not of the form key=value"):
        apply_overrides({}, ["epochs"])
    with pytest.raises(RecipeError, match="expected one of cosine, linear"):
        config_from_mapping({"optimizer": {"schedule": "step"}})


def test_schedule_warmup_cosine_and_linear_endpoints():
    opt = OptimizerConfig(lr=0.01, lrf=0.1, momentum=0.937)
    warm = WarmupConfig(epochs=3, min_steps=0, bias_lr=0.1, momentum=0.8)
    s = Schedule(optimizer=opt, warmup=warm, epochs=300, steps_per_epoch=10)
    assert s.warmup_steps == 30
    v0 = s.at(0)
    assert (v0.lr, v0.lr_bias, v0.momentum) == (0.0, 0.1, 0.8)
    mid = s.at(15)
    assert mid.lr == pytest.approx(s.epoch_lr(1) * 0.5)
    assert mid.lr_bias == pytest.approx(0.1 + (s.epoch_lr(1) - 0.1) * 0.5)
    assert s.at(30).lr == pytest.approx(s.epoch_lr(3)) and s.at(30).momentum == 0.937
    # Fact sheet §4.2: 0.001 + 0.0045 (1 + cos(pi e / 300)).
    for e in (0, 150, 299):
        assert s.epoch_lr(e) == pytest.approx(0.001 + 0.0045 * (1 + math.cos(math.pi * e / 300)))
    lin = Schedule(
        optimizer=OptimizerConfig(lr=0.012, lrf=0.0, schedule="linear"),
        warmup=WarmupConfig(epochs=0, min_steps=1000, target="lr"),
        epochs=4,
        steps_per_epoch=500,
    )
    assert lin.warmup_steps == 1000 and lin.at(500).lr == pytest.approx(0.006)
    assert lin.epoch_lr(2) == pytest.approx(0.006) and lin.at(1999).lr == pytest.approx(0.003)


# --- a real short run ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    from yolomodels.data.synthetic import make_dataset

    root = tmp_path_factory.mktemp("shapes")
    make_dataset(root, num_images=8, img_size=96, num_classes=3, seed=1)
    return root


EPOCHS = 16
STEPS = 2  # 8 images in batches of 4


@pytest.fixture(scope="module")
def trained(shapes, tmp_path_factory):
    """One uninterrupted run of a scaled-down YOLOv3: 16 epochs x 2 steps of 4 images."""
    from hub.tasks.train import train

    out = tmp_path_factory.mktemp("run")
    result = train(
        "yolov3_darknet53",
        data=shapes,
        out=out,
        overrides=[f"epochs={EPOCHS}", *QUICK],
        arch_args=dict(SMALL),
    )
    return result


def test_a_short_run_lowers_the_loss_and_writes_loadable_weights(trained):
    r = trained
    assert r.epochs == EPOCHS and r.steps == EPOCHS * STEPS
    assert r.class_names == ("circle", "square", "triangle")
    assert r.arch_args["num_classes"] == 3 and r.arch_args["img_size"] == 96
    losses = r.epoch_losses
    assert all(np.isfinite(losses))
    # Per-epoch means of 2 steps are noisy; the last four epochs together are lower.  Their
    # ratio to the first epoch was 0.74-0.86 over recipe seeds 0-3 with OMP_NUM_THREADS and
    # MindSpore CPU threads 1 and 2 (the old bound of 0.85 failed for seeds 0 and 3): 0.95
    # keeps a margin.
    assert np.mean(losses[-4:]) < 0.95 * losses[0], losses
    records = [json.loads(line) for line in r.log.read_text().splitlines()]
    steps = [x for x in records if x["type"] == "step"]
    epochs = [x for x in records if x["type"] == "epoch"]
    assert len(steps) == EPOCHS * STEPS and len(epochs) == EPOCHS
    assert [x["step"] for x in steps] == list(range(1, EPOCHS * STEPS + 1))
    assert steps[0]["lr"] == 0.0 and steps[0]["lr_bias"] == 0.1  # warmup starts there
    from yolomodels.checkpoint import load_strict, read_checkpoint
    from yolomodels.registry import build

    net = build(r.arch, **r.arch_args)
    report = load_strict(net, read_checkpoint(r.checkpoint))
    assert report.ok and not report.dropped and len(report.loaded) == len(net.parameters_dict())


def _state(path: Path) -> dict:
    import mindspore as ms

    return {k: v.asnumpy() for k, v in ms.load_checkpoint(str(path)).items()}


def test_resume_from_epoch_1_reaches_the_uninterrupted_state(trained, shapes, tmp_path):
    from hub.tasks.train import train

    resumed = tmp_path / "resumed"
    (resumed / "state").mkdir(parents=True)
    shutil.copy(trained.out_dir / "run.json", resumed / "run.json")
    shutil.copy(trained.out_dir / "state" / "epoch_001.ckpt", resumed / "state")
    result = train(
        "yolov3_darknet53",
        data=shapes,
        out=resumed,
        overrides=[f"epochs={EPOCHS}", *QUICK],
        arch_args=dict(SMALL),
        resume=True,
    )
    assert result.resumed_from_epoch == 1 and result.steps == EPOCHS * STEPS
    final = f"epoch_{EPOCHS:03d}.ckpt"
    want = _state(trained.out_dir / "state" / final)
    got = _state(resumed / "state" / final)
    assert set(want) == set(got)
    assert any(k.startswith("ema.") for k in got) and any(k.startswith("moments.") for k in got)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_resume_refuses_a_changed_recipe(trained, shapes):
    from hub.tasks.train import train

    with pytest.raises(InputDataError, match="recipe changed") as err:
        train(
            "yolov3_darknet53",
            data=shapes,
            out=trained.out_dir,
            overrides=[f"epochs={EPOCHS + 1}", *QUICK],
            arch_args=dict(SMALL),
            resume=True,
        )
    # the keys that changed, not both whole recipes (which ran to ~2,000 characters)
    message = str(err.value)
    assert f"recipe.epochs: was {EPOCHS}, now {EPOCHS + 1})" in message and len(message) < 300
    with pytest.raises(InputDataError, match="already holds a training run"):
        train(
            "yolov3_darknet53",
            data=shapes,
            out=trained.out_dir,
            overrides=[f"epochs={EPOCHS}", *QUICK],
            arch_args=dict(SMALL),
        )


# --- bad input: clear errors, no traceback ------------------------------------------------------


def test_wrong_type_recipe_value_is_a_clear_error(shapes, tmp_path):
    from hub.tasks.train import train

    with pytest.raises(InputDataError) as err:
        train("yolov3_darknet53", data=shapes, out=tmp_path, overrides=["batch-size=four"])
    msg = str(err.value)
    assert "recipe.batch-size" in msg and "expected an integer" in msg and "'four'" in msg


def test_num_classes_must_follow_the_dataset(shapes, tmp_path):
    from hub.tasks.train import train

    with pytest.raises(InputDataError, match="num_classes=5 but the dataset .* has 3 classes"):
        train("yolov3_darknet53", data=shapes, out=tmp_path, arch_args={"num_classes": 5})


@pytest.mark.parametrize("case", ["missing", "unparsable", "wrong-type"])
def test_cli_bad_input_exits_9_with_one_line(case, shapes, tmp_path, capsys):
    from hub.cli import main

    data = shapes
    extra = []
    if case == "missing":
        data = tmp_path / "no-such-dataset"
    elif case == "unparsable":
        data = tmp_path / "broken"
        (data / "annotations").mkdir(parents=True)
        (data / "annotations" / "instances_train2017.json").write_text("[{ oops")
    else:
        extra = ["--set", "optimizer.nesterov=maybe"]
    code = main(
        ["train", "yolov3_darknet53", "--data", str(data), "--out", str(tmp_path / "o"), *extra]
    )
    err = capsys.readouterr().err
    assert code == 9
    assert "Traceback" not in err
    line = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(line) == 1
    expect = {
        "missing": "does not exist",
        "unparsable": "do not parse as JSON",
        "wrong-type": "recipe.optimizer.nesterov: expected true/false, found 'maybe'",
    }[case]
    assert expect in line[0]
    assert not (tmp_path / "o" / "state").exists()


def test_trainconfig_defaults_are_mindyolo_yolov3():
    cfg = TrainConfig()
    assert (cfg.optimizer.momentum, cfg.warmup.bias_lr, cfg.ema.decay) == (0.937, 0.1, 0.9999)


# --- the compiled step on overflow ------------------------------------------------------------


@pytest.mark.parametrize("clip_grad", [None, 10.0])
def test_a_step_with_non_finite_gradients_changes_no_weight_or_moment_but_runs_the_ema(clip_grad):
    import mindspore as ms
    from mindspore import Tensor

    import yolomodels
    from yolomodels.losses import build_loss
    from yolomodels.train.distributed import Parallel
    from yolomodels.train.optim import EMA, GroupSGD
    from yolomodels.train.step import build_train_step

    ms.set_seed(0)
    net = yolomodels.build(
        "yolov3_darknet53", num_classes=3, img_size=64, depth_multiple=0.33, width_multiple=0.25
    )
    net.set_train(True)
    opt = GroupSGD(net.trainable_params(), weight_decay=0.0005, nesterov=True)
    ema = EMA(net)
    step = build_train_step(
        net, build_loss("YOLOv3Loss", num_classes=3), opt, ema, parallel=Parallel(),
        clip_grad=clip_grad,
    )
    labels = np.zeros((2, 4, 6), np.float32)
    labels[:, 0] = [0, 1, 0.5, 0.5, 0.3, 0.4]
    scalars = [Tensor(v, ms.float32) for v in (0.01, 0.01, 0.9, 1.0)]

    def snapshot():
        return [p.asnumpy().copy() for p in (*opt.params, *opt.moments, *ema.shadow)]

    images = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    _, _, finite = step(Tensor(images), Tensor(labels), *scalars, Tensor(0.5, ms.float32))
    assert bool(finite.asnumpy())
    before = snapshot()
    images[0, 0, 10, 10] = np.nan
    _, _, finite = step(Tensor(images), Tensor(labels), *scalars, Tensor(0.5, ms.float32))
    assert not bool(finite.asnumpy())
    after = snapshot()
    n = len(opt.params)
    for b, a in zip(before[: 2 * n], after[: 2 * n]):  # weights and moments: untouched
        assert np.array_equal(a, b)
    # the EMA still moved: shadow = 0.5 * shadow + 0.5 * weights, and they differ after step 1
    moved = [not np.array_equal(a, b) for b, a in zip(before[2 * n :], after[2 * n :])]
    assert any(moved)


@pytest.mark.parametrize("command", ["train", "demo"])
def test_recipe_examples_in_the_help_are_accepted(command):
    """Every ``key=value`` example in ``--set``'s help is a recipe override that works."""
    import re

    from hub.cli import build_parser
    from hub.tasks.train import effective_recipe

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    (option,) = [a for a in sub._actions if "--set" in a.option_strings]
    examples = re.findall(r"\b([a-z][a-z-]*(?:\.[a-z0-9-]+)+=[^\s,)]+)", option.help)
    assert examples, option.help
    for example in examples:
        key, _, value = example.partition("=")
        recipe = effective_recipe("yolov3_darknet53", overrides=[example])
        node = recipe
        for part in key.split("."):
            node = node[part]
        assert node == float(value), example
