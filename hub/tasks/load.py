"""Turn a card into a ready network: check the binding, fetch the weights, load them strictly.

The network comes back with one record of what this established (``net.hub``, a
:class:`~hub.tasks.record.LoadRecord`: release, binding, weights file and sha256, load report,
execution mode), which predict, evaluate, train, demo and export read instead of resolving the
card or fetching the file again.

Order matters: everything that can be checked without the network is checked first (the card
names a registered architecture, the arguments fit its builder), then the network is built (the
builder validates argument values), and only then are the weights downloaded — so a bad card or
a typo never costs a multi-hundred-megabyte download.  Loading is strict: every parameter must
be present with the right shape, except the head parameters the card declares when the caller
asks for another class count (fine-tuning).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hub.assets.weights import build_network
from hub.cards.card import Card, Release
from hub.cards.catalog import CardsArg, resolve
from hub.errors import ArchitectureNotFoundError, BindingError, InputDataError
from hub.tasks.record import Binding, LoadRecord, WeightsFile

__all__ = ["Binding", "LoadRecord", "WeightsFile", "bind", "build_for", "fetch_checkpoint",
           "load", "load_from", "load_weights", "local_weights"]

log = logging.getLogger(__name__)

MODES = ("graph", "pynative")


def bind(
    card: Card, *, num_classes: int | None = None, arch_args: Mapping[str, Any] | None = None
) -> Binding:
    """Check that ``card`` can be built (optionally with overrides) without building it."""
    from yolomodels.errors import ArchitectureArgumentError, UnknownArchitectureError
    from yolomodels.registry import get_arch

    if card.architecture is None:
        raise BindingError(
            f"card {card.name!r} has no architecture block, so yolohub does not know which "
            "network its checkpoint belongs to; add `architecture: {name: <registered arch>, "
            "args: {...}}` to the card (see `yolohub info` of a built-in card)"
        )
    arch = card.architecture
    try:
        spec = get_arch(arch.name)
    except UnknownArchitectureError as exc:
        raise ArchitectureNotFoundError(
            f"card {card.name!r} names architecture {arch.name!r}, which yolomodels does not "
            f"register: {exc}"
        ) from None
    overrides = dict(arch_args or {})
    if num_classes is not None:
        if "num_classes" in overrides and overrides["num_classes"] != num_classes:
            raise BindingError(
                f"num_classes={num_classes} and arch_args num_classes={overrides['num_classes']} "
                "disagree; give the class count once"
            )
        overrides["num_classes"] = num_classes
    card_args = {**spec.defaults, **dict(arch.args)}
    args = {**card_args, **overrides}
    try:
        spec.check_args(args)
    except ArchitectureArgumentError as exc:
        source = "the caller's overrides" if set(overrides) - set(card_args) else "the card"
        raise BindingError(f"card {card.name!r}: {exc} (from {source})") from None
    if "num_classes" not in args:
        raise BindingError(
            f"card {card.name!r}: architecture {arch.name!r} needs num_classes; add it to the "
            "card's architecture args"
        )
    card_nc = card_args.get("num_classes")
    drop: tuple[str, ...] = ()
    if card_nc is not None and args["num_classes"] != card_nc:
        drop = tuple(arch.head_params) or tuple(spec.head_params)
        if not drop:
            raise BindingError(
                f"card {card.name!r} declares no head-params, so its checkpoint cannot be "
                f"loaded with {args['num_classes']} classes instead of {card_nc}; add "
                "`head-params` (fnmatch patterns of the class-dependent parameters) to the card"
            )
    return Binding(
        card=card, arch=arch.name, args=args, card_num_classes=card_nc, drop=drop
    )


def _check_mode(mode: str) -> str:
    m = str(mode).lower()
    if m not in MODES:
        raise InputDataError(f"mode={mode!r} is not supported; expected 'graph' or 'pynative'")
    return m


def _build(release: Release, binding: Binding):
    return build_network(binding.arch, binding.args, context=f"card {release.card.name!r}")


def build_for(
    release_or_card: Release | Card,
    *,
    num_classes: int | None = None,
    arch_args: Mapping[str, Any] | None = None,
    mode: str = "graph",
):
    """The card's network, randomly initialised, in eval mode (no download)."""
    from hub.tasks.execution import attach

    mode = _check_mode(mode)
    if isinstance(release_or_card, Release):
        release, card = release_or_card, release_or_card.card
    else:
        card = release_or_card
        release = Release(card, card.assets[0]) if card.assets else None
    binding = bind(card, num_classes=num_classes, arch_args=arch_args)
    net = build_network(binding.arch, binding.args, context=f"card {card.name!r}")
    return attach(net, LoadRecord(release, binding, weights=None, report=None, mode=mode))


