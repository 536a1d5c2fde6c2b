"""yolomodels.checkpoint: reading, strict loading, head drops, corrupt files, saving."""

from __future__ import annotations

import os

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor
from nethelpers import small_net, write_mindspore_checkpoint

import yolomodels
from yolomodels.checkpoint import LoadReport, load_strict, read_checkpoint, save_checkpoint
from yolomodels.errors import CheckpointReadError

ms.set_device("CPU")

V3 = "yolov3_darknet53"
V4 = "yolov4_cspdarknet53"


def _values(net) -> dict[str, np.ndarray]:
    return {p.name: p.asnumpy().copy() for p in net.get_parameters()}


@pytest.fixture(scope="module")
def v3_ckpt(tmp_path_factory):
    """A scaled-down YOLOv3 with perturbed weights, saved; returns (path, values)."""
    net = small_net(V3, num_classes=5)
    rng = np.random.RandomState(3)
    for p in net.get_parameters():
        if p.dtype == ms.float32:
            p.set_data(Tensor((p.asnumpy() + rng.standard_normal(p.shape)).astype(np.float32)))
    path = save_checkpoint(net, tmp_path_factory.mktemp("ckpt") / "v3-small.ckpt")
    return path, _values(net)


def test_save_then_read_round_trips_every_tensor(v3_ckpt):
    path, values = v3_ckpt
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left
    params = read_checkpoint(path)
    assert list(params) == list(values)
    for name, v in values.items():
        assert params[name].dtype == v.dtype
        np.testing.assert_array_equal(params[name], v)


def test_strict_load_assigns_every_value(v3_ckpt):
    path, values = v3_ckpt
    net = small_net(V3, num_classes=5)
    report = load_strict(net, read_checkpoint(path))
    assert report.ok and isinstance(report, LoadReport)
    assert len(report.loaded) == len(values) and not report.dropped
    for name, v in _values(net).items():
        np.testing.assert_array_equal(v, values[name])


def test_loaded_network_does_not_alias_the_arrays(v3_ckpt):
    path, values = v3_ckpt
    params = read_checkpoint(path)
    net = small_net(V3, num_classes=5)
    assert load_strict(net, params).ok
    params["model.model.0.conv.weight"][...] = 0.0
    np.testing.assert_array_equal(
        net.model.model[0].conv.weight.asnumpy(), values["model.model.0.conv.weight"]
    )


def test_ema_prefix_and_optimizer_entries(v3_ckpt, tmp_path):
    """MindYOLO's EMA files prefix every key with 'ema.'; optimizer state is not network state."""
    _, values = v3_ckpt
    entries = [(f"ema.{n}", v) for n, v in values.items()]
    entries += [
        ("accum.model.model.0.conv.weight", values["model.model.0.conv.weight"]),
        ("stat.model.model.0.conv.weight", values["model.model.0.conv.weight"]),
        ("learning_rate", np.array(0.01, np.float32)),
        ("global_step", np.array([7], np.int32)),
        ("momentum", np.array(0.937, np.float32)),
    ]
    path = write_mindspore_checkpoint(entries, tmp_path / "EMA_yolov3-1_10.ckpt")
    params = read_checkpoint(path)
    assert sorted(params) == sorted(values)
    net = small_net(V3, num_classes=5)
    assert load_strict(net, params).ok
    np.testing.assert_array_equal(net.head.m[0].weight.asnumpy(), values["model.model.28.m.0.weight"])


def test_file_without_ckpt_suffix_reads(v3_ckpt, tmp_path):
    path, values = v3_ckpt
    blob = tmp_path / "0123abcd"
    blob.write_bytes(path.read_bytes())
    assert sorted(read_checkpoint(blob)) == sorted(values)


def test_wrong_architecture_is_reported_and_nothing_is_assigned(v3_ckpt):
    path, _ = v3_ckpt
    net = small_net(V4, num_classes=5)
    before = _values(net)
    report = load_strict(net, read_checkpoint(path))
    assert not report.ok
    assert report.missing and report.unexpected and report.mismatched
    text = report.describe(limit=3)
    name, expected, found = report.mismatched[0]
    assert f"{name}: network {expected} vs checkpoint {found}" in text
    assert report.missing[0] in text and report.unexpected[0] in text
    assert "more" in text  # only the first few are listed
    for n, v in _values(net).items():
        np.testing.assert_array_equal(v, before[n])


def test_other_class_count_loads_only_with_head_dropped(v3_ckpt):
    path, values = v3_ckpt
    params = read_checkpoint(path)
    net = small_net(V3, num_classes=2)
    report = load_strict(net, params)
    assert not report.ok
    assert {n for n, *_ in report.mismatched} == {
        f"model.model.28.m.{i}.{k}" for i in range(3) for k in ("weight", "bias")
    }
    head_before = net.head.m[1].bias.asnumpy().copy()
    report = load_strict(net, params, drop=yolomodels.get_arch(V3).head_params)
    assert report.ok and len(report.dropped) == 6
    assert len(report.loaded) == len(values) - 6
    np.testing.assert_array_equal(net.head.m[1].bias.asnumpy(), head_before)
    np.testing.assert_array_equal(
        net.model.model[0].conv.weight.asnumpy(), values["model.model.0.conv.weight"]
    )


def test_half_precision_values_are_cast_to_the_network_dtype(v3_ckpt, tmp_path):
    _, values = v3_ckpt
    entries = [(n, v.astype(np.float16) if v.dtype == np.float32 else v) for n, v in values.items()]
    path = write_mindspore_checkpoint(entries, tmp_path / "fp16.ckpt")
    net = small_net(V3, num_classes=5)
    assert load_strict(net, read_checkpoint(path)).ok
    w = net.model.model[1].conv.weight
    assert w.dtype == ms.float32
    np.testing.assert_allclose(w.asnumpy(), values["model.model.1.conv.weight"], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    "kind, needle",
    [
        ("random", "not a readable MindSpore checkpoint"),
        ("truncated", "not a readable MindSpore checkpoint"),
        ("text", "not a readable MindSpore checkpoint"),
        ("empty", "is empty"),
        ("missing", "does not exist"),
        ("directory", "is not a file"),
        ("optimizer-only", "without network parameters"),
    ],
)
def test_unreadable_files_raise_checkpoint_read_error(kind, needle, v3_ckpt, tmp_path):
    path = tmp_path / f"{kind}.ckpt"
    if kind == "random":
        path.write_bytes(np.random.RandomState(0).bytes(4096))
    elif kind == "truncated":
        data = v3_ckpt[0].read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "text":
        path.write_text("<html>404 not found</html>\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    elif kind == "optimizer-only":
        write_mindspore_checkpoint(
            [("learning_rate", np.array(0.1, np.float32)), ("global_step", np.array([1], np.int32))],
            path,
        )
    with pytest.raises(CheckpointReadError, match=needle) as info:
        read_checkpoint(path)
    assert str(path) in str(info.value) and info.value.path == str(path)
    assert isinstance(info.value, ValueError)
