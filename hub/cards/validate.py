"""Validating card files in bulk: one verdict per file, every problem of each file."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hub.cards.card import load_card
from hub.cards.catalog import as_card_error, card_files
from hub.errors import Finding, InputDataError


@dataclass(frozen=True)
class CardVerdict:
    file: str
    ok: bool
    name: str | None
    findings: tuple[Finding, ...]


def expand(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Card files named directly or found below directories; a missing path is an error."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(card_files(p))
        elif p.is_file():
            out.append(p)
        else:
            raise InputDataError(f"{str(p)!r} is neither a card file nor a directory of cards")
    return out


def validate_paths(paths: Iterable[str | os.PathLike]) -> list[CardVerdict]:
    """Parse and validate every card; never raises for a bad card, only for a missing path."""
    verdicts = []
    for path in expand(paths):
        try:
            card = load_card(path)
        except Exception as exc:  # noqa: BLE001 - every file gets a verdict, whatever it holds
            verdicts.append(CardVerdict(str(path), False, None, as_card_error(path, exc).findings))
        else:
            verdicts.append(CardVerdict(str(path), True, card.name, ()))
    return verdicts
