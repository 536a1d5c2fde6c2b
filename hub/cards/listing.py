"""What ``yolohub list`` and ``yolohub info`` show: typed rows and details from the catalog.

Reads the card index only (:mod:`hub.cards.catalog`) and, for the CACHED column, the cache's
blob names; never MindSpore or NumPy.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from hub.cards.card import Release
from hub.cards.catalog import CardsArg, Catalog, open_catalog
from hub.cards.sources import _make

__all__ = ["ModelInfo", "ModelSummary", "info", "list_models"]


@dataclass(frozen=True)
class ModelSummary:
    """One row of ``yolohub list``: a name@version."""

    id: str
    name: str
    version: str
    default: bool
    dataset: str | None
    metric: str | None
    claimed: float | None
    size: int | None
    cached: bool
    weak_hash: bool
    architecture: str | None
    source: str
    path: str | None


@dataclass(frozen=True)
class ModelInfo:
    """Everything ``yolohub info`` shows about one release."""

    summary: ModelSummary
    links: tuple[str, ...]
    sha256: str
    hardware: str | None
    versions: tuple[str, ...]
    architecture_args: dict
    head_params: tuple[str, ...]
    eval_protocol: dict | None
    class_count: int | None
    shadowed: tuple[str, ...]
    summary_text: str | None
    evaluation: str | None = None  # MindSpore Hub's free-text claim, as written
    exports: tuple[dict, ...] = ()
    """This version's other assets (exported MindIR / ONNX graphs): format, shape, hash, link."""


def _maybe_cached(sha256: str, digests: frozenset[str] | None) -> bool:
    """False when no blob in the cache can satisfy ``sha256`` (a full digest or a prefix)."""
    if digests is None:
        return True
    if not digests:
        return False
    sha256 = sha256.lower()
    if len(sha256) == 64:
        return sha256 in digests
    return any(d.startswith(sha256) for d in digests)


def _summary(reg: Catalog, rel: Release, defaults: set[str],
             digests: frozenset[str] | None = None) -> ModelSummary:
    from hub.assets.cache import is_cached

    card, asset = rel.card, rel.asset
    proto = card.eval_protocol
    return _make(  # a ModelSummary, 20,000 of them for a big registry
        ModelSummary,
        id=rel.id,
        name=card.name,
        version=asset.version,
        default=rel.id in defaults,
        dataset=card.dataset,
        metric=proto.metric if proto else (
            (asset.metric or "AP") if asset.claimed is not None else None),
        claimed=asset.claimed,
        size=asset.size,
        cached=_maybe_cached(asset.sha256, digests) and is_cached(asset),
        weak_hash=asset.weak,
        architecture=card.architecture.name if card.architecture else None,
        source=card.source,
        path=reg.origin(card),
    )


def list_models(pattern: str | None = None, *, cards_dirs: CardsArg = ()) -> list[ModelSummary]:
    """Every visible name@version, optionally filtered by a shell pattern or substring of the name."""
    from hub.assets.cache import blob_digests

    reg = open_catalog(cards_dirs)
    defaults = reg.defaults()
    digests = blob_digests()
    rows = []
    for rel in reg.visible():
        if pattern and not _matches(rel, pattern):
            continue
        rows.append(_summary(reg, rel, defaults, digests))
    return sorted(rows, key=lambda s: (s.name, not s.default, s.version))


def _matches(rel: Release, pattern: str) -> bool:
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatch(rel.card.name, pattern) or fnmatch.fnmatch(rel.id, pattern)
    return pattern.lower() in rel.id.lower()


def info(name: str, *, cards_dirs: CardsArg = ()) -> ModelInfo:
    """Details of one release: links, hash (and whether it is only a prefix), protocol, versions."""
    reg = open_catalog(cards_dirs)
    rel = reg.resolve(name)
    card, asset = rel.card, rel.asset
    proto = card.eval_protocol
    return ModelInfo(
        summary=_summary(reg, rel, reg.defaults()),
        links=asset.links,
        sha256=asset.sha256,
        hardware=asset.hardware,
        versions=tuple(r.asset.version for r in reg.versions(card.name)),
        architecture_args=dict(card.architecture.args) if card.architecture else {},
        head_params=card.architecture.head_params if card.architecture else (),
        eval_protocol=dict(card.front_matter.get("eval-protocol", {})) if proto else None,
        class_count=len(card.class_names) if card.class_names else None,
        shadowed=tuple(reg.origin(r.card) or "?" for r in reg.shadowed(rel)),
        summary_text=card.front_matter.get("summary"),
        evaluation=card.front_matter.get("evaluation"),
        exports=tuple(
            {"format": a.file_format, "input_shape": list(a.input_shape or ()),
             "sha256": a.sha256, "size": a.size, "link": a.links[0]}
            for a in card.assets if a.version == asset.version and a is not asset
        ),
    )
