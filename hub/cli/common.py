"""Options and helpers shared by several ``yolohub`` commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_cards_option(parser: argparse.ArgumentParser) -> None:
    """``--cards DIR`` (repeatable): extra card directories, highest precedence."""
    parser.add_argument(
        "--cards",
        metavar="DIR",
        action="append",
        type=Path,
        default=[],
        help="extra directory of cards; wins over YOLOHUB_CARDS and the built-in cards "
        "(repeatable, earlier wins)",
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")
