"""Where the built-in cards and the schema live: inside the wheel, or at the source tree's root."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    installed = _PKG / "_builtin" / name
    return installed if installed.is_dir() else _PKG.parent / name


def builtin_cards_dir() -> Path:
    return _data_dir("cards")


def schema_path() -> Path:
    return _data_dir("schema") / "model-card.schema.json"


def index_schema_path() -> Path:
    return _data_dir("schema") / "registry-index.schema.json"
