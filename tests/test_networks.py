"""Networks: MindYOLO parameter layout, MindYOLO's numbers on synthetic weights, shapes, decode."""

from __future__ import annotations

import math

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor
from nethelpers import (
    MANIFEST_KEYS,
    manifest,
    manifest_entries,
    small_net,
    structured_input,
    write_mindspore_checkpoint,
)

import yolomodels
from yolomodels.checkpoint import load_strict, read_checkpoint

ms.set_device("CPU")

ARCHS = yolomodels.list_archs()


def test_every_registered_architecture_has_a_manifest():
    assert set(ARCHS) == set(MANIFEST_KEYS)


@pytest.fixture(scope="module", params=ARCHS)
def full_size(request):
    """(arch, full-size network at 320 px); img_size does not change any parameter shape."""
    net = yolomodels.build(request.param, img_size=320)
    yield request.param, net
    del net


def test_full_size_parameters_match_mindyolo_manifest(full_size):
    arch, net = full_size
    ours = [(p.name, tuple(p.shape)) for p in net.get_parameters()]
    theirs = manifest(arch)
    assert len(ours) == len(theirs) == {"yolov3": 369}.get(MANIFEST_KEYS[arch], 541)
    # same names, same shapes, same get_parameters() order (the darknet converter relies on it)
    assert ours == theirs
    dtypes = {p.name: p.dtype for p in net.get_parameters()}
    if arch.startswith("yolov3"):
        assert dtypes["model.model.28.stride"] == ms.int32
        assert sum(math.prod(p.shape) for p in net.trainable_params()) == 61_949_149
    else:
        assert sum(math.prod(p.shape) for p in net.trainable_params()) == 64_625_245
    assert all(d == ms.float32 for n, d in dtypes.items() if not n.endswith(".stride"))


# --- fact sheet §9.2: MindYOLO 0.5.0's outputs for name-seeded weights on input S -------------

# field means (x, y, w, h, obj, mean over classes), field stds, rows 0/3/4800/6299 (first 7
# values), argmax obj row and max obj, as measured with MindYOLO on MindSpore 2.10 CPU.
MINDYOLO_92 = {
    "yolov3_darknet53": {
        "mean": [159.361526, 159.848175, 33.255188, 37.110924, 0.481034, 0.499053],
        "std": [92.320648, 92.287178, 51.113266, 45.048096, 0.032856, 0.038875],
        0: [2.91261, 3.09133, 8.20073, 10.48889, 0.50506, 0.48652, 0.51442],
        3: [26.92880, 3.23922, 8.07820, 10.79307, 0.50194, 0.48490, 0.52012],
        4800: [7.65930, 7.71615, 30.52875, 65.63818, 0.46197, 0.52550, 0.51950],
        6299: [303.37717, 304.72256, 330.93692, 342.50693, 0.49200, 0.51494, 0.48800],
        "argmax": (6135, 0.705437),
    },
    "yolov4_cspdarknet53": {
        "mean": [160.087021, 159.752106, 51.520279, 52.460339, 0.427482, 0.494666],
        "std": [92.314972, 92.292946, 84.616592, 59.312920, 0.055279, 0.059267],
        0: [14.94002, 16.54681, 123.36302, 120.59693, 0.53775, 0.56062, 0.45866],
        3: [46.53101, 16.57731, 122.69131, 131.71785, 0.56270, 0.57479, 0.46327],
        4800: [164.29689, 219.17270, 17.37944, 14.71106, 0.46404, 0.54505, 0.41623],
        6299: [316.43280, 315.98770, 55.92877, 24.69095, 0.45752, 0.45734, 0.59212],
        "argmax": (42, 0.584427),
    },
    "yolov4_cspdarknet53_silu": {
        "mean": [160.154297, 159.831070, 44.269375, 47.565838, 0.464276, 0.497524],
        "std": [92.315292, 92.308540, 69.584290, 56.725292, 0.022155, 0.034905],
        0: [16.66279, 16.03858, 122.82925, 115.13696, 0.52881, 0.50920, 0.53274],
        3: [48.70165, 16.34874, 127.73826, 111.65663, 0.53494, 0.51781, 0.52849],
        4800: [164.31038, 219.62115, 14.16073, 14.33729, 0.48697, 0.50128, 0.45169],
        6299: [316.22531, 315.92307, 42.15714, 25.64754, 0.45228, 0.48098, 0.57910],
        "argmax": (294, 0.538022),
    },
}


