"""Air-gapped bundles: pack on a machine that reaches a registry, unpack on one with no network."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

import hub
from hub.cli import main

ARCH = "yolov3_darknet53"
ARGS = {"num_classes": 3, "img_size": 128, "depth_multiple": 0.33, "width_multiple": 0.25}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import yolomodels
    from yolomodels.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    save_checkpoint(yolomodels.build(ARCH, **ARGS), path)
    return path


@pytest.fixture
def bundle(checkpoint, http_server, tmp_path, monkeypatch, capsys):
    """A bundle of team_v3@1.0 and dock_v3 packed from a registry URL on loopback."""
    for name, version in (("team_v3", "1.0"), ("team_v3", "2.0"), ("dock_v3", "1.0")):
        hub.publish(checkpoint, name=name, arch=ARCH, registry=http_server.root / "cards",
                    store=http_server.root / "store", version=version,
                    base_url=f"{http_server.url}/store", arch_args=ARGS,
                    class_names=["a", "b", "c"], claimed=10.0, check_load=False)
    monkeypatch.setenv("YOLOHUB_HOME", str(tmp_path / "online-home"))
    out = tmp_path / "models.tar"
    code = main(["pack", "team_v3@1.0", "dock_v3", "-o", str(out), "--cards",
                 f"{http_server.url}/cards/"])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    # the offline machine: a fresh cache, offline mode, and no socket may connect
    monkeypatch.setenv("YOLOHUB_HOME", str(tmp_path / "offline-home"))
    monkeypatch.setenv("YOLOHUB_OFFLINE", "1")
    return out


def test_pack_then_unpack_offline_makes_models_loadable_without_cards(bundle, checkpoint,
                                                                       socket_guard, capsys):
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert names[0] == "manifest.json"
    assert [r["id"] for r in manifest["releases"]] == ["team_v3@1.0", "dock_v3@1.0"]
    assets = [f for f in manifest["files"] if f["kind"] == "asset"]
    assert len(assets) == 1  # both releases pin the same bytes: packed once
    code = main(["unpack", str(bundle)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "team_v3@1.0" in out
    path = hub.download("team_v3@1.0")  # no cards_dirs: the installed card source
    assert path.read_bytes() == checkpoint.read_bytes()
    assert hub.download("dock_v3").read_bytes() == checkpoint.read_bytes()
    rows = {r.id: r for r in hub.list_models("team_v3*")}
    assert rows["team_v3@1.0"].cached and rows["team_v3@1.0"].source == "installed"
    assert "team_v3@2.0" not in rows  # only what was packed
    net = hub.load("team_v3", mode="pynative")
    assert net.load_report.ok
    assert socket_guard.attempts == []
    # unpacking the same bundle again is harmless
    assert main(["unpack", str(bundle)]) == 0


def rewrite(src: Path, dst: Path, edit) -> None:
    """Copy a tar member by member, letting ``edit(name, data)`` change or drop members."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()
            res = edit(m.name, data)
            if res is None:
                continue
            name, data = res
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))


def nothing_installed(home: Path) -> bool:
    blobs = list((home / "blobs").rglob("*.*")) if (home / "blobs").exists() else []
    return not (home / "cards").exists() and not blobs


@pytest.mark.parametrize("damage, code, words", [
    ("flip", 4, "corrupted"),
    ("drop", 9, "lacks"),
    ("escape", 9, "escapes"),
    ("manifest-escape", 9, "inside the bundle"),
    ("symlink", 9, "not a regular file"),
    ("not-a-tar", 9, "not a readable tar"),
])
def test_a_damaged_bundle_installs_nothing(bundle, tmp_path, capsys, damage, code, words):
    bad = tmp_path / "bad.tar"
    if damage == "flip":
        def edit(name, data):
            if name.startswith("assets/"):
                data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
            return name, data
        rewrite(bundle, bad, edit)
    elif damage == "drop":
        rewrite(bundle, bad, lambda n, d: None if n.startswith("cards/dock") else (n, d))
    elif damage == "escape":
        rewrite(bundle, bad, lambda n, d: (n, d))
        with tarfile.open(bad, "a") as t:
            info = tarfile.TarInfo("cards/x/../../../evil.md")
            info.size = 4
            t.addfile(info, io.BytesIO(b"evil"))
    elif damage == "manifest-escape":
        def edit(name, data):
            if name == "manifest.json":
                m = json.loads(data)
                m["files"][0]["path"] = "../evil.md"
                data = json.dumps(m).encode()
            return name, data
        rewrite(bundle, bad, edit)
    elif damage == "symlink":
        rewrite(bundle, bad, lambda n, d: (n, d))
        with tarfile.open(bad, "a") as t:
            info = tarfile.TarInfo("cards/x/link.md")
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            t.addfile(info)
    else:
        bad.write_bytes(b"this is not a tar file" * 100)
    assert main(["unpack", str(bad)]) == code
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1
    home = Path(hub.settings.get_settings().home)
    assert nothing_installed(home)
    assert not (tmp_path.parent / "evil.md").exists() and not (tmp_path / "evil.md").exists()


def test_pack_refuses_unknown_names(tmp_path, capsys):
    assert main(["pack", "no_such_model", "-o", str(tmp_path / "b.tar")]) == 3
    assert not (tmp_path / "b.tar").exists() and not list(tmp_path.glob(".b.tar*"))
