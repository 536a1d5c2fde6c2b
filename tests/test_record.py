"""What hub.load establishes is recorded once (``net.hub``) and read downstream, never redone.

Real cards in temporary registries, a real loopback server that counts requests, real networks:
a card that disappears after loading, or a server that is gone, must not matter to predict,
evaluate or the record, because they read what loading already established.
"""

from __future__ import annotations

import hashlib
import shutil

import mindspore as ms
import numpy as np
import pytest
from nethelpers import SCALED, small_net

import hub
from hub.cards.catalog import open_catalog, resolve
from hub.cards.write import render_card
from hub.errors import CardNotFoundError, CheckpointMismatchError
from yolomodels.checkpoint import save_checkpoint

ms.set_device("CPU")

V3 = "yolov3_darknet53"
NAMES = ("circle", "square", "triangle")
IMG = 64
SPLIT = "val2017"


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _card(cards, name, link, sha, *, max_det=100, num_classes=3):
    cards.mkdir(parents=True, exist_ok=True)
    fm = {
        "format": "yolohub/1",
        "model-name": name,
        "model-version": "1.0",
        "summary": "scaled-down test network",
        "asset": [{"file-format": "ckpt", "asset-link": link, "asset-sha256": sha}],
        "architecture": {"name": V3, "head-params": ["model.model.28.m.*"],
                         "args": {"num_classes": num_classes, "img_size": IMG, **SCALED}},
        "class-names": [*NAMES, "star"][:num_classes],
        "eval-protocol": {"dataset": "synthetic-shapes", "split": SPLIT, "metric": "AP50",
                          "img-size": IMG, "conf-threshold": 0.001, "iou-threshold": 0.65,
                          "max-detections": max_det, "batch-size": 2},
    }
    path = cards / f"{name}.md"
    path.write_text(render_card(fm, "test card\n"))
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    ms.set_seed(3)
    return save_checkpoint(small_net(V3, num_classes=3, img_size=IMG), root / "w.ckpt")


def test_the_record_holds_what_loading_established(checkpoint, http_server, tmp_path,
                                                   yolohub_env):
    shutil.copyfile(checkpoint, http_server.root / "w.ckpt")
    _card(tmp_path / "cards", "rec", http_server.url_for("w.ckpt"), _sha(checkpoint))
    net = hub.load("rec", cards_dirs=[tmp_path / "cards"], mode="pynative")
    rec = net.hub
    assert rec.release.id == "rec@1.0" and rec.release.card.name == "rec"
    assert rec.binding.arch == V3 and rec.binding.num_classes == 3 and rec.binding.drop == ()
    assert rec.weights.origin == "card" and rec.weights.sha256 == _sha(checkpoint)
    assert rec.weights.path.read_bytes() == checkpoint.read_bytes()
    assert yolohub_env in rec.weights.path.parents  # the verified copy in the cache
    assert rec.report.ok and rec.report is net.load_report and rec.mode == "pynative"
    assert rec.backend == "mindspore" and rec.protocol.max_detections == 100
    # the documented attributes are views of the record, and read-only
    assert net.class_names == NAMES and net.release_id == "rec@1.0" and net.card_name == "rec"
    assert net.execution_mode == "pynative"
    with pytest.raises(AttributeError):
        net.load_report = None
    assert len(http_server.gets("w.ckpt")) == 1


def test_a_local_checkpoint_is_recorded_with_its_hash(checkpoint, tmp_path):
    _card(tmp_path / "cards", "rec", "http://127.0.0.1:9/never.ckpt", "0" * 64)
    net = hub.load("rec", cards_dirs=[tmp_path / "cards"], weights=checkpoint, mode="pynative")
    assert net.hub.weights.origin == "local" and net.hub.weights.path == checkpoint
    assert net.hub.weights.sha256 == _sha(checkpoint) and net.load_report.ok


def test_predict_on_a_loaded_network_reads_the_record_not_the_card(checkpoint, http_server,
                                                                    tmp_path):
    """The card is deleted and the server stopped after loading: predict still applies the
    card's max-detections (2), which only the record can tell it now."""
    shutil.copyfile(checkpoint, http_server.root / "w.ckpt")
    cards = tmp_path / "cards"
    _card(cards, "rec", http_server.url_for("w.ckpt"), _sha(checkpoint), max_det=2)
    net = hub.load("rec", cards_dirs=[cards], mode="pynative")
    shutil.rmtree(cards)
    http_server.stop()
    with pytest.raises(CardNotFoundError):  # the card really is gone
        resolve("rec")
    image = np.random.RandomState(0).randint(0, 255, (IMG, IMG, 3), np.uint8)
    found = hub.predict(net, [image], conf=0.0)[0].detections
    assert len(found) == 2  # the default would be up to 300 boxes at conf 0
    assert {d.class_name for d in found} <= set(NAMES)


def test_evaluate_loads_once_and_reports_the_recorded_weights(checkpoint, http_server, tmp_path):
    from yolomodels.data.synthetic import make_dataset

    data = make_dataset(tmp_path / "data", num_images=2, img_size=IMG, num_classes=3, seed=1,
                        split=SPLIT)
    shutil.copyfile(checkpoint, http_server.root / "w.ckpt")
    _card(tmp_path / "cards", "rec", http_server.url_for("w.ckpt"), _sha(checkpoint))
    report = hub.evaluate("rec", data=data, cards_dirs=[tmp_path / "cards"], mode="pynative",
                          out=tmp_path / "eval")
    net = hub.load("rec", cards_dirs=[tmp_path / "cards"], mode="pynative")
    assert report.weights == str(net.hub.weights.path)
    assert report.weights_sha256 == net.hub.weights.sha256 == _sha(checkpoint)
    assert len(http_server.gets("w.ckpt")) == 1  # one download for both


def test_an_open_catalog_is_passed_down_not_rescanned(checkpoint, tmp_path):
    cards = tmp_path / "cards"
    _card(cards, "rec", checkpoint.as_uri(), _sha(checkpoint))
    catalog = open_catalog([cards])
    shutil.rmtree(cards)  # a rescan would now fail: the directory is gone
    net = hub.load("rec", cards_dirs=catalog, mode="pynative")
    assert net.hub.release.id == "rec@1.0" and net.load_report.ok
    assert hub.info("rec", cards_dirs=catalog).summary.id == "rec@1.0"
    # a Release needs no catalog at all, even one that could not be opened
    assert resolve(net.hub.release, cards_dirs=[tmp_path / "missing"]) is net.hub.release


def test_publish_and_load_share_one_strict_load(checkpoint, tmp_path):
    """The same mis-fitting file is refused with the same check by publish and by load."""
    with pytest.raises(CheckpointMismatchError, match="does not fit the network strictly") as pub:
        hub.publish(checkpoint, name="four", arch=V3, registry=tmp_path / "reg",
                    store=tmp_path / "store", class_names=[*NAMES, "star"],
                    arch_args={"num_classes": 4, "img_size": IMG, **SCALED})
    _card(tmp_path / "cards", "four", checkpoint.as_uri(), _sha(checkpoint), num_classes=4)
    with pytest.raises(CheckpointMismatchError, match="does not fit the network strictly") as load:
        hub.load("four", cards_dirs=[tmp_path / "cards"], mode="pynative")
    assert pub.value.report.mismatched == load.value.report.mismatched != ()
