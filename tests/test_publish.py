"""hub.publish: a real (scaled-down) checkpoint → store + card → served on loopback → downloaded."""

from __future__ import annotations

import hashlib

import pytest

import hub
from hub.assets.serve import serve_directory
from hub.cards.card import load_card
from hub.cards.validate import validate_paths
from hub.errors import (
    ArchitectureNotFoundError,
    CheckpointError,
    CheckpointMismatchError,
    PublishConflictError,
    PublishError,
)

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


# --- the store is append-only; gc is the one explicit clean-up --------------------------------


def blob(tmp_path, tag: str, size: int = 4096):
    path = tmp_path / f"{tag}.ckpt"
    path.write_bytes(tag.encode() * (size // len(tag)))
    return path


def quick(path, registry, store, **kw):
    """publish without the strict-load check: these tests are about files, not networks."""
    kw = {"name": "m", "arch": ARCH, "arch_args": ARGS, "class_names": NAMES, **kw}
    return hub.publish(path, registry=registry, store=store, check_load=False, **kw)


def test_publishing_into_a_second_registry_keeps_the_first_registrys_file(tmp_path):
    store, reg_a, reg_b = tmp_path / "store", tmp_path / "a", tmp_path / "b"
    first = quick(blob(tmp_path, "one"), reg_a, store)
    second = quick(blob(tmp_path, "two"), reg_b, store)  # same name@version, other registry
    assert second.asset_path != first.asset_path
    assert first.asset_path.read_bytes() == blob(tmp_path, "one").read_bytes()
    for reg, r in ((reg_a, first), (reg_b, second)):
        assert sha256(hub.download("m@1.0", cards_dirs=[reg], offline=True)) == r.sha256
    again = quick(blob(tmp_path, "one"), tmp_path / "c", store)  # the same bytes reuse the file
    assert again.asset_path == first.asset_path
    assert sorted(p.suffix for p in files(store) if not p.name.startswith(".")) == [".ckpt"] * 2


def test_force_replaces_only_the_card_never_a_store_file(tmp_path):
    store, reg, other = tmp_path / "store", tmp_path / "reg", tmp_path / "other"
    first = quick(blob(tmp_path, "one"), reg, store)
    shared = quick(blob(tmp_path, "one"), other, store)  # another card uses the same file
    assert shared.asset_path == first.asset_path
    forced = quick(blob(tmp_path, "two"), reg, store, force=True)
    assert forced.replaced and forced.card_path == first.card_path
    assert load_card(reg / "m" / "1.0.md").assets[0].sha256 == forced.sha256
    assert first.asset_path.is_file() and forced.asset_path.is_file()
    assert sha256(hub.download("m@1.0", cards_dirs=[other], offline=True)) == first.sha256


def test_an_invalid_card_at_the_target_counts_as_existing(tmp_path):
    store, reg = tmp_path / "store", tmp_path / "reg"
    card = reg / "m" / "1.0.md"
    card.parent.mkdir(parents=True)
    card.write_text("---\nmodel-name: m\nnotes: hand-written, not valid yet\n---\n")
    with pytest.raises(PublishConflictError, match="does not validate.*--force"):
        quick(blob(tmp_path, "one"), reg, store)
    assert card.read_text().startswith("---\nmodel-name: m\nnotes") and files(store) == set()
    r = quick(blob(tmp_path, "one"), reg, store, force=True)
    assert r.replaced and r.card_path == card and load_card(card).name == "m"


def test_a_store_file_with_the_same_short_name_is_never_overwritten(tmp_path):
    store, src = tmp_path / "store", blob(tmp_path, "one")
    squatter = store / "m" / "1.0" / f"m-1.0-{sha256(src)[:8]}.ckpt"
    squatter.parent.mkdir(parents=True)
    squatter.write_bytes(b"someone else's bytes")
    r = quick(src, tmp_path / "reg", store)
    assert r.asset_path.name == f"m-1.0-{r.sha256}.ckpt"
    assert squatter.read_bytes() == b"someone else's bytes"


@pytest.mark.parametrize(
    "change",
    [{"version": "1.0\n"}, {"version": "1.0\x00"}, {"version": "1\t0"}, {"version": "a/b"},
     {"version": "1..2"}, {"version": ".."}, {"version": "1.0 "}, {"name": "m\n"},
     {"name": "m..x"}, {"name": "m/x"}, {"name": "m\x1b[31m"}, {"name": "-m"},
     {"author": "me\nformat: evil"}, {"license": ""}, {"claimed": float("nan")},
     {"claimed": float("inf")}, {"claimed": 101}],
    ids=repr,
)
def test_unsafe_names_versions_and_values_are_refused(tmp_path, change):
    with pytest.raises(PublishError):
        quick(blob(tmp_path, "one"), tmp_path / "reg", tmp_path / "store", **change)
    assert files(tmp_path / "store") == set() and files(tmp_path / "reg") == set()


def test_store_gc_removes_only_unreferenced_published_files(tmp_path, capsys):
    from hub.cli import main

    store, reg, other = tmp_path / "store", tmp_path / "reg", tmp_path / "other"
    old = quick(blob(tmp_path, "one"), reg, store)
    new = quick(blob(tmp_path, "two"), reg, store, force=True)
    kept_elsewhere = quick(blob(tmp_path, "three"), other, store, version="2.0")
    foreign = store / "README.md"
    foreign.write_text("not ours")
    before = files(store)

    dry = hub.gc_store(store, registries=[reg, other], dry_run=True)
    assert dry.removed == (old.asset_path,) and dry.kept == 2 and files(store) == before
    # without the other registry, its file would look unreferenced: naming registries matters
    assert kept_elsewhere.asset_path in hub.gc_store(store, registries=[reg], dry_run=True).removed

    assert main(["store", "gc", str(store), "--registry", str(reg), "--registry", str(other)]) == 0
    out = capsys.readouterr().out
    assert f"removed  {old.asset_path}" in out and "1 file(s) removed" in out
    assert files(store) == before - {old.asset_path.relative_to(store)}
    assert new.asset_path.is_file() and kept_elsewhere.asset_path.is_file() and foreign.is_file()
    assert sha256(hub.download("m@1.0", cards_dirs=[reg], offline=True)) == new.sha256

    (reg / "broken.md").write_text("---\nmodel-name: [\n---\n")
    assert main(["store", "gc", str(store), "--registry", str(reg), "--registry", str(other)]) == 8
    assert "invalid card(s)" in capsys.readouterr().err and files(store) == before - {
        old.asset_path.relative_to(store)}


def test_publish_cli_keeps_the_img_size_with_protocol_flags_and_writes_author_license(
        tmp_path, capsys):
    from hub.cli import main

    reg = tmp_path / "reg"
    base = ["publish", str(blob(tmp_path, "one")), "--name", "small", "--arch", ARCH,
            "--registry", str(reg), "--store", str(tmp_path / "store"), "--no-check-load",
            "--num-classes", "3", "--class-names", "a,b,c", "--img-size", "96"]
    assert main([*base, "--protocol", "dataset=shapes", "--protocol", "metric=AP50"]) == 0
    card = load_card(reg / "small" / "1.0.md")
    assert card.eval_protocol.img_size == 96 and card.architecture.args["img_size"] == 96
    assert (card.eval_protocol.dataset, card.eval_protocol.metric) == ("shapes", "AP50")
    assert "author" not in card.front_matter and "unknown" not in (reg / "small" / "1.0.md").read_text()

    assert main([*base, "--version", "1.1", "--author", "Shapes Team", "--license", "Apache-2.0"]) == 0
    card = load_card(reg / "small" / "1.1.md")
    assert (card.front_matter["author"], card.front_matter["license"]) == ("Shapes Team", "Apache-2.0")
    capsys.readouterr()
    assert main([*base, "--version", "1.2", "--protocol", "tolerance=.nan"]) == 9
    assert main([*base, "--version", "1.2", "--protocol", "x=&a [*a]"]) == 9
    assert main([*base, "--version", "1.2", "--protocol", "x=["]) == 9
    bad = tmp_path / "recipe.yaml"
    bad.write_bytes(b"epochs: \xff\n")
    assert main([*base, "--version", "1.2", "--recipe", str(bad)]) == 9
    err = capsys.readouterr().err
    assert "Traceback" not in err and "expected UTF-8" in err
