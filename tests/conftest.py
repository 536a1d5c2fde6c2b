"""Shared fixtures: every test gets its own cache directory and a clean yolohub environment."""

from __future__ import annotations

import os

import pytest

# Test modules import MindSpore directly: cap oneDNN before any of them can run a convolution.
from yolomodels.runtime import select_fast_isa

select_fast_isa()


@pytest.fixture(autouse=True)
def yolohub_env(tmp_path, monkeypatch):
    """Isolate each test: fresh YOLOHUB_HOME, no inherited YOLOHUB_* settings, quiet progress."""
    for key in list(os.environ):
        if key.startswith("YOLOHUB_"):
            monkeypatch.delenv(key)
    home = tmp_path / "yolohub-home"
    monkeypatch.setenv("YOLOHUB_HOME", str(home))
    monkeypatch.setenv("YOLOHUB_PROGRESS", "0")
    return home


# the loopback HTTP server, socket guard and test-file fixtures of the asset tests
pytest_plugins = ("httpserver",)
