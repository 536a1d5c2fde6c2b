"""Export to MindIR / ONNX, verified and cached; publish the ONNX asset; the ONNX Runtime backend.

Scaled-down YOLOv3 and YOLOv4 (random weights, 64 px inputs) are published with ``hub.publish``
into a local registry and an asset store served over HTTP on 127.0.0.1, then exported,
published as ONNX assets, downloaded into a fresh cache and run by both backends.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hub
from hub.assets.serve import serve_directory
from hub.cards.card import load_card
from hub.cli import main
from hub.errors import (
    CardNotFoundError,
    CheckpointMismatchError,
    ExportVerificationError,
    InputDataError,
    PublishConflictError,
    PublishError,
    UnsupportedOpError,
)
from hub.settings import get_settings

SIZE = 64
ARGS = {"num_classes": 3, "img_size": SIZE, "depth_multiple": 0.33, "width_multiple": 0.25}
NAMES = ["circle", "square", "triangle"]
SPLIT = "val2017"
PROTOCOL = {"dataset": "synthetic-shapes", "split": SPLIT, "metric": "AP50", "img-size": SIZE,
            "max-detections": 100, "batch-size": 4, "tolerance": 100}


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _spread(net):
    """The fact sheet's name-seeded weights: scores spread out, unlike a fresh init's near-ties
    (which would make the order of detections after NMS a coin toss for any two runtimes)."""
    from mindspore import Tensor
    from nethelpers import synthetic_value

    for p in net.get_parameters():
        value = synthetic_value(p.name, tuple(p.shape))
        if value is not None:
            p.set_data(Tensor(value))
    return net


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two published tiny models served on loopback, a shapes dataset, and a wrong checkpoint."""
    import mindspore as ms

    import yolomodels
    from yolomodels.checkpoint import save_checkpoint
    from yolomodels.data.synthetic import make_dataset

    root = tmp_path_factory.mktemp("exportworld")
    ms.set_seed(3)
    store = root / "store"
    store.mkdir()
    base_url, stop = serve_directory(store)
    registry = root / "registry"
    for name, arch in (("tiny_v3", "yolov3_darknet53"), ("tiny_v4", "yolov4_cspdarknet53")):
        ckpt = root / f"{name}.ckpt"
        save_checkpoint(_spread(yolomodels.build(arch, **ARGS)), ckpt)
        hub.publish(ckpt, name=name, arch=arch, registry=registry, store=store, version="1.0",
                    base_url=base_url, arch_args=ARGS, class_names=NAMES,
                    eval_protocol=PROTOCOL, check_load=False)  # exporting loads it strictly
    wrong = root / "four_classes.ckpt"
    save_checkpoint(yolomodels.build("yolov3_darknet53", **{**ARGS, "num_classes": 4}), wrong)
    data = make_dataset(root / "data", num_images=8, img_size=(72, 56), num_classes=3, seed=7,
                        split=SPLIT, objects=(1, 3))
    # one export cache shared by the tests that only read exports (each export takes seconds)
    home = root / "home"
    mp = pytest.MonkeyPatch()
    mp.setenv("YOLOHUB_HOME", str(home))
    exports = {fmt: hub.export("tiny_v3", format=fmt, cards_dirs=[registry])
               for fmt in ("mindir", "onnx")}
    mp.undo()
    yield {"root": root, "registry": registry, "store": store, "base_url": base_url,
           "data": data, "wrong": wrong, "home": home, "exports": exports}
    stop()


