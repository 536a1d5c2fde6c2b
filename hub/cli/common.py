"""Options and helpers shared by several ``yolohub`` commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_cards_option(parser: argparse.ArgumentParser) -> None:
    """``--cards DIR|URL`` (repeatable): extra card directories or registry URLs, highest
    precedence."""
    parser.add_argument(
        "--cards",
        metavar="DIR|URL",
        action="append",
        type=_cards_entry,
        default=[],
        help="extra directory of cards or registry URL (https://, http://127.0.0.1:PORT/, "
        "file:///); wins over YOLOHUB_CARDS and the built-in cards (repeatable, earlier wins)",
    )


def open_cards(args: argparse.Namespace):
    """The catalog this command reads (``--cards`` first, then the other sources), scanned
    once here and passed down to the function the command runs."""
    from hub.cards.catalog import open_catalog

    return open_catalog(args.cards)


def _cards_entry(text: str):
    from hub.settings import is_url

    return text if is_url(text) else Path(text)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def ranged(kind: type, low, high, what: str):
    """An argparse type: ``kind(text)`` within ``[low, high]``, else a one-line usage error."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not low <= value <= high:  # also false for NaN
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value

    return parse
