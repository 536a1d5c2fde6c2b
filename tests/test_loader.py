"""hub.load / hub.load_weights end to end: cards in a temporary registry, real files, real HTTP."""

from __future__ import annotations

import hashlib
import logging

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor
from nethelpers import SCALED, small_net

import hub
from hub.assets.serve import serve_directory
from hub.cards.write import render_card
from hub.errors import (
    ArchitectureNotFoundError,
    BindingError,
    CheckpointError,
    CheckpointMismatchError,
    InputDataError,
)
from yolomodels.checkpoint import save_checkpoint

ms.set_device("CPU")

V3 = "yolov3_darknet53"
NAMES = ("circle", "square", "triangle")
IMG = 96


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_card(cards, name, link, sha, *, arch=V3, args=None, head_params=("model.model.28.m.*",),
               class_names=NAMES, size=None):
    cards.mkdir(parents=True, exist_ok=True)
    asset = {"file-format": "ckpt", "asset-link": link, "asset-sha256": sha}
    if size is not None:
        asset["size"] = size
    fm = {
        "format": "yolohub/1",
        "model-name": name,
        "model-version": "1.0",
        "summary": "scaled-down test network",
        "asset": [asset],
        "architecture": {
            "name": arch,
            "args": args if args is not None else {"num_classes": len(NAMES), "img_size": IMG, **SCALED},
            "head-params": list(head_params),
        },
        "class-names": list(class_names),
        "eval-protocol": {"dataset": "synthetic-shapes", "split": "val", "metric": "AP50",
                          "img-size": IMG, "conf-threshold": 0.25, "iou-threshold": 0.5},
    }
    path = cards / f"{name}.md"
    path.write_text(render_card(fm, "test card\n"))
    return path


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A scaled-down YOLOv3 checkpoint with distinctive weights in a served directory."""
    root = tmp_path_factory.mktemp("store")
    net = small_net(V3, num_classes=len(NAMES), img_size=IMG)
    rng = np.random.RandomState(5)
    for p in net.get_parameters():
        if p.dtype == ms.float32:
            p.set_data(Tensor((p.asnumpy() + 0.01 * rng.standard_normal(p.shape)).astype(np.float32)))
    path = save_checkpoint(net, root / "shapes-v3.ckpt")
    net.set_train(False)
    x = np.random.RandomState(0).rand(1, 3, IMG, IMG).astype(np.float32)
    expected = net(Tensor(x)).asnumpy()
    values = {p.name: p.asnumpy().copy() for p in net.get_parameters()}
    return {"root": root, "path": path, "sha": _sha(path), "x": x, "expected": expected,
            "values": values}


@pytest.fixture(scope="module")
def server(published):
    url, stop = serve_directory(published["root"])
    yield url
    stop()


@pytest.mark.parametrize("transport, mode", [("http", "graph"), ("file", "pynative")])
def test_load_strictly_over_http_and_file(transport, mode, published, server, tmp_path):
    link = f"{server}/shapes-v3.ckpt" if transport == "http" else published["path"].as_uri()
    write_card(tmp_path / "cards", "shapes-v3", link, published["sha"],
               size=published["path"].stat().st_size)
    net = hub.load("shapes-v3", cards_dirs=[tmp_path / "cards"], mode=mode)
    report = net.load_report
    assert report.ok and len(report.loaded) == len(published["values"]) and not report.dropped
    assert net.class_names == NAMES and net.release_id == "shapes-v3@1.0" and not net.training
    out = net(Tensor(published["x"])).asnumpy()
    np.testing.assert_allclose(out, published["expected"], rtol=1e-4, atol=1e-3)
    assert net.execution_mode == mode  # no fallback happened
    # the download went into the cache; a second load needs no network at all
    again = hub.load("shapes-v3@1.0", cards_dirs=[tmp_path / "cards"], offline=True, mode="pynative")
    assert again.load_report.ok


def test_load_weights_returns_the_checkpoint_arrays(published, server, tmp_path):
    write_card(tmp_path / "cards", "shapes-v3", f"{server}/shapes-v3.ckpt", published["sha"])
    weights = hub.load_weights("shapes-v3", cards_dirs=[tmp_path / "cards"])
    assert list(weights) == list(published["values"])
    for name, v in published["values"].items():
        np.testing.assert_array_equal(weights[name], v)


def test_other_class_count_drops_exactly_the_head(published, server, tmp_path, caplog):
    write_card(tmp_path / "cards", "shapes-v3", f"{server}/shapes-v3.ckpt", published["sha"])
    with caplog.at_level(logging.INFO, logger="hub.tasks.load"):
        net = hub.load("shapes-v3", cards_dirs=[tmp_path / "cards"], num_classes=5, mode="pynative")
    report = net.load_report
    assert report.ok
    assert set(report.dropped) == {f"model.model.28.m.{i}.{k}" for i in range(3) for k in ("weight", "bias")}
    assert len(report.loaded) == len(published["values"]) - 6
    assert net.class_names is None  # the card's 3 names do not describe 5 outputs
    assert "dropped 6 head parameters matching model.model.28.m.*" in caplog.text
    assert "5 classes instead of the card's 3" in caplog.text
    np.testing.assert_array_equal(
        net.model.model[3].conv.weight.asnumpy(), published["values"]["model.model.3.conv.weight"]
    )
    x = Tensor(published["x"])
    assert net(x).shape == (1, 3 * (12 * 12 + 6 * 6 + 3 * 3), 10)


def test_binding_is_checked_before_any_download(tmp_path):
    """Unknown arch / bad args fail with a clear error; the (unreachable) link is never tried."""
    cards = tmp_path / "cards"
    dead = "http://127.0.0.1:9/never.ckpt"
    write_card(cards, "typo", dead, "0" * 64, arch="yolov3_darknet")
    with pytest.raises(ArchitectureNotFoundError, match="did you mean yolov3_darknet53"):
        hub.load("typo", cards_dirs=[cards])
    write_card(cards, "nohead", dead, "0" * 64, head_params=())
    with pytest.raises(BindingError, match="img_size must be a positive multiple of 32"):
        hub.load("nohead", cards_dirs=[cards], arch_args={"img_size": 100})
    with pytest.raises(BindingError, match="does not take argument.*anchors"):
        hub.load("nohead", cards_dirs=[cards], arch_args={"anchors": 9})
    with pytest.raises(BindingError, match="disagree"):
        hub.load("nohead", cards_dirs=[cards], num_classes=4, arch_args={"num_classes": 5})
    with pytest.raises(InputDataError, match="mode='eager' is not supported"):
        hub.load("nohead", cards_dirs=[cards], mode="eager")
    assert not (tmp_path / "yolohub-home").exists() or not any(
        (tmp_path / "yolohub-home").rglob("*.partial")
    )


def test_wrong_architecture_checkpoint_lists_the_first_mismatches(published, server, tmp_path):
    write_card(tmp_path / "cards", "wrong", f"{server}/shapes-v3.ckpt", published["sha"],
               arch="yolov4_cspdarknet53")
    with pytest.raises(CheckpointMismatchError) as info:
        hub.load("wrong", cards_dirs=[tmp_path / "cards"], mode="pynative")
    report = info.value.report
    assert not report.ok and report.mismatched and report.missing and report.unexpected
    msg = str(info.value)
    name, expected, found = report.mismatched[0]
    assert f"{name}: network {expected} vs checkpoint {found}" in msg
    assert report.missing[0] in msg and "does not fit the network strictly" in msg
    assert info.value.exit_code == 7


def test_corrupt_published_file_is_a_checkpoint_error(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    bad = store / "bad.ckpt"
    bad.write_bytes(b"\x00garbage" * 1000)
    write_card(tmp_path / "cards", "bad", bad.as_uri(), _sha(bad))
    with pytest.raises(CheckpointError, match="not a readable MindSpore checkpoint"):
        hub.load("bad", cards_dirs=[tmp_path / "cards"])


def test_build_without_weights(tmp_path):
    path = write_card(tmp_path / "cards", "fresh", "http://127.0.0.1:9/x.ckpt", "0" * 64)
    from hub.cards.card import load_card
    from hub.tasks.load import build_for

    net = build_for(load_card(path), mode="pynative")
    assert net.load_report is None and net.class_names == NAMES and not net.training
    net2 = hub.load("fresh", cards_dirs=[tmp_path / "cards"], pretrained=False, num_classes=2,
                    mode="pynative")
    assert net2.num_classes == 2


def test_graph_compilation_failure_falls_back_to_pynative(caplog, tmp_path):
    """A network MindSpore cannot compile still runs, eagerly, with one warning."""
    from mindspore import nn

    from hub.cards.card import Release, load_card
    from hub.tasks.execution import attach
    from hub.tasks.record import LoadRecord

    class GraphUnfriendly(nn.Cell):
        def __init__(self):
            super().__init__()
            self.dense = nn.Dense(4, 2)

        def construct(self, x):
            with open(__file__) as f:  # a `with` statement does not compile to a graph
                f.read(1)
            return self.dense(x)

    card = load_card(write_card(tmp_path / "cards", "unfriendly", "http://127.0.0.1:9/u.ckpt",
                                "0" * 64))
    net = attach(GraphUnfriendly(), LoadRecord(Release(card, card.assets[0]), None, weights=None,
                                               report=None, mode="graph"))
    assert net.execution_mode == "graph" and isinstance(net, GraphUnfriendly)
    assert net.release_id == "unfriendly@1.0" and net.hub.runner is not None
    x = Tensor(np.ones((2, 4), np.float32))
    with caplog.at_level(logging.WARNING, logger="hub.tasks.execution"):
        first = net(x).asnumpy()
        second = net(x).asnumpy()
    assert net.execution_mode == "pynative"
    assert caplog.text.count("graph compilation failed") == 1
    assert "unfriendly@1.0" in caplog.text
    np.testing.assert_array_equal(first, second)
    assert first.shape == (2, 2)