@pytest.fixture
def shared_home(world, monkeypatch):
    """Use the world's export cache (its tiny_v3 exports are already there)."""
    monkeypatch.setenv("YOLOHUB_HOME", str(world["home"]))
    return world["home"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- export -------------------------------------------------------------------------------------


def test_mindir_and_onnx_exports_are_verified_cached_and_copied(world, tmp_path, shared_home):
    reg = [world["registry"]]
    card_sha = load_card(world["registry"] / "tiny_v3" / "1.0.md").assets[0].sha256
    for fmt, r in world["exports"].items():
        assert r.verification.ok and r.verification.max_rel_diff < 1e-4
        assert r.verification.runtime == ("mindspore" if fmt == "mindir" else "onnxruntime")
        assert r.input_shape == (1, 3, SIZE, SIZE) and r.verification.output_shape[-1] == 8
        assert r.cache_path.suffix == f".{fmt}" and sha256(r.cache_path) == r.sha256
        # keyed by the weights' sha256 (the card's checkpoint), format, size and batch
        assert r.weights_sha256 == card_sha and not r.from_cache
        assert r.cache_path == shared_home / "exports" / card_sha / f"yolov3_darknet53-64-b1.{fmt}"
        record = json.loads(r.cache_path.with_name(r.cache_path.name + ".json").read_text())
        assert record["verification"]["max_rel_diff"] == r.verification.max_rel_diff
        again = hub.export("tiny_v3", format=fmt, cards_dirs=reg, out=tmp_path / f"m.{fmt}")
        assert again.from_cache and again.sha256 == r.sha256
        assert (again.verification.max_abs_diff, again.verification.max_rel_diff) == \
            (r.verification.max_abs_diff, r.verification.max_rel_diff)
        assert (tmp_path / f"m.{fmt}").read_bytes() == r.cache_path.read_bytes()


def test_batch_and_size_make_their_own_export(world, yolohub_env):
    from hub.tasks.backends import onnx_input_shape, open_onnx

    r = hub.export("tiny_v3", format="onnx", cards_dirs=[world["registry"]], batch=2,
                   img_size=32)
    assert not r.from_cache and r.cache_path.name == "yolov3_darknet53-32-b2.onnx"
    assert onnx_input_shape(open_onnx(r.cache_path)) == (2, 3, 32, 32)
    assert r.verification.ok and r.verification.input_shape == (2, 3, 32, 32)
    # a tampered cached file fails its record's hash and is exported (and verified) again
    with open(r.cache_path, "r+b") as f:
        f.seek(r.size // 2)
        f.write(b"\0" * 64)
    again = hub.export("tiny_v3", format="onnx", cards_dirs=[world["registry"]], batch=2,
                       img_size=32)
    assert not again.from_cache and again.verification.ok
    assert sha256(again.cache_path) == again.sha256


def test_onnx_export_of_yolov4_names_mish_and_exports_mindir(world, tmp_path, capsys):
    code, out, err = run(capsys, "export", "tiny_v4", "--format", "onnx", "-o",
                         tmp_path / "v4.onnx", "--cards", world["registry"])
    assert code == UnsupportedOpError.exit_code
    line = one_line_error(err)
    assert "cannot express the Mish operator" in line and "exported MindIR instead" in line
    assert (tmp_path / "v4.mindir").is_file() and not (tmp_path / "v4.onnx").exists()
    mindir = hub.export("tiny_v4", format="mindir", cards_dirs=[world["registry"]])
    assert mindir.from_cache and mindir.verification.ok  # the fallback was verified and cached
    assert mindir.sha256 == sha256(tmp_path / "v4.mindir")


def test_cli_export_reports_the_differences(world, capsys, tmp_path, shared_home):
    code, out, err = run(capsys, "export", "tiny_v3@1.0", "--format", "mindir", "-o",
                         tmp_path / "v3.mindir", "--cards", world["registry"], "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["format"] == "mindir" and report["path"] == str(tmp_path / "v3.mindir")
    assert report["verification"]["ok"] and report["verification"]["max_abs_diff"] >= 0
    code, out, err = run(capsys, "export", "tiny_v3", "--format", "onnx",
                         "--cards", world["registry"])
    assert code == 0, err
    assert "max rel diff" in out and "onnxruntime" in out and "onnx export verified" in out


def test_an_export_that_does_not_reproduce_the_network_fails(world, monkeypatch):
    import hub.tasks.export_verify as checking

    real = checking.run_exported
    monkeypatch.setattr(checking, "run_exported",  # the runtime returns a perturbed output
                        lambda path, fmt, x: real(path, fmt, x) * 1.001)
    with pytest.raises(ExportVerificationError, match="does not reproduce") as info:
        hub.export("tiny_v3", format="mindir", cards_dirs=[world["registry"]], img_size=32)
    assert info.value.exit_code == 1
    assert not list((get_settings().home / "exports").rglob("*-32-b1.*"))


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, code, words",
    [
        (["--format", "tflite"], InputDataError.exit_code, "format 'tflite' is not supported"),
        (["--format", "onnx", "--img-size", "100"], InputDataError.exit_code, "multiple of 32"),
        (["--format", "onnx", "--batch", "0"], InputDataError.exit_code, "batch"),
        (["--format", "onnx", "-o", "model.mindir"], InputDataError.exit_code, "ending in .onnx"),
    ],
)
def test_bad_export_arguments_are_one_line_errors(world, capsys, argv, code, words):
    got, out, err = run(capsys, "export", "tiny_v3", *argv, "--cards", world["registry"])
    assert got == code
    assert words in one_line_error(err)


def test_a_checkpoint_that_does_not_fit_is_refused(world, capsys):
    code, _, err = run(capsys, "export", "tiny_v3", "--format", "onnx", "--weights",
                       world["wrong"], "--cards", world["registry"])
    assert code == CheckpointMismatchError.exit_code
    assert "does not fit" in one_line_error(err)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.text(min_size=1, max_size=12).filter(lambda s: s.strip().lower().lstrip(".")
                                                     not in ("mindir", "onnx") and "\0" not in s
                                                     and not s.startswith("-")),
       size=st.integers(min_value=-64, max_value=4096).filter(lambda n: n < 32 or n % 32))
def test_property_bad_format_or_size_never_exports(world, capsys, fmt, size):
    code, _, err = run(capsys, "export", "tiny_v3", "--format", fmt, "--cards", world["registry"])
    assert code == InputDataError.exit_code and "not supported" in one_line_error(err)
    code, _, err = run(capsys, "export", "tiny_v3", "--format", "onnx", "--img-size", size,
                       "--cards", world["registry"])
    assert code == InputDataError.exit_code and "multiple of 32" in one_line_error(err)


def test_corrupted_truncated_or_mismatched_onnx_files_are_refused(world, capsys, tmp_path):
    r = world["exports"]["onnx"]
    image = next((world["data"] / "images" / SPLIT).iterdir())
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(r.cache_path.read_bytes()[: r.size // 3])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model at all" * 100)
    for bad in (truncated, garbage):
        code, _, err = run(capsys, "predict", "tiny_v3", image, "--backend", "onnxruntime",
                           "--onnx", bad, "--cards", world["registry"])
        assert code == InputDataError.exit_code
        assert "not a loadable ONNX model" in one_line_error(err)
    code, _, err = run(capsys, "predict", "tiny_v3", image, "--onnx", r.cache_path,
                       "--img-size", 96, "--cards", world["registry"])
    assert code == InputDataError.exit_code
    assert "exported for 64x64 inputs" in one_line_error(err)
    code, _, err = run(capsys, "predict", "tiny_v3", image, "--backend", "tensorrt",
                       "--cards", world["registry"])
    assert code == InputDataError.exit_code and "backend 'tensorrt'" in one_line_error(err)
    code, _, err = run(capsys, "eval", "tiny_v3", "--data", world["data"], "--onnx", truncated,
                       "--cards", world["registry"], "--out", tmp_path / "e")
    assert code == InputDataError.exit_code and "truncated" in one_line_error(err)


# --- publish the ONNX asset, download it on a fresh cache, run both backends --------------------


def _detections(results):
    return [[(d.class_id, d.box, d.score) for d in r.detections] for r in results]


def test_published_onnx_asset_downloads_on_a_fresh_cache_and_backends_agree(
    world, capsys, tmp_path, monkeypatch, shared_home
):
    cards = tmp_path / "cards"
    shutil.copytree(world["registry"], cards)
    code, out, err = run(capsys, "export", "tiny_v3", "--format", "onnx", "--publish",
                         "--store", world["store"], "--cards", cards, "--json")
    assert code == 0, err
    published = json.loads(out)["published"]
    assert published["url"].startswith(world["base_url"] + "/tiny_v3/1.0/")
    card = load_card(cards / "tiny_v3" / "1.0.md")
    ckpt, onnx = card.assets
    assert (ckpt.file_format, onnx.file_format) == ("ckpt", "onnx")
    assert onnx.version == ckpt.version == "1.0" and onnx.input_shape == (1, 3, SIZE, SIZE)
    assert onnx.sha256 == published["sha256"] and onnx.size == published["size"]
    assert card.front_matter["asset"][1]["source-sha256"] == ckpt.sha256
    assert hub.resolve("tiny_v3", cards_dirs=[cards]).asset == ckpt  # the default stays the ckpt
    code, out, _ = run(capsys, "info", "tiny_v3", "--cards", cards)
    assert code == 0 and "onnx input 1x3x64x64" in out and "--format onnx" in out
    assert [e["format"] for e in hub.info("tiny_v3", cards_dirs=[cards]).exports] == ["onnx"]
    code, _, err = run(capsys, "export", "tiny_v3", "--format", "onnx", "--publish",
                       "--store", world["store"], "--cards", cards)
    assert code == PublishConflictError.exit_code and "--force" in one_line_error(err)

    monkeypatch.setenv("YOLOHUB_HOME", str(tmp_path / "fresh-home"))
    code, out, err = run(capsys, "download", "tiny_v3", "--format", "onnx", "--cards", cards,
                         "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["format"] == "onnx" and not got["from_cache"] and got["url"] == onnx.links[0]
    assert sha256(got["path"]) == onnx.sha256

    images = sorted((world["data"] / "images" / SPLIT).iterdir())[:4]
    kw = {"cards_dirs": [cards], "conf": 0.001, "max_det": 10}
    ort = hub.predict("tiny_v3", images, backend="onnxruntime", **kw)
    assert not (tmp_path / "fresh-home" / "exports").exists()  # the card's asset ran, no export
    auto = hub.predict("tiny_v3", images, **kw)  # an ONNX file at hand: ONNX Runtime
    ms_ = hub.predict("tiny_v3", images, backend="mindspore", mode="pynative", **kw)
    assert _detections(auto) == _detections(ort)
    code, out, err = run(capsys, "predict", "tiny_v3", *images, "--backend", "onnxruntime",
                         "--conf", 0.001, "--max-det", 10, "--cards", cards, "--json")
    assert code == 0, err
    cli = json.loads(out)
    assert [[d["class_id"] for d in r["detections"]] for r in cli] == \
        [[d.class_id for d in r.detections] for r in ort]
    assert cli[0]["detections"][0]["box"] == [round(v, 2) for v in ort[0].detections[0].box]
    a, b = _detections(ms_), _detections(ort)
    assert sum(map(len, a)) > 0 and [len(x) for x in a] == [len(x) for x in b]
    for per_ms, per_ort in zip(a, b):
        for (c1, box1, s1), (c2, box2, s2) in zip(per_ms, per_ort):
            assert c1 == c2
            assert np.abs(np.subtract(box1, box2)).max() < 1e-3
            assert abs(s1 - s2) < 1e-4


def test_publish_asset_command_verifies_the_file_against_the_card(world, capsys, tmp_path):
    cards = tmp_path / "cards"
    shutil.copytree(world["registry"], cards)
    v3 = world["exports"]["mindir"]
    code, out, err = run(capsys, "publish", "--asset", v3.cache_path, "--name", "tiny_v3@1.0",
                         "--registry", cards, "--store", world["store"])
    assert code == 0, err
    assert "mindir asset verified" in out and "--format mindir" in out
    assert [a.file_format for a in load_card(cards / "tiny_v3" / "1.0.md").assets] == \
        ["ckpt", "mindir"]
    code, _, err = run(capsys, "publish", "--asset", v3.cache_path, "--name", "tiny_v3@1.0",
                       "--registry", cards, "--store", world["store"])
    assert code == PublishConflictError.exit_code
    # tiny_v3's MindIR is not tiny_v4's network: refused before anything is written
    before = (cards / "tiny_v4" / "1.0.md").read_text()
    code, _, err = run(capsys, "publish", "--asset", v3.cache_path, "--name", "tiny_v4",
                       "--registry", cards, "--store", world["store"])
    assert code == ExportVerificationError.exit_code
    assert "does not reproduce" in one_line_error(err)
    assert (cards / "tiny_v4" / "1.0.md").read_text() == before
    # a built-in card cannot take assets
    with pytest.raises(PublishError, match="built into yolohub"):
        hub.publish_asset(v3.cache_path, "yolov3_darknet53")
    with pytest.raises(CardNotFoundError, match="has no onnx asset"):
        hub.download("tiny_v4", format="onnx", cards_dirs=[cards])


def test_eval_backends_agree_on_map(world, tmp_path, shared_home, capsys):
    ms_ = hub.evaluate("tiny_v3", data=world["data"], cards_dirs=[world["registry"]],
                       out=tmp_path / "ms", mode="pynative")
    code, out, err = run(capsys, "eval", "tiny_v3", "--data", world["data"], "--backend",
                         "onnxruntime", "--cards", world["registry"], "--out", tmp_path / "ort",
                         "--json")
    assert code == 0, err
    ort = json.loads(out)
    assert ort["weights"].endswith(".onnx (ONNX Runtime)") and ort["num_images"] == 8
    assert ms_.num_detections == ort["num_detections"] > 0
    for key, value in ms_.metrics.as_percent().items():
        if value is not None:
            assert ort["metrics"][key] == pytest.approx(value, abs=0.1), key


def test_schema_allows_one_asset_per_version_and_format(world, tmp_path):
    from hub.cards.card import parse_card
    from hub.errors import CardValidationError

    text = (world["registry"] / "tiny_v3" / "1.0.md").read_text()
    card = load_card(world["registry"] / "tiny_v3" / "1.0.md")
    entry = card.front_matter["asset"][0]
    twice = text.replace("asset:\n", "asset:\n- " + "\n  ".join(
        f"{k}: {json.dumps(v)}" for k, v in {**entry, "file-format": "onnx",
                                              "input-shape": [1, 3, 64, 64]}.items()) + "\n", 1)
    parsed = parse_card(twice)
    assert [a.file_format for a in parsed.assets] == ["onnx", "ckpt"]
    same = text.replace("asset:\n", "asset:\n- " + "\n  ".join(
        f"{k}: {json.dumps(v)}" for k, v in entry.items()) + "\n", 1)
    with pytest.raises(CardValidationError, match="ckpt version '1.0' again"):
        parse_card(same)


def test_predict_picks_onnx_runtime_only_when_an_onnx_file_is_at_hand(world, monkeypatch):
    from hub.tasks.deploy import choose_backend

    release = hub.resolve("tiny_v3", cards_dirs=[world["registry"]])
    assert choose_backend(release, None, img_size=SIZE) == "mindspore"  # fresh cache: none
    monkeypatch.setenv("YOLOHUB_HOME", str(world["home"]))  # holds a verified 64 px export
    assert choose_backend(release, None, img_size=SIZE) == "onnxruntime"
    assert choose_backend(release, None, img_size=96) == "mindspore"  # not at that size
    assert choose_backend(release, None, img_size=SIZE, weights=world["wrong"]) == "mindspore"
    assert choose_backend(release, "MindSpore", img_size=SIZE) == "mindspore"
    assert choose_backend(release, None, img_size=SIZE, onnx="x.onnx") == "onnxruntime"
    with pytest.raises(InputDataError, match="not mindspore"):
        choose_backend(release, "mindspore", img_size=SIZE, onnx="x.onnx")


def test_publishing_an_export_to_a_built_in_card_is_refused_before_exporting(capsys, socket_guard):
    code, _, err = run(capsys, "export", "yolov3_darknet53", "--format", "onnx", "--publish")
    assert code == PublishError.exit_code
    assert "built into yolohub" in one_line_error(err)
    assert not socket_guard.attempts  # refused before any download


def test_yolov4_silu_exports_to_onnx_too(tmp_path):
    """The SiLU variant of YOLOv4 has no Mish, so MindSpore's ONNX exporter takes it whole."""
    import yolomodels
    from yolomodels.checkpoint import save_checkpoint

    args = {**ARGS, "img_size": 32}
    ckpt = tmp_path / "silu.ckpt"
    save_checkpoint(_spread(yolomodels.build("yolov4_cspdarknet53_silu", **args)), ckpt)
    hub.publish(ckpt, name="tiny_silu", arch="yolov4_cspdarknet53_silu", registry=tmp_path / "r",
                store=tmp_path / "s", arch_args=args, class_names=NAMES, check_load=False)
    r = hub.export("tiny_silu", format="onnx", cards_dirs=[tmp_path / "r"])
    assert r.verification.ok and r.input_shape == (1, 3, 32, 32)
    assert r.verification.output_shape == (1, 3 * (16 + 4 + 1), 8)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(suffix=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=0, max_size=8)
       .filter(lambda s: s not in ("onnx", "mindir")),
       backend=st.text(min_size=1, max_size=12).filter(
           lambda s: s.strip().lower() not in ("mindspore", "onnxruntime") and "\0" not in s
           and not s.startswith("-")))
def test_property_bad_asset_files_and_backends_are_one_line_errors(world, capsys, tmp_path,
                                                                    suffix, backend):
    bad = tmp_path / (f"model.{suffix}" if suffix else "model")
    bad.write_bytes(b"x" * 10)
    code, _, err = run(capsys, "publish", "--asset", bad, "--name", "tiny_v3",
                       "--registry", world["registry"])
    assert code == PublishError.exit_code and "expected a file ending in .onnx" in \
        one_line_error(err)
    image = next((world["data"] / "images" / SPLIT).iterdir())
    code, _, err = run(capsys, "predict", "tiny_v3", image, "--backend", backend,
                       "--cards", world["registry"])
    assert code == InputDataError.exit_code and "is not supported" in one_line_error(err)