def test_manifest_checkpoint_loads_strictly_and_reproduces_mindyolo(full_size, tmp_path):
    """A checkpoint in MindYOLO's exact layout (written by MindSpore itself, names from the
    manifest, values from the §9.2 name rule) loads strictly and gives MindYOLO's outputs."""
    arch, net = full_size
    ckpt = write_mindspore_checkpoint(manifest_entries(arch), tmp_path / "mindyolo-layout.ckpt")
    try:
        params = read_checkpoint(ckpt)
    finally:
        ckpt.unlink()
    report = load_strict(net, params)
    assert report.ok, report.describe()
    assert (len(report.missing), len(report.unexpected), len(report.mismatched)) == (0, 0, 0)
    assert len(report.loaded) == len(manifest(arch))
    del params

    net.set_train(False)
    out = net(Tensor(structured_input(320))).asnumpy()
    assert out.shape == (1, 6300, 85) and out.dtype == np.float32
    out = out[0].astype(np.float64)
    ref = MINDYOLO_92[arch]
    means = [*out[:, :5].mean(0), out[:, 5:].mean()]
    stds = [*out[:, :5].std(0), out[:, 5:].std()]
    np.testing.assert_allclose(means, ref["mean"], rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(stds, ref["std"], rtol=2e-4, atol=2e-6)
    for row in (0, 3, 4800, 6299):
        np.testing.assert_allclose(out[row, :7], ref[row], rtol=2e-5, atol=2e-5, err_msg=f"row {row}")
    row, best = ref["argmax"]
    assert int(out[:, 4].argmax()) == row
    assert out[row, 4] == pytest.approx(best, abs=2e-6)


# --- scaled-down variants: shapes and decode -----------------------------------------------------


def _cells(h: int, w: int, strides) -> int:
    return sum(3 * (h // s) * (w // s) for s in strides)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("hw", [(64, 64), (96, 160)])
def test_scaled_down_forward_shapes(arch, hw):
    h, w = hw
    nc = 7
    net = small_net(arch, num_classes=nc, img_size=max(hw))
    assert net.num_classes == nc and net.img_size == max(hw)
    x = Tensor(np.random.RandomState(0).rand(2, 3, h, w).astype(np.float32))

    net.set_train(False)
    out = net(x).asnumpy()
    assert out.shape == (2, _cells(h, w, net.strides), 5 + nc)
    assert np.isfinite(out).all()
    assert ((out[..., 4:] >= 0) & (out[..., 4:] <= 1)).all()  # sigmoided scores
    assert (out[..., 2:4] > 0).all()
    # centres lie on (or within the grid-sensitivity margin around) the input
    assert out[..., 0].min() > -0.5 * max(net.strides) and out[..., 0].max() < w + 0.5 * max(net.strides)

    net.set_train(True)
    maps = net(x)
    assert len(maps) == 3
    if arch.startswith("yolov3"):
        assert net.strides == (8, 16, 32)
        for m, s in zip(maps, net.strides):
            assert m.shape == (2, 3, h // s, w // s, 5 + nc)
    else:
        assert net.strides == (32, 16, 8)
        for (raw, xy, wh), s in zip(maps, net.strides):
            assert raw.shape == (2, h // s, w // s, 3, 5 + nc)
            assert xy.shape == wh.shape == (2, h // s, w // s, 3, 2)


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _numpy_decode_v3(raws, strides, anchors):
    out = []
    for raw, s, anc in zip(raws, strides, anchors):  # raw (B, 3, H, W, no)
        b, na, h, w, no = raw.shape
        y = _sigmoid(raw)
        gx, gy = np.meshgrid(np.arange(w), np.arange(h))
        grid = np.stack([gx, gy], -1)[None, None]
        xy = (2 * y[..., :2] - 0.5 + grid) * s
        wh = (2 * y[..., 2:4]) ** 2 * np.asarray(anc, np.float64).reshape(1, 3, 1, 1, 2)
        out.append(np.concatenate([xy, wh, y[..., 4:]], -1).reshape(b, -1, no))
    return np.concatenate(out, 1)


def _numpy_decode_v4(raws, levels):
    out = []
    for raw, lv in zip(raws, levels):  # raw (B, H, W, 3, no)
        b, h, w, na, no = raw.shape
        gx, gy = np.meshgrid(np.arange(w), np.arange(h))
        grid = np.stack([gx, gy], -1)[None, :, :, None]
        xy = (lv.scale_xy * _sigmoid(raw[..., :2]) - lv.offset + grid) * lv.stride
        wh = np.exp(raw[..., 2:4]) * np.asarray(lv.anchors, np.float64).reshape(1, 1, 1, 3, 2)
        out.append(np.concatenate([xy, wh, _sigmoid(raw[..., 4:])], -1).reshape(b, -1, no))
    return np.concatenate(out, 1)


@pytest.mark.parametrize("arch", ARCHS)
def test_head_decode_matches_numpy_reference(arch):
    """Eval-mode decode equals an independent numpy decode of the same head's raw maps."""
    from yolomodels.heads import V3_ANCHORS, V4_LEVELS

    net = small_net(arch, num_classes=3, img_size=96)
    head = net.head
    rng = np.random.RandomState(1)
    size = (64, 96)
    strides = net.strides
    feats = tuple(
        Tensor(rng.standard_normal((1, conv.in_channels, size[0] // s, size[1] // s)).astype(np.float32))
        for conv, s in zip(head.m, strides)
    )
    head.set_train(True)
    raws = head(feats)
    head.set_train(False)
    decoded = head(feats).asnumpy()
    if arch.startswith("yolov3"):
        ref = _numpy_decode_v3([r.asnumpy().astype(np.float64) for r in raws], strides, V3_ANCHORS)
    else:
        ref = _numpy_decode_v4([r[0].asnumpy().astype(np.float64) for r in raws], V4_LEVELS)
        for r, lv in zip(raws, V4_LEVELS):  # normalised boxes in training output
            raw, xy, wh = (t.asnumpy() for t in r)
            h, w = raw.shape[1:3]
            np.testing.assert_allclose(
                xy, (lv.scale_xy * _sigmoid(raw[..., :2]) - lv.offset + _grid(h, w)) / [w, h], atol=1e-5
            )
    assert decoded.shape == ref.shape
    np.testing.assert_allclose(decoded, ref, rtol=1e-4, atol=1e-3)


def _grid(h, w):
    gx, gy = np.meshgrid(np.arange(w), np.arange(h))
    return np.stack([gx, gy], -1)[None, :, :, None]


def test_v3_bias_prior_and_buffers():
    net = small_net("yolov3_darknet53", num_classes=80)
    head = net.head
    np.testing.assert_array_equal(head.stride.asnumpy(), [8, 16, 32])
    for conv, s in zip(head.m, (8, 16, 32)):
        b = conv.bias.asnumpy().reshape(3, 85)
        bound = 1 / math.sqrt(conv.in_channels)
        prior = math.log(8 / (640 / s) ** 2)
        assert (np.abs(b[:, 4] - prior) <= bound + 1e-6).all()
        assert (np.abs(b[:, 5:] - math.log(0.6 / (80 - 0.999999))) <= bound + 1e-6).all()


def test_unknown_architecture_suggests_close_names():
    with pytest.raises(yolomodels.UnknownArchitectureError, match="did you mean yolov3_darknet53"):
        yolomodels.build("yolov3_darknet")
    with pytest.raises(yolomodels.ArchitectureArgumentError, match="multiple of 32"):
        yolomodels.build("yolov3_darknet53", img_size=100)
    with pytest.raises(yolomodels.ArchitectureArgumentError, match="does not take"):
        yolomodels.build("yolov3_darknet53", classes=3)
