"""A non-editable install ships the built-in cards and the schema inside the wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_carries_cards_and_schema_and_finds_them(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("yolohub-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for card in (ROOT / "cards").glob("*.md"):
        assert f"hub/_builtin/cards/{card.name}" in names
    assert "hub/_builtin/schema/model-card.schema.json" in names
    assert any(n.endswith("entry_points.txt") for n in names)

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    code = (
        "import hub, hub._paths as p; from hub.cli import main\n"
        "assert '_builtin' in str(p.builtin_cards_dir()), p.builtin_cards_dir()\n"
        "assert str(p.builtin_cards_dir()).startswith(sys.argv[1])\n"
        "assert main(['validate', str(p.builtin_cards_dir())]) == 0\n"
        "assert [m.name for m in hub.list_models('silu')] == ['yolov4_cspdarknet53_silu']\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run(
        [sys.executable, "-c", "import sys\n" + code, str(target)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
