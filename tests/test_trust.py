"""Trust: a broken card hides nothing else, a crash is exit 10 in one line, errors print once,
and the new-user bugs of issue 10 (list's first column, claims shown as written, shadowing)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub.cards.write import render_card
from hub.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*argv: str, env: dict | None = None, code: str | None = None):
    """``yolohub ARGV`` in a fresh interpreter (log lines and tracebacks as a user sees them)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    cmd = [sys.executable, "-c", code, *argv] if code else [sys.executable, "-m", "hub", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=full_env)


def plain_card(directory: Path, name: str, *, link: str, sha: str, size: int | None = None,
               claimed=None, evaluation: str | None = None, version: str = "1.0") -> Path:
    asset = {"file-format": "ckpt", "asset-link": link, "asset-sha256": sha, "version": version}
    if size is not None:
        asset["size"] = size
    if claimed is not None:
        asset["claimed"] = claimed
    fm = {"model-name": name, "model-version": version, "asset": [asset]}
    if evaluation is not None:
        fm["evaluation"] = evaluation
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.md"
    path.write_text(render_card(fm, "body\n"))
    return path


def lines_naming(text: str, path: Path) -> int:
    return sum(1 for line in text.splitlines() if str(path) in line)


@pytest.fixture
def registry_with_a_broken_card(tmp_path):
    """A registry with one good card (a real local file) and one card that crashed main."""
    blob = tmp_path / "files" / "good.ckpt"
    blob.parent.mkdir()
    blob.write_bytes(b"weights" * 1000)
    sha = hashlib.sha256(blob.read_bytes()).hexdigest()
    reg = tmp_path / "reg"
    plain_card(reg, "good_model", link=blob.as_uri(), sha=sha, size=blob.stat().st_size)
    broken = reg / "zz_broken.md"
    broken.write_text("---\nmodel-name: bad\ntags: &r [x, *r]\nasset: []\n---\n")
    return reg, broken, sha


def test_a_broken_card_is_reported_once_and_everything_else_keeps_working(
        registry_with_a_broken_card):
    reg, broken, sha = registry_with_a_broken_card
    for argv, env in ((["--cards", str(reg)], {}), ([], {"YOLOHUB_CARDS": str(reg)})):
        listing = run_cli("list", *argv, env=env)
        assert listing.returncode == 0, listing.stderr
        assert listing.stdout.splitlines()[1].split()[0] == "good_model@1.0"
        assert "yolov3_darknet53@910v2" in listing.stdout  # built-in cards still there
        warnings = [line for line in listing.stderr.splitlines() if str(broken) in line]
        assert len(warnings) == 1 and "recursive YAML alias" in warnings[0]
        assert f"run 'yolohub validate {broken}'" in warnings[0]
        assert "Traceback" not in listing.stderr

        shown = run_cli("info", "good_model", *argv, env=env)
        assert shown.returncode == 0 and "good_model@1.0" in shown.stdout, shown.stderr
        assert lines_naming(shown.stderr, broken) == 1

        got = run_cli("download", "good_model", "--offline", *argv, env=env)
        assert got.returncode == 0, got.stderr
        assert Path(got.stdout.strip()).read_bytes() == (reg.parent / "files" / "good.ckpt").read_bytes()
        assert lines_naming(got.stderr, broken) == 1  # one warning per process


def test_validate_gives_a_verdict_for_every_file(registry_with_a_broken_card, capsys):
    reg, broken, _ = registry_with_a_broken_card
    deep = reg / "deep.md"
    deep.write_text("---\nmodel-name: deep\ntags:" + "".join(
        "\n" + "  " * i + "-" for i in range(1, 400)) + "\n---\n")
    assert main(["validate", str(reg), "--json"]) == 1
    verdicts = {v["file"]: v for v in json.loads(capsys.readouterr().out)}
    assert set(verdicts) == {str(reg / "good_model.md"), str(broken), str(deep)}
    assert verdicts[str(reg / "good_model.md")]["ok"]
    assert "recursive YAML alias" in verdicts[str(broken)]["findings"][0]["message"]
    assert "nested at most 32 levels" in verdicts[str(deep)]["findings"][0]["message"]


BOOM = (
    "import sys, hub.cli, hub.cards.listing\n"
    "def boom(*a, **k):\n"
    "    raise RuntimeError('disk\\nexploded')\n"
    "hub.cards.listing.list_models = boom\n"
    "sys.exit(hub.cli.main(sys.argv[1:]))\n"
)


