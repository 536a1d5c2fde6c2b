"""hub.publish: a real (scaled-down) checkpoint → store + card → served on loopback → downloaded."""

from __future__ import annotations

import hashlib

import pytest

import hub
from hub.card import load_card
from hub.errors import (
    ArchitectureNotFoundError,
    CheckpointError,
    CheckpointMismatchError,
    PublishConflictError,
    PublishError,
)
from hub.serve import serve_directory
from hub.validate import validate_paths

ARCH = "yolov3_darknet53"
ARGS = {"num_classes": 3, "img_size": 128, "depth_multiple": 0.33, "width_multiple": 0.25}
NAMES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real MindSpore checkpoint of a scaled-down YOLOv3 (a few MB)."""
    import yolomodels
    from yolomodels.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    save_checkpoint(yolomodels.build(ARCH, **ARGS), path)
    return path


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files(root) -> set:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_publish_serve_download_round_trip(checkpoint, tmp_path):
    registry, store = tmp_path / "registry", tmp_path / "store"
    store.mkdir()
    base_url, stop = serve_directory(store)
    try:
        r = hub.publish(checkpoint, name="shapes-yolo", arch=ARCH, registry=registry, store=store,
                        version="2.0", base_url=base_url, arch_args=ARGS, class_names=NAMES,
                        claimed=12.5, summary="round trip")
        assert r.sha256 == sha256(checkpoint) and r.size == checkpoint.stat().st_size
        assert r.asset_path.read_bytes() == checkpoint.read_bytes()
        assert r.url == f"{base_url}/shapes-yolo/2.0/shapes-yolo-2.0-{r.sha256[:8]}.ckpt"
        assert r.load_report is not None and r.load_report.ok and r.load_report.loaded
        [verdict] = validate_paths([r.card_path])
        assert verdict.ok, verdict.findings
        card = load_card(r.card_path)
        assert card.is_yolohub and card.name == "shapes-yolo" and card.version == "2.0"
        assert card.architecture.name == ARCH and dict(card.architecture.args) == ARGS
        assert card.architecture.head_params  # from the arch registry: droppable on fine-tune
        assert card.class_names == tuple(NAMES) and card.eval_protocol.img_size == 128
        (asset,) = card.assets
        assert (asset.sha256, asset.size, asset.claimed) == (r.sha256, r.size, 12.5)

        path = hub.download("shapes-yolo@2.0", cards_dirs=[registry])
        assert sha256(path) == r.sha256
    finally:
        stop()


def test_publish_without_base_url_links_the_store_file(checkpoint, tmp_path, socket_guard):
    r = hub.publish(checkpoint, name="local", arch=ARCH, registry=tmp_path / "reg",
                    store=tmp_path / "store", arch_args=ARGS, class_names=NAMES)
    assert r.url == r.asset_path.resolve().as_uri()
    # file:// needs no network: works offline, no socket
    assert sha256(hub.download("local", cards_dirs=[tmp_path / "reg"], offline=True)) == r.sha256
    assert socket_guard.attempts == []


def test_existing_name_version_is_refused_unless_forced(checkpoint, tmp_path):
    reg, store = tmp_path / "reg", tmp_path / "store"
    kw = dict(name="dup", arch=ARCH, registry=reg, store=store, arch_args=ARGS, class_names=NAMES)
    first = hub.publish(checkpoint, claimed=1.0, **kw)
    card_text = first.card_path.read_text()
    before = files(store)
    with pytest.raises(PublishConflictError, match="already publishes dup@1.0.*--force") as err:
        hub.publish(checkpoint, claimed=2.0, **kw)
    assert err.value.exit_code == 8
    assert first.card_path.read_text() == card_text and files(store) == before
    again = hub.publish(checkpoint, claimed=2.0, force=True, **kw)
    assert again.replaced and again.card_path == first.card_path
    assert load_card(again.card_path).assets[0].claimed == 2.0
    assert files(store) == before  # same bytes, same file, nothing left over
    other = hub.publish(checkpoint, version="1.1", **kw)  # a new version is no conflict
    assert other.card_path != first.card_path
    assert hub.resolve("dup", cards_dirs=[reg]).id == "dup@1.1"


def test_a_checkpoint_that_does_not_load_strictly_is_refused_and_nothing_is_written(
    checkpoint, tmp_path
):
    reg, store = tmp_path / "reg", tmp_path / "store"
    with pytest.raises(CheckpointMismatchError, match="mis-shaped") as err:
        hub.publish(checkpoint, name="wrong", arch=ARCH, registry=reg, store=store,
                    arch_args={**ARGS, "num_classes": 4}, class_names=NAMES + ["x"])
    assert err.value.report is not None and err.value.report.mismatched
    assert files(store) == set() and not any(reg.rglob("*.md"))


def test_random_bytes_are_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"\x00not a checkpoint" * 1000)
    with pytest.raises(CheckpointError, match="not a readable MindSpore checkpoint"):
        hub.publish(junk, name="junk", arch=ARCH, registry=tmp_path / "reg",
                    store=tmp_path / "store", arch_args=ARGS, class_names=NAMES)
    assert files(tmp_path / "store") == set()


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"name": "bad name"}, PublishError, "model name"),
        ({"version": "../1"}, PublishError, "version"),
        ({"arch": "yolov9"}, ArchitectureNotFoundError, "no architecture named"),
        ({"base_url": "http://example.org/store"}, PublishError, "plain http"),
        ({"class_names": ["a", "b"]}, PublishError, "2 class names"),
        ({"arch_args": {"num_classes": 3, "colour": 1}}, PublishError, "colour"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(checkpoint, tmp_path, change,
                                                              error, match):
    kw = dict(name="ok", arch=ARCH, registry=tmp_path / "reg", store=tmp_path / "store",
              arch_args=ARGS, class_names=NAMES)
    kw.update(change)
    with pytest.raises(error, match=match):
        hub.publish(checkpoint, **kw)
    assert files(tmp_path / "store") == set()


def test_missing_checkpoint(tmp_path):
    with pytest.raises(PublishError, match="does not exist"):
        hub.publish(tmp_path / "nope.ckpt", name="x", arch=ARCH, registry=tmp_path / "r",
                    store=tmp_path / "s")


def test_recipe_and_arguments_from_python_objects_become_plain_card_data(tmp_path):
    import numpy as np

    blob = tmp_path / "w.ckpt"
    blob.write_bytes(b"x" * 4096)
    r = hub.publish(blob, name="plain", arch=ARCH, registry=tmp_path / "reg",
                    store=tmp_path / "store", check_load=False,
                    arch_args={**ARGS, "num_classes": np.int64(3)}, class_names=tuple(NAMES),
                    recipe={"epochs": np.int32(3), "img-size": 128,
                            "optimizer": {"lr": 0.01, "no-decay": ("bias", "bn")}},
                    claimed=np.float32(41.5))
    card = load_card(r.card_path)
    assert card.recipe == {"epochs": 3, "img-size": 128,
                           "optimizer": {"lr": 0.01, "no-decay": ["bias", "bn"]}}
    assert card.architecture.args["num_classes"] == 3 and card.assets[0].claimed == 41.5
