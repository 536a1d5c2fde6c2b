"""Build, read a checkpoint, load it strictly: the one way a checkpoint goes into a network.

``hub.load`` (a card's weights), ``hub.publish`` (proving a file fits before it is published) and
the demo's own measurement all go through :func:`build_network` and :func:`load_checkpoint`, so
"strict" means the same everywhere: every parameter present with its shape, a leading ``ema.``
stripped, optimizer entries ignored, only the ``drop`` patterns left out.  Callers say what the
file is (``context``) and what to do about a bad one (the hints); the error classes are
:mod:`hub.errors`'.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hub.errors import BindingError, CheckpointError, CheckpointMismatchError

__all__ = ["build_and_load", "build_network", "load_checkpoint", "read_weights"]

log = logging.getLogger(__name__)


def build_network(arch: str, args: Mapping[str, Any], *, context: str):
    """``yolomodels.build(arch, **args)``; BindingError (naming ``context``) on bad arguments."""
    from yolomodels.errors import YoloModelsError
    from yolomodels.registry import build

    try:
        return build(arch, **args)
    except YoloModelsError as exc:
        raise BindingError(f"{context}: cannot build {arch} with {dict(args)}: {exc}") from None


def read_weights(path: str | Path, *, context: str, read_hint: str) -> dict:
    """The checkpoint at ``path`` as ``{name: numpy array}`` (``ema.`` stripped, optimizer
    entries dropped); CheckpointError (with ``read_hint``) when it is not one."""
    from yolomodels.checkpoint import read_checkpoint
    from yolomodels.errors import CheckpointReadError

    try:
        return read_checkpoint(Path(path))
    except CheckpointReadError as exc:
        raise CheckpointError(f"{context}: {exc}. {read_hint}") from None


def load_checkpoint(
    net,
    path: str | Path,
    *,
    context: str,
    drop: Sequence[str] = (),
    read_hint: str,
    fit_hint: str,
):
    """Read the checkpoint at ``path`` and load it strictly into ``net``; the LoadReport.

    CheckpointError when the file is not a checkpoint (``read_hint`` says what to do),
    CheckpointMismatchError when it does not fit (``fit_hint``).
    """
    from yolomodels.checkpoint import load_strict

    path = Path(path)
    params = read_weights(path, context=context, read_hint=read_hint)
    report = load_strict(net, params, drop=tuple(drop))
    if not report.ok:
        raise CheckpointMismatchError(
            f"{context}: checkpoint {path.name} does not fit the network strictly: "
            f"{report.describe()}; {fit_hint}",
            report,
        )
    log.info("%s: loaded %d parameters strictly from %s", context, len(report.loaded), path)
    return report


def build_and_load(
    arch: str,
    args: Mapping[str, Any],
    path: str | Path,
    *,
    context: str,
    drop: Sequence[str] = (),
    read_hint: str,
    fit_hint: str,
):
    """``(network, LoadReport)``: :func:`build_network`, then :func:`load_checkpoint`."""
    net = build_network(arch, args, context=context)
    return net, load_checkpoint(net, path, context=context, drop=drop, read_hint=read_hint,
                                fit_hint=fit_hint)
