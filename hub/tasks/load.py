"""Turn a card into a ready network: check the binding, fetch the weights, load them strictly.

Order matters: everything that can be checked without the network is checked first (the card
names a registered architecture, the arguments fit its builder), then the network is built (the
builder validates argument values), and only then are the weights downloaded — so a bad card or
a typo never costs a multi-hundred-megabyte download.  Loading is strict: every parameter must
be present with the right shape, except the head parameters the card declares when the caller
asks for another class count (fine-tuning).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.cards.card import Card, Release
from hub.errors import (
    ArchitectureNotFoundError,
    BindingError,
    CheckpointError,
    CheckpointMismatchError,
    InputDataError,
)

__all__ = ["Binding", "bind", "build_for", "load", "load_weights"]

log = logging.getLogger(__name__)

MODES = ("graph", "pynative")


@dataclass(frozen=True)
class Binding:
    """A card bound to a registered architecture: the builder arguments and what to drop."""

    card: Card
    arch: str
    args: Mapping[str, Any]
    """Complete builder arguments: registry defaults < card args < caller overrides."""
    card_num_classes: int
    drop: tuple[str, ...]
    """fnmatch patterns of parameters not loaded (non-empty only when the class count changes)."""

    @property
    def num_classes(self) -> int:
        return int(self.args["num_classes"])

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The card's class names, when they still describe the network's outputs."""
        names = self.card.class_names
        return names if names and len(names) == self.num_classes else None


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


def _release(spec: str | Release, cards_dirs: Sequence) -> Release:
    if isinstance(spec, Release):
        return spec
    from hub.cards.catalog import resolve

    return resolve(spec, cards_dirs=cards_dirs)


def _check_mode(mode: str) -> str:
    m = str(mode).lower()
    if m not in MODES:
        raise InputDataError(f"mode={mode!r} is not supported; expected 'graph' or 'pynative'")
    return m


def _build(binding: Binding):
    import yolomodels
    from yolomodels.errors import ArchitectureArgumentError

    try:
        return yolomodels.build(binding.arch, **binding.args)
    except ArchitectureArgumentError as exc:
        raise BindingError(f"card {binding.card.name!r}: {exc}") from None


def _finish(net, binding: Binding, mode: str, *, release_id: str, report=None):
    """Eval mode, execution mode, and the attributes callers (predict, eval, demo) read."""
    if mode == "graph":  # inference form (BatchNorm folded); pynative keeps the training form
        from yolomodels.inference import inference_form
        net = inference_form(net)
    net.set_train(False)
    net.class_names = binding.class_names
    net.card_name = binding.card.name
    net.release_id = release_id
    net.load_report = report
    net.execution_mode = _set_execution_mode(net, mode, binding=binding)
    return net


def _set_execution_mode(net, mode: str, *, binding: Binding | None = None) -> str:
    """Run ``net``'s inference as one compiled graph per input shape (``mode="graph"``).

    Uses ``mindspore.jit`` on this network only, so the process-wide context (which the trainer
    or other code may rely on) is left alone.  The network's class is swapped for a subclass
    whose ``__call__`` runs the compiled graph in eval mode; ``construct`` itself is untouched
    (MindSpore's parser resolves it).  If compilation fails, the network falls back to PyNative
    for good, with a warning, and keeps working.  Training mode always runs eagerly.  The first
    call for each input shape goes through the persistent compile cache
    (:mod:`hub.tasks.compile_cache`) unless ``YOLOHUB_COMPILE_CACHE=0``.
    """
    import mindspore as ms

    from hub.settings import get_settings
    from hub.tasks import compile_cache

    if mode == "pynative":
        return "pynative"
    if ms.get_context("mode") == ms.GRAPH_MODE:
        return "graph"  # the whole process already runs graphs
    base = type(net)
    graphs: dict[tuple, Any] = {}

    def run_compiled(args):
        # one jit object per input shape: MindSpore fixes a function's cache directory at its
        # first compilation and numbers the graphs in it by compile order
        key = tuple((tuple(a.shape), str(a.dtype)) for a in args if hasattr(a, "shape"))
        compiled = graphs.get(key)
        if compiled is not None:
            return compiled(*args)
        settings = get_settings()
        if binding is None or len(key) != 1 or not settings.compile_cache:
            compiled = graphs[key] = ms.jit(net.construct)
            return compiled(*args)
        (shape, dtype), = key
        form = {"form": getattr(net, "form_version", "training")}  # folded or not
        directory = compile_cache.graph_dir(binding.arch, {**binding.args, **form}, shape, dtype,
                                            settings=settings)
        with compile_cache.compiling(directory):
            compiled = graphs[key] = ms.jit(net.construct)
            return compiled(*args)

    def __call__(self, *args, **kwargs):
        if self.training or kwargs or getattr(self, "execution_mode", "graph") != "graph":
            return base.__call__(self, *args, **kwargs)
        try:
            return run_compiled(args)
        except (RuntimeError, TypeError) as exc:
            self.execution_mode = "pynative"
            text = str(exc).strip()
            log.warning(
                "%s: graph compilation failed (%s); falling back to PyNative execution",
                getattr(self, "release_id", base.__name__),
                text.splitlines()[0] if text else type(exc).__name__,
            )
            return base.__call__(self, *args)

    net.__class__ = type(base.__name__, (base,), {"__call__": __call__, "__module__": base.__module__,
                                                 "__qualname__": base.__qualname__})
    return "graph"


