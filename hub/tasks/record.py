"""What loading established, as one typed record: the network's ``net.hub``.

:func:`hub.load` resolves the card, binds it to an architecture, fetches and verifies the
weights and loads them strictly — once.  Everything the later steps need (predict's thresholds,
evaluate's weights label and sha256, the demo's downloaded file, export's cache key) is in the
:class:`LoadRecord` attached to the network, so none of them resolves a card or fetches a file
again.  :class:`Binding` (the card bound to an architecture: builder arguments, parameters to
drop) is part of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.cards.card import Card, EvalProtocol, Release

__all__ = ["Binding", "LoadRecord", "WeightsFile", "record_of"]


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


@dataclass(frozen=True)
class WeightsFile:
    """The checkpoint (or exported graph) a network runs with."""

    path: Path
    sha256: str
    """Full sha256 of the file's bytes."""
    origin: str
    """``card``: the card's asset, verified against the card; ``local``: the caller's file."""


@dataclass(frozen=True, eq=False)
class LoadRecord:
    """One network's load: which release, bound how, with which weights, and how it runs."""

    release: Release | None
    """The card and asset version loaded (None only for ``build_for`` on a card listing no
    asset, as some MindSpore Hub cards do)."""
    binding: Binding | None
    """The card bound to its architecture (None only for a network no card describes)."""
    weights: WeightsFile | None
    """None for a randomly initialised network (``pretrained=False``, ``build_for``)."""
    report: Any  # yolomodels LoadReport; None when nothing was loaded
    mode: str
    """The execution mode asked for: ``graph``, ``pynative`` or ``onnxruntime``."""
    backend: str = "mindspore"
    runner: Any = field(default=None, repr=False)
    """The graph runner (:mod:`hub.tasks.execution`) that knows whether compilation fell back."""

    @property
    def card(self) -> Card:
        return self.release.card if self.release is not None else self.binding.card

    @property
    def id(self) -> str:
        """``name@version`` (the card name alone when the card lists no asset)."""
        return self.release.id if self.release is not None else self.card.name

    @property
    def card_name(self) -> str:
        return self.card.name

    @property
    def protocol(self) -> EvalProtocol | None:
        return self.card.eval_protocol

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The card's class names, when they still describe the network's outputs."""
        return self.binding.class_names if self.binding is not None else None

    @property
    def execution_mode(self) -> str:
        """How the network runs now: ``graph`` until a compilation fails, then ``pynative``."""
        return self.runner.mode if self.runner is not None else self.mode


def record_of(net) -> LoadRecord | None:
    """The record of a network from :func:`hub.load` (None for a network built elsewhere)."""
    rec = getattr(net, "hub", None)
    return rec if isinstance(rec, LoadRecord) else None
