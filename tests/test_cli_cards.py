"""``yolohub list / info / validate``: output, JSON, exit codes, and no MindSpore on these paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hub._paths import builtin_cards_dir
from hub.cli import main

MSHUB = Path(__file__).parent / "data" / "cards" / "mshub_yolov3_darknet53.md"


def test_list_table_and_json(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["MODEL", "DEFAULT", "DATASET", "METRIC", "SIZE", "CACHED", "SOURCE"]
    assert out[1].split()[:4] == ["yolov3_darknet53@910v2", "yes", "coco2017", "AP"]
    assert len(out) == 6
    assert main(["list", "silu", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == ["yolov4_cspdarknet53_silu@910"]
    assert rows[0]["claimed"] == 45.8 and rows[0]["cached"] is False


def test_info_text_and_json(capsys):
    assert main(["info", "yolov4_cspdarknet53@910"]) == 0
    out = capsys.readouterr().out
    assert "yolov4_cspdarknet53@910" in out and "50172f93 (weak" in out and "mirror" in out
    assert main(["info", "yolov4_cspdarknet53", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["id"] == "yolov4_cspdarknet53@910v2" and data["versions"] == ["910v2", "910"]


def test_errors_are_one_line_with_exit_code(capsys):
    assert main(["info", "yolov3"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: no card named 'yolov3'") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert main(["list", "--cards", "/nonexistent/dir"]) == 9


def test_validate_reports_every_file_and_fails_on_any_error(tmp_path, capsys):
    good = tmp_path / "good.md"
    good.write_text(MSHUB.read_text())
    bad = tmp_path / "sub" / "bad.md"
    bad.parent.mkdir()
    bad.write_text(MSHUB.read_text().replace("module-type: cv", "module-type: vision").replace("81895f09", "zz"))
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"ok    {good}" in out and f"FAIL  {bad}" in out
    assert "line 9: module-type: expected one of" in out and "asset[0].asset-sha256" in out
    assert out.strip().endswith("1 valid, 1 invalid")

    assert main(["validate", str(good), str(builtin_cards_dir()), "--json"]) == 0
    verdicts = json.loads(capsys.readouterr().out)
    assert [v["ok"] for v in verdicts] == [True] * 4
    assert main(["validate", str(tmp_path / "missing.md")]) == 9


def test_validate_many_cards_in_one_call(tmp_path, capsys):
    text = MSHUB.read_text()
    for i in range(300):
        (tmp_path / f"c{i:04d}.md").write_text(text.replace("yolov3_darknet53\n", f"model_{i}\n", 1))
    (tmp_path / "c0007.md").write_text(text.replace("81895f09", "nothex!"))
    assert main(["validate", str(tmp_path), "--json"]) == 1
    verdicts = json.loads(capsys.readouterr().out)
    assert len(verdicts) == 300 and [v["file"] for v in verdicts if not v["ok"]] == [str(tmp_path / "c0007.md")]


def test_card_commands_never_import_mindspore(tmp_path):
    code = (
        "import sys; from hub.cli import main\n"
        "for argv in (['list'], ['info', 'yolov3_darknet53'], ['validate', sys.argv[1]]):\n"
        "    assert main(argv) == 0, argv\n"
        "bad = [m for m in ('mindspore', 'numpy', 'requests') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(builtin_cards_dir())], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("argv", [["-m", "hub", "list"], ["-m", "hub", "--version"]])
def test_python_dash_m_hub_is_the_cli(argv):
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "yolov3_darknet53" in proc.stdout or proc.stdout.startswith("yolohub ")


def test_closed_pipe_stops_quietly(tmp_path):
    # enough cards that `yolohub list` outgrows the pipe buffer after the reader has gone
    text = (builtin_cards_dir() / "yolov3_darknet53.md").read_text()
    for i in range(600):
        (tmp_path / f"c{i}.md").write_text(text.replace("yolov3_darknet53", f"model_{i:04d}"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub", "list", "--cards", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.readline().split()[0] == b"MODEL"
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
    assert proc.returncode == 141
