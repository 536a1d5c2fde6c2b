"""The ``yolohub`` command: one subcommand per library verb, errors as one-line messages.

Each command group lives in its own module with a ``register(subparsers)`` function; the module
must not import mindspore at import time (``yolohub list`` has to start fast), only inside the
command function that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from hub import __version__
from hub.errors import HubError
from hub.settings import get_settings

# Command-group modules, in the order their commands appear in ``yolohub --help``.
_COMMAND_MODULES = (
    "hub.cli.cards",  # list, info, validate
    "hub.cli.assets",  # download, verify, cache, publish, rehash
    "hub.cli.store",  # store gc
    "hub.cli.models",  # predict
    "hub.cli.export",  # export
    "hub.cli.data",  # make-dataset
    "hub.cli.train",  # train
    "hub.cli.evaluate",  # eval
    "hub.cli.demo",  # demo
    "hub.cli.env",  # env
    "hub.cli.registry",  # index, update, search, serve, pack, unpack
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yolohub",
        description="Model hub for MindSpore YOLO detectors: cards, verified checkpoints, "
        "networks, training and evaluation.",
        epilog="Exit codes: 0 ok, 1 negative verdict, 2 usage, 3 unknown name, 4 integrity, "
        "5 download, 6 offline, 7 binding/checkpoint, 8 publish, 9 input data, 10 other. "
        "Set YOLOHUB_DEBUG=1 for tracebacks.",
    )
    parser.add_argument("--version", action="version", version=f"yolohub {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``yolohub`` command and return its exit code (never raises for HubError)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HubError as exc:
        if _debug():
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader (e.g. `| head`) went away: stop quietly, as other Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as exc:  # the file system refused (a path, permissions, space): say so plainly
        if _debug():
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or _one_line(exc)}{where}", file=sys.stderr)
        return INTERNAL_ERROR
    except Exception as exc:  # noqa: BLE001 - a bug must not look like a verdict (exit 1)
        if _debug():
            raise
        print(f"internal error: {_one_line(exc)}; YOLOHUB_DEBUG=1 shows the traceback",
              file=sys.stderr)
        return INTERNAL_ERROR


INTERNAL_ERROR = 10  # an unexpected exception or OS error: the README's "any other error"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _debug() -> bool:
    try:
        return get_settings().debug
    except HubError:
        return False