def load(
    spec: str | Release,
    *,
    pretrained: bool = True,
    num_classes: int | None = None,
    offline: bool | None = None,
    mode: str = "graph",
    cards_dirs: CardsArg = (),
    progress: bool | None = None,
    arch_args: Mapping[str, Any] | None = None,
    weights: str | Path | None = None,
):
    """The network of card ``spec`` (``name`` or ``name@version``) with its verified weights.

    Returns a MindSpore cell in eval mode; ``net(x)`` gives decoded boxes ``(B, N, 5 + nc)`` in
    input pixels.  In ``mode="graph"`` that cell is the inference form (BatchNorm folded into the
    convolutions, :mod:`yolomodels.inference`), which cannot be trained; ``mode="pynative"``
    returns the network as built (the training form).  ``num_classes`` different from the
    card's keeps every weight except the card's head parameters (fine-tuning).  ``weights``
    loads a local checkpoint (strictly) instead of the card's asset.  ``net.hub`` records what
    loading established; ``net.load_report`` says what was loaded and dropped.
    """
    mode = _check_mode(mode)
    release = resolve(spec, cards_dirs=cards_dirs)
    binding = bind(release.card, num_classes=num_classes, arch_args=arch_args)
    if weights is not None and not Path(weights).is_file():
        raise InputDataError(f"weights file {weights} does not exist; pass a .ckpt file")
    net = _build(release, binding)  # the builder checks argument values before any download
    if weights is not None:
        file = local_weights(weights)
    elif pretrained:
        file = fetch_checkpoint(release, offline=offline, progress=progress)
    else:
        file = None
    return _finish(net, release, binding, file, mode)


def load_from(release: Release, file: WeightsFile, *, mode: str = "graph"):
    """The card's network with the weights ``file`` already at hand (fetched or local)."""
    mode = _check_mode(mode)
    binding = bind(release.card)
    return _finish(_build(release, binding), release, binding, file, mode)


def load_weights(
    spec: str | Release,
    *,
    offline: bool | None = None,
    cards_dirs: CardsArg = (),
    progress: bool | None = None,
) -> dict:
    """The verified checkpoint of ``spec`` as ``{name: numpy array}`` (``ema.`` stripped)."""
    from hub.assets.weights import read_weights

    release = resolve(spec, cards_dirs=cards_dirs)
    file = fetch_checkpoint(release, offline=offline, progress=progress)
    return read_weights(file.path, context=release.id, read_hint=_READ_HINT["card"])


def fetch_checkpoint(release: Release, *, offline: bool | None = None,
                     progress: bool | None = None) -> WeightsFile:
    """The card's checkpoint, downloaded (or found in the cache) and verified."""
    from hub.assets.files import fetch_release
    from hub.assets.integrity import sha256_file

    if release.asset.file_format.lower() != "ckpt":
        raise BindingError(
            f"{release.id}: asset format {release.asset.file_format!r} cannot be loaded into a "
            "MindSpore network; expected file-format: ckpt"
        )
    fetched = fetch_release(release, offline=offline, progress=progress)
    path = Path(fetched.path)
    # a card pinning only a prefix: the record holds the full digest of the verified bytes
    sha = fetched.sha256 if len(fetched.sha256) == 64 else sha256_file(path)
    return WeightsFile(path, sha, "card")


def local_weights(path: str | Path) -> WeightsFile:
    """The caller's checkpoint file, hashed (the record and reports name its sha256)."""
    from hub.assets.integrity import sha256_file

    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"weights file {path} does not exist; pass a .ckpt file")
    return WeightsFile(path, sha256_file(path), "local")


_READ_HINT = {
    "local": "pass a checkpoint saved from this card's network",
    "card": "the file matched the card's sha256, so the published file itself is not a "
    "checkpoint; tell the card's author",
}


def _finish(net, release: Release, binding: Binding, file: WeightsFile | None, mode: str):
    """Load ``file`` strictly (when given) and attach the record."""
    from hub.assets.weights import load_checkpoint
    from hub.tasks.execution import attach

    report = None
    if file is not None:
        report = load_checkpoint(
            net, file.path, context=release.id, drop=binding.drop,
            read_hint=_READ_HINT[file.origin],
            fit_hint="the checkpoint was saved from another architecture or other arguments than "
            f"the card declares ({binding.arch} {dict(binding.args)}); fix the card's "
            "architecture block or publish the right file",
        )
        if report.dropped:
            log.info(
                "%s: %d classes instead of the card's %d: dropped %d head parameters matching "
                "%s (%s); they keep their fresh initialisation",
                release.id,
                binding.num_classes,
                binding.card_num_classes,
                len(report.dropped),
                ", ".join(binding.drop),
                ", ".join(report.dropped),
            )
    return attach(net, LoadRecord(release, binding, weights=file, report=report, mode=mode))
