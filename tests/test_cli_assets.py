"""``yolohub download / verify / cache / publish / rehash``: output, --json, errors, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from httpserver import make_random_file, serve_copy, write_asset_card

from hub.cards.catalog import Registry
from hub.cli import main

MiB = 1 << 20
BUILTIN = [rel.id for rel in Registry.scan().visible()]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setenv("YOLOHUB_BACKOFF", "0.01")
    monkeypatch.setenv("YOLOHUB_RETRIES", "1")


@pytest.fixture
def cards(http_server, big_file, tmp_path):
    src, sha, size = big_file
    d = tmp_path / "cards"
    write_asset_card(d, "big", serve_copy(http_server, src, "big.ckpt"), sha, size=size)
    write_asset_card(d, "twin", serve_copy(http_server, src, "twin.ckpt"), sha)  # same bytes
    write_asset_card(d, "legacy", serve_copy(http_server, src, "legacy.ckpt"), sha[:8])
    write_asset_card(d, "wrong", http_server.url_for("big.ckpt"), "0" * 64)
    write_asset_card(d, "gone", http_server.url_for("missing.ckpt"), "1" * 64)
    return d


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_download_prints_the_path_then_serves_from_cache(cards, capsys, http_server):
    code, out, err = run(capsys, "download", "big", "--cards", str(cards))
    assert code == 0 and out.strip().endswith(".ckpt") and os.path.isfile(out.strip())
    assert "verified" in err and "downloaded from" in err
    code, out2, err = run(capsys, "download", "big", "--cards", str(cards), "--offline")
    assert code == 0 and out2 == out and "from the cache" in err
    assert len(http_server.gets()) == 1


def test_download_json(cards, capsys, big_file):
    code, out, _ = run(capsys, "download", "legacy", "--cards", str(cards), "--json")
    data = json.loads(out)
    assert code == 0 and data["sha256"] == big_file[1] and data["weak"] is True
    assert data["declared"] == big_file[1][:8] and data["from_cache"] is False


def test_weak_hash_is_reported_by_download_verify_info_and_cache_ls(cards, capsys):
    code, _, err = run(capsys, "download", "legacy", "--cards", str(cards))
    assert code == 0 and "weak" in err and "yolohub rehash legacy@1.0" in err
    code, out, _ = run(capsys, "verify", "legacy", "--cards", str(cards))
    assert code == 0 and "weak" in out
    code, out, _ = run(capsys, "info", "legacy", "--cards", str(cards))
    assert code == 0 and "weak" in out
    code, out, _ = run(capsys, "cache", "ls")
    assert code == 0 and "(weak)" in out


@pytest.mark.parametrize(
    "argv, exit_code, message",
    [
        (["download", "nosuch"], 3, "no card named 'nosuch'"),
        (["download", "big", "--offline"], 6, "offline mode is on"),
        (["download", "wrong"], 4, "expected sha256 0000"),
        (["download", "gone"], 5, "404"),
        (["verify", "big"], 1, "missing from the cache"),
        (["rehash", "nosuch"], 3, "no card named"),
        (["cache", "rm", "nosuch"], 3, "no card named"),
    ],
)
def test_errors_are_one_line_with_the_right_exit_code(cards, capsys, argv, exit_code, message):
    code, out, err = run(capsys, *argv, "--cards", str(cards))
    assert code == exit_code
    text = out + err
    assert message in text and "Traceback" not in text
    if exit_code != 1:
        assert err.startswith("error: ") or "\nerror: " in err


@pytest.mark.parametrize("spec", BUILTIN)
def test_verify_of_uncached_builtin_releases_fails_naming_the_fix(spec, capsys, socket_guard):
    code, out, _ = run(capsys, "verify", spec)
    assert code == 1 and f"yolohub download {spec}" in out and "1 failed" in out
    assert socket_guard.attempts == []


def test_verify_deep_detects_a_corrupted_byte_the_record_check_trusts(cards, capsys):
    code, out, _ = run(capsys, "download", "big", "--cards", str(cards))
    path = out.strip()
    st = os.stat(path)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(MiB)
        b = f.read(1)
        f.seek(MiB)
        f.write(bytes([b[0] ^ 0x80]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    code, out, _ = run(capsys, "verify", "--all")
    assert code == 0 and "record, no re-hash" in out
    code, out, _ = run(capsys, "verify", "--all", "--deep", "--json")
    (result,) = json.loads(out)
    assert code == 1 and result["status"] == "mismatch" and result["path"] == path
    assert result["expected"] in result["detail"] and result["actual"] in result["detail"]


def test_cache_ls_rm_prune(cards, capsys, http_server, yolohub_env, monkeypatch):
    assert run(capsys, "download", "big", "--cards", str(cards))[0] == 0
    assert run(capsys, "download", "twin", "--cards", str(cards))[0] == 0
    assert len(http_server.gets()) == 1  # the twin shares the blob: no second transfer
    code, out, _ = run(capsys, "cache", "ls", "--json")
    listing = json.loads(out)
    (blob,) = listing["blobs"]
    assert blob["owners"] == ["big@1.0", "twin@1.0"] and blob["state"] == "verified"

    # a quarantined mismatch and a partial transfer, for prune to find
    assert run(capsys, "download", "wrong", "--cards", str(cards))[0] == 4
    monkeypatch.setenv("YOLOHUB_RETRIES", "0")
    sha, size = make_random_file(http_server.root / "p.ckpt", 4 * MiB)
    write_asset_card(cards, "part", http_server.url_for("p.ckpt"), sha, size=size)
    http_server.drop_after(MiB)
    assert run(capsys, "download", "part", "--cards", str(cards))[0] == 5
    code, out, _ = run(capsys, "cache", "ls")
    assert "partial" in out and "quarantined" in out and "big@1.0, twin@1.0" in out

    code, out, _ = run(capsys, "cache", "rm", "big", "--cards", str(cards))
    assert code == 0 and "still used by twin@1.0" in out and os.path.exists(blob["path"])
    code, out, _ = run(capsys, "cache", "rm", "twin", "--cards", str(cards))
    assert code == 0 and "32.0 MiB freed" in out and not os.path.exists(blob["path"])

    code, out, _ = run(capsys, "cache", "prune", "--json")
    removed = json.loads(out)["removed"]
    assert any("quarantine" in p for p in removed) and any(p.endswith(".partial") for p in removed)
    code, out, _ = run(capsys, "cache", "ls", "--json")
    after = json.loads(out)
    assert after["blobs"] == [] and after["partials"] == [] and after["quarantined"] == []


def test_prune_removes_blobs_no_card_uses(cards, capsys, yolohub_env):
    code, out, _ = run(capsys, "download", "big", "--cards", str(cards))
    for rec in (yolohub_env / "assets").glob("*.json"):
        rec.unlink()  # the cache no longer knows who uses the file
    code, out, _ = run(capsys, "cache", "ls")
    assert "unreferenced" in out
    code, out, _ = run(capsys, "cache", "prune")
    assert code == 0 and "32.0 MiB freed" in out
    assert not list((yolohub_env / "blobs").rglob("*.ckpt"))


def test_rehash_upgrades_a_prefix_card(cards, capsys, big_file):
    code, out, _ = run(capsys, "rehash", "legacy", "--cards", str(cards), "--json")
    data = json.loads(out)
    assert code == 0 and data["changed"] and data["sha256"] == big_file[1]
    assert data["size"] == big_file[2]
    assert f"asset-sha256: {big_file[1]}" in (cards / "legacy.md").read_text()
    code, out, _ = run(capsys, "rehash", "legacy", "--cards", str(cards))
    assert code == 0 and "nothing changed" in out
    code, out, _ = run(capsys, "verify", "legacy", "--cards", str(cards))
    assert code == 0 and "weak" not in out


def test_publish_cli_round_trip_and_conflict(tmp_path, capsys):
    ckpt = tmp_path / "w.ckpt"
    sha, size = make_random_file(ckpt, 3 * MiB)
    argv = ["publish", str(ckpt), "--name", "mine", "--arch", "yolov3_darknet53",
            "--registry", str(tmp_path / "reg"), "--store", str(tmp_path / "store"),
            "--num-classes", "2", "--class-names", "cat,dog", "--protocol", "dataset=pets",
            "--protocol", "metric=AP50", "--claimed", "55.5", "--no-check-load"]
    code, out, _ = run(capsys, *argv, "--json")
    data = json.loads(out)
    assert code == 0 and data["sha256"] == sha and data["size"] == size
    assert data["url"].startswith("file://") and data["load_check"] == "not checked"
    code, out, _ = run(capsys, "validate", data["card"])
    assert code == 0
    code, out, err = run(capsys, *argv)
    assert code == 8 and "error: " in err and "--force" in err and "Traceback" not in err
    code, out, _ = run(capsys, *argv, "--force")
    assert code == 0 and "(replaced)" in out
    code, out, _ = run(capsys, "download", "mine", "--cards", str(tmp_path / "reg"))
    assert code == 0 and open(out.strip(), "rb").read() == ckpt.read_bytes()


def test_real_process_prints_no_traceback_and_imports_no_mindspore(tmp_path):
    env = {**os.environ, "YOLOHUB_HOME": str(tmp_path / "home"), "YOLOHUB_PROGRESS": "0"}
    p = subprocess.run([sys.executable, "-m", "hub", "download", "nosuch"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 3 and p.stderr.startswith("error: ") and "Traceback" not in p.stderr
    probe = (
        "import sys; from hub.cli import main; "
        "rc = [main(a) for a in (['verify', '--all'], ['cache', 'ls'])]; "
        "assert 'mindspore' not in sys.modules, 'mindspore imported'; print(rc)"
    )
    p = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "[0, 0]"