def build_for(
    release_or_card: Release | Card,
    *,
    num_classes: int | None = None,
    arch_args: Mapping[str, Any] | None = None,
    mode: str = "graph",
):
    """The card's network, randomly initialised, in eval mode (no download)."""
    mode = _check_mode(mode)
    if isinstance(release_or_card, Release):
        card, rid = release_or_card.card, release_or_card.id
    else:
        card, rid = release_or_card, release_or_card.name
    binding = bind(card, num_classes=num_classes, arch_args=arch_args)
    return _finish(_build(binding), binding, mode, release_id=rid)


def load(
    spec: str | Release,
    *,
    pretrained: bool = True,
    num_classes: int | None = None,
    offline: bool | None = None,
    mode: str = "graph",
    cards_dirs: Sequence = (),
    progress: bool | None = None,
    arch_args: Mapping[str, Any] | None = None,
    weights: str | Path | None = None,
):
    """The network of card ``spec`` (``name`` or ``name@version``) with its verified weights.

    Returns a MindSpore cell in eval mode; ``net(x)`` gives decoded boxes ``(B, N, 5 + nc)`` in
    input pixels.  In ``mode="graph"`` that cell is the inference form (BatchNorm folded into the
    convolutions, :mod:`yolomodels.inference`), which cannot be trained; ``mode="pynative"``
    returns the network as built (the training form).  ``num_classes`` different from the
    card's keeps every weight except the card's head parameters (fine-tuning).  ``weights`` loads a local checkpoint (strictly)
    instead of the card's asset.  ``net.load_report`` says what was loaded and dropped.
    """
    mode = _check_mode(mode)
    release = _release(spec, cards_dirs)
    binding = bind(release.card, num_classes=num_classes, arch_args=arch_args)
    if weights is not None and not Path(weights).is_file():
        raise InputDataError(f"weights file {weights} does not exist; pass a .ckpt file")
    net = _build(binding)
    report = None
    if weights is not None:
        path = Path(weights)
        report = _load_into(net, _read(path, release, local=True), binding, path=path,
                            release=release)
    elif pretrained:
        path = _fetch(release, offline=offline, progress=progress)
        params = _read(path, release)
        report = _load_into(net, params, binding, path=path, release=release)
    return _finish(net, binding, mode, release_id=release.id, report=report)


def load_weights(
    spec: str | Release,
    *,
    offline: bool | None = None,
    cards_dirs: Sequence = (),
    progress: bool | None = None,
) -> dict:
    """The verified checkpoint of ``spec`` as ``{name: numpy array}`` (``ema.`` stripped)."""
    release = _release(spec, cards_dirs)
    return _read(_fetch(release, offline=offline, progress=progress), release)


def _fetch(release: Release, *, offline: bool | None, progress: bool | None) -> Path:
    from hub.assets.files import fetch_release

    if release.asset.file_format.lower() != "ckpt":
        raise BindingError(
            f"{release.id}: asset format {release.asset.file_format!r} cannot be loaded into a "
            "MindSpore network; expected file-format: ckpt"
        )
    return Path(fetch_release(release, offline=offline, progress=progress).path)


def _read(path: Path, release: Release, *, local: bool = False) -> dict:
    from yolomodels.checkpoint import read_checkpoint
    from yolomodels.errors import CheckpointReadError

    try:
        return read_checkpoint(path)
    except CheckpointReadError as exc:
        hint = (
            "pass a checkpoint saved from this card's network"
            if local
            else "the file matched the card's sha256, so the published file itself is not a "
            "checkpoint; tell the card's author"
        )
        raise CheckpointError(f"{release.id}: {exc}. {hint}") from None


def _load_into(net, params: dict, binding: Binding, *, path: Path, release: Release):
    from yolomodels.checkpoint import load_strict

    report = load_strict(net, params, drop=binding.drop)
    if not report.ok:
        hint = (
            "the checkpoint was saved from another architecture or other arguments than the "
            f"card declares ({binding.arch} {dict(binding.args)}); fix the card's architecture "
            "block or publish the right file"
        )
        raise CheckpointMismatchError(
            f"{release.id}: checkpoint {path.name} does not fit the network strictly: "
            f"{report.describe()}; {hint}",
            report,
        )
    if report.dropped:
        log.info(
            "%s: %d classes instead of the card's %d: dropped %d head parameters matching %s "
            "(%s); they keep their fresh initialisation",
            release.id,
            binding.num_classes,
            binding.card_num_classes,
            len(report.dropped),
            ", ".join(binding.drop),
            ", ".join(report.dropped),
        )
    log.info("%s: loaded %d parameters strictly from %s", release.id, len(report.loaded), path)
    return report