def test_an_unexpected_exception_is_exit_10_in_one_line():
    proc = run_cli("list", code=BOOM)
    assert proc.returncode == 10
    assert proc.stderr.splitlines() == [
        "internal error: RuntimeError: disk exploded; YOLOHUB_DEBUG=1 shows the traceback"
    ]
    debug = run_cli("list", code=BOOM, env={"YOLOHUB_DEBUG": "1"})
    assert "Traceback" in debug.stderr and "RuntimeError: disk" in debug.stderr


def test_a_download_error_is_printed_once(tmp_path):
    reg = tmp_path / "reg"
    plain_card(reg, "gone", link=(tmp_path / "missing.ckpt").as_uri(), sha="ab" * 32)
    proc = run_cli("download", "gone", "--cards", str(reg))
    assert proc.returncode == 5
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "missing.ckpt" in lines[0], lines


def test_list_puts_the_model_id_first_so_awk_print_1_gives_ids(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["MODEL", "DEFAULT"]
    ids = [line.split()[0] for line in lines[1:]]
    assert ids == ["yolov3_darknet53@910v2", "yolov3_darknet53@910", "yolov4_cspdarknet53@910v2",
                   "yolov4_cspdarknet53@910", "yolov4_cspdarknet53_silu@910"]
    assert [line.split()[1] for line in lines[1:]] == ["yes", "no", "yes", "no", "yes"]


def test_claims_are_shown_as_written_and_free_text_is_not_misread(tmp_path, capsys):
    reg = tmp_path / "reg"
    link = "https://example.org/w.ckpt"
    plain_card(reg, "one", link=link, sha="0123abcd", claimed=1.0)
    plain_card(reg, "classifier", link=link, sha="0123abce",
               evaluation="top1acc76.85 | top5acc93.24")
    plain_card(reg, "legacy", link=link, sha="0123abcf", evaluation="mAP50: 61.2")
    assert main(["list", "--cards", str(reg), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert (rows["one"]["metric"], rows["one"]["claimed"]) == ("AP", 1.0)
    # a classifier's free text claims its first named metric under that name, never "AP 1"
    assert (rows["classifier"]["metric"], rows["classifier"]["claimed"]) == ("top1acc", 76.85)
    assert (rows["legacy"]["metric"], rows["legacy"]["claimed"]) == ("AP50", 61.2)
    assert main(["list", "--cards", str(reg)]) == 0
    table = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "AP 1.0 " in table["one@1.0"]
    assert " AP " not in table["classifier@1.0"] and "top1acc 76.85" in table["classifier@1.0"]
    assert "AP50 61.2" in table["legacy@1.0"]
    assert main(["info", "classifier", "--cards", str(reg)]) == 0
    out = capsys.readouterr().out
    assert "claimed       top1acc 76.85" in out
    assert "top1acc76.85 | top5acc93.24 (free text" in out


def test_info_never_says_a_card_shadows_its_own_file(tmp_path, monkeypatch, capsys):
    reg = tmp_path / "reg"
    plain_card(reg, "mine", link="https://example.org/w.ckpt", sha="0123abcd")
    assert main(["info", "mine", "--cards", str(reg)]) == 0
    assert "shadows" not in capsys.readouterr().out
    monkeypatch.setenv("YOLOHUB_CARDS", str(reg))  # the same directory twice
    assert main(["info", "mine", "--cards", str(reg), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["shadowed"] == []
    other = tmp_path / "other"
    plain_card(other, "mine", link="https://example.org/w2.ckpt", sha="0123abce")
    assert main(["info", "mine", "--cards", str(other), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["shadowed"] == [str(reg / "mine.md")]


def test_make_dataset_into_a_file_is_refused_in_one_line(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    assert main(["make-dataset", str(target)]) == 9
    err = capsys.readouterr().err
    assert err.splitlines() == [f"error: {target} is a file; make-dataset writes a directory there"]
    assert target.read_text() == "mine"


@pytest.mark.parametrize("override", ["optimizer.lr=.nan", "loss.box=.inf", "warmup.epochs=-.inf"])
def test_recipe_overrides_refuse_nan_and_infinities(override, tmp_path, capsys):
    code = main(["train", "yolov3_darknet53", "--data", str(tmp_path), "--set", override])
    err = capsys.readouterr().err
    assert code == 9 and "expected a finite number" in err and len(err.splitlines()) == 1, err
