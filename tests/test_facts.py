"""Facts yolomodels owns and everyone else asks for: strides and anchors, the input-size rule,
the class-dependent head parameters, the architecture argument names, and the image reader."""

from __future__ import annotations

import fnmatch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nethelpers import small_net
from PIL import Image

import yolomodels
from hub.errors import InputDataError
from yolomodels.errors import ArchitectureArgumentError, ImageSizeError
from yolomodels.levels import MAX_STRIDE
from yolomodels.sizes import check_img_size

ARCHS = yolomodels.list_archs()


@pytest.fixture(scope="module", params=ARCHS)
def pair(request):
    """(arch, the same scaled-down network built for 1 and for 2 classes)."""
    return request.param, small_net(request.param, num_classes=1), small_net(request.param,
                                                                             num_classes=2)


def _loss_name(net) -> str:
    from yolomodels.detectors import YOLOv3

    return "YOLOv3Loss" if isinstance(net, YOLOv3) else "YOLOv4Loss"


def _head_pixel_anchors(head) -> np.ndarray:
    """The head's anchors in pixels, (levels, 3, 2), read from what it computes with."""
    if hasattr(head, "anchor_grid"):  # YOLOv3: the checkpoint's Parameters
        return head.anchor_grid.asnumpy().reshape(head.nl, 3, 2)
    return np.stack([a.asnumpy().reshape(3, 2) for a in head.level_anchors])


# --- strides and anchors: the head's levels, read by the losses --------------------------------


def test_losses_use_the_anchors_and_strides_of_the_head(pair):
    from yolomodels.losses import build_loss

    _, _, net = pair
    head = net.head
    want_px = _head_pixel_anchors(head)
    strides = np.asarray(net.strides, np.float32)
    for loss in (build_loss(_loss_name(net), num_classes=2, levels=head.levels),
                 build_loss(_loss_name(net), num_classes=2)):  # default levels: the same facts
        assert loss.levels == head.levels
        got = loss.anchors.asnumpy()
        if got.ndim == 3:  # YOLOv3Loss keeps grid units per level
            np.testing.assert_allclose(got * strides[:, None, None], want_px)
            np.testing.assert_array_equal(head.stride.asnumpy(), strides)
        else:  # YOLOv4Loss keeps the 9 pixel anchors in the head's level order
            np.testing.assert_array_equal(got, want_px.reshape(-1, 2))


def test_a_head_built_with_other_levels_reaches_the_loss(pair):
    """Anchors are not re-spelled anywhere: change the head's levels and the loss follows."""
    from dataclasses import replace

    from yolomodels.losses import build_loss

    _, _, net = pair
    levels = tuple(replace(lv, anchors=tuple((w * 2, h) for w, h in lv.anchors))
                   for lv in net.head.levels)
    loss = build_loss(_loss_name(net), num_classes=2, levels=levels)
    got = loss.anchors.asnumpy().reshape(-1, 2)
    if loss.anchors.ndim == 3:
        got = got * np.repeat([lv.stride for lv in levels], 3)[:, None]
    np.testing.assert_allclose(got, [a for lv in levels for a in lv.anchors])


# --- head parameters: derived from the graph's last row ------------------------------------------


def test_head_params_are_exactly_the_parameters_whose_shape_follows_the_class_count(pair):
    arch, one, two = pair
    shapes = {p.name: tuple(p.shape) for p in one.get_parameters()}
    differ = sorted(p.name for p in two.get_parameters() if tuple(p.shape) != shapes[p.name])
    patterns = yolomodels.get_arch(arch).head_params
    matched = sorted(n for n in shapes if any(fnmatch.fnmatchcase(n, p) for p in patterns))
    assert differ and matched == differ
    assert one.head_params == patterns
    last = one.model.num_layers - 1
    assert patterns == (f"model.model.{last}.m.*",)


# --- the input-size rule: one sentence, asked for by every front end ---------------------------


def test_the_size_rule_uses_the_largest_stride_of_every_head(pair):
    _, net, _ = pair
    assert max(net.strides) <= MAX_STRIDE and MAX_STRIDE % max(net.strides) == 0
    assert MAX_STRIDE == 32


@settings(max_examples=80, deadline=None)
@given(size=st.one_of(st.integers(min_value=-100, max_value=5000), st.sampled_from([True, 64.0])))
def test_every_front_end_applies_the_same_size_rule(size):
    from hub.tasks.export import check_img_size as export_check
    from hub.tasks.predict import _check_size as predict_check

    ok = isinstance(size, int) and not isinstance(size, bool) and size > 0 and size % 32 == 0
    try:
        assert check_img_size(size) == size and ok
    except ImageSizeError as exc:
        assert not ok
        sentence = str(exc)
        assert f"must be a positive multiple of 32, got {size!r}" in sentence
        for hub_check in (export_check, predict_check):
            with pytest.raises(InputDataError, match="positive multiple of 32"):
                hub_check(size)
        if isinstance(size, int) and not isinstance(size, bool):
            with pytest.raises(ArchitectureArgumentError, match="positive multiple of 32"):
                yolomodels.get_arch("yolov3_darknet53").builder(img_size=size)
        return
    assert export_check(size) == predict_check(size) == size


def test_the_size_error_says_what_to_use_instead():
    with pytest.raises(ImageSizeError, match=r"got 100 .*; try 96$"):
        check_img_size(100)
    with pytest.raises(ImageSizeError, match=r"try 32$"):
        check_img_size(-7)


# --- architecture argument names: the builder's, offered by publish, CLI and demo -----------------


def test_cli_publish_flags_and_demo_args_come_from_the_registry(tmp_path):
    from hub.cli import build_parser
    from hub.tasks.demo import BASE_CARD, DemoConfig
    from yolomodels.registry import arg_types

    names = set(yolomodels.get_arch(BASE_CARD).arg_names)
    assert set(DemoConfig(out=tmp_path).arch_args) == names
    assert set(arg_types()) == names == {"num_classes", "img_size", "depth_multiple",
                                         "width_multiple"}
    args = build_parser().parse_args(["publish", "x.ckpt", "--num-classes", "3",
                                      "--width-multiple", "0.25"])
    assert (args.num_classes, args.width_multiple, args.img_size) == (3, 0.25, None)


def test_publish_names_the_accepted_arguments_of_the_architecture(tmp_path):
    from hub.assets.publish_checks import card_arch_args as _arch_args
    from hub.errors import PublishError

    with pytest.raises(PublishError, match="accepts num_classes, img_size, depth_multiple, "
                                           "width_multiple"):
        _arch_args("yolov3_darknet53", {"anchors": 9}, None)
    assert _arch_args("yolov4_cspdarknet53", {"num_classes": 3}, None) == {
        "num_classes": 3, "img_size": 608}


# --- one image reader -------------------------------------------------------------------------


def test_every_reader_sees_the_same_pixels(tmp_path):
    from hub.tasks.predict import read_image as predict_read
    from yolomodels.eval.runner import read_image as eval_read
    from yolomodels.images import read_image

    rng = np.random.default_rng(0)
    path = tmp_path / "x.jpg"
    Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(path, quality=80)
    want = read_image(path)
    assert want.shape == (48, 40, 3)
    for reader in (predict_read, eval_read):
        assert np.array_equal(reader(path), want)


def test_the_old_image_module_is_the_same_reader():
    import yolomodels.data.images as old
    import yolomodels.images as new

    for name in old.__all__:
        assert getattr(old, name) is getattr(new, name)
