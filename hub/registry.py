"""The registry: every card yolohub can see, and resolution of ``name`` / ``name@version``.

Card sources, highest precedence first:

1. directories given with ``--cards DIR`` (or ``cards_dirs=``), in the order given;
2. directories listed in ``YOLOHUB_CARDS`` (``:``-separated), in order;
3. the built-in cards shipped with yolohub.

When two sources hold the same ``name@version``, the higher-precedence one wins and the other is
reported as shadowed by ``info``.  An unpinned ``name`` resolves to the default version: the first
asset of the newest card (by ``model-version``) in the highest-precedence source that has the name.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hub._paths import builtin_cards_dir
from hub.card import Card, Release, load_card
from hub.errors import AmbiguousNameError, CardNotFoundError, CardValidationError, InputDataError
from hub.settings import get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    directory: Path
    kind: str  # "cli", "env" or "builtin"
    rank: int  # 0 = highest precedence


def sources(cards_dirs: Iterable[str | os.PathLike] = ()) -> list[Source]:
    """The card directories in precedence order; unknown directories are an error."""
    out: list[Source] = []
    for kind, dirs in (("cli", cards_dirs), ("env", get_settings().cards_path)):
        for d in dirs:
            d = Path(d).expanduser()
            if not d.is_dir():
                origin = "--cards" if kind == "cli" else "YOLOHUB_CARDS"
                raise InputDataError(
                    f"card directory {str(d)!r} (from {origin}) does not exist or is not a "
                    "directory; create it or fix the path"
                )
            out.append(Source(d, kind, len(out)))
    out.append(Source(builtin_cards_dir(), "builtin", len(out)))
    return out


def _primary_assets(card: Card) -> list:
    """One asset per version: the first listed (other formats of it are ``Release.with_format``)."""
    seen: set[str] = set()
    out = []
    for a in card.assets:
        if a.version not in seen:
            seen.add(a.version)
            out.append(a)
    return out


def card_files(directory: Path) -> list[Path]:
    """Card files below a directory (recursively), in a stable order."""
    return sorted(p for p in directory.rglob("*.md") if p.is_file() and p.name.lower() != "readme.md")


@dataclass(frozen=True)
class Registry:
    """A snapshot of all readable cards, and the ones that failed to parse."""

    releases: tuple[tuple[Source, Release], ...]
    broken: tuple[CardValidationError, ...]

    @classmethod
    def scan(cls, cards_dirs: Iterable[str | os.PathLike] = ()) -> Registry:
        releases: list[tuple[Source, Release]] = []
        broken: list[CardValidationError] = []
        for src in sources(cards_dirs):
            for path in card_files(src.directory):
                try:
                    card = load_card(path, source=src.kind)
                except CardValidationError as exc:
                    broken.append(exc)
                    log.warning("skipping invalid card %s (run 'yolohub validate %s')", path, path)
                    continue
                releases.extend((src, Release(card, a)) for a in _primary_assets(card))
        return cls(tuple(releases), tuple(broken))

    def names(self) -> list[str]:
        return sorted({r.card.name for _, r in self.releases})

    def visible(self) -> list[Release]:
        """One release per name@version: the highest-precedence one."""
        seen: dict[str, Release] = {}
        for _, rel in sorted(self.releases, key=lambda sr: sr[0].rank):
            seen.setdefault(rel.id, rel)
        return list(seen.values())

    def shadowed(self, release: Release) -> list[Release]:
        return [r for _, r in self.releases if r.id == release.id and r is not release]

    def versions(self, name: str) -> list[Release]:
        return [r for r in self.visible() if r.card.name == name]

    def default(self, name: str) -> Release:
        ranked = [(s, r) for s, r in self.releases if r.card.name == name]
        if not ranked:
            raise self._unknown(name)
        best_rank = min(s.rank for s, _ in ranked)
        cards: dict[Path | None, Card] = {}
        for s, r in ranked:
            if s.rank == best_rank:
                cards.setdefault(r.card.path, r.card)
        newest = max(version_key(c.version) for c in cards.values())
        top = [c for c in cards.values() if version_key(c.version) == newest]
        if len(top) > 1:
            files = ", ".join(str(c.path) for c in top)
            raise AmbiguousNameError(
                f"{name!r} is defined by several cards with model-version {top[0].version}: "
                f"{files}; pin a version (name@version) or remove one of the cards"
            )
        return Release(top[0], top[0].assets[0])

    def resolve(self, spec: str) -> Release:
        name, sep, version = spec.strip().partition("@")
        if not name or (sep and not version):
            raise CardNotFoundError(
                f"expected a model name or name@version, found {spec!r}; 'yolohub list' shows them"
            )
        if not sep:
            return self.default(name)
        for rel in self.versions(name):
            if rel.asset.version == version:
                return rel
        if not self.versions(name):
            raise self._unknown(name)
        have = ", ".join(f"{name}@{r.asset.version}" for r in self.versions(name))
        raise CardNotFoundError(f"{name!r} has no version {version!r}; available: {have}")

    def _unknown(self, name: str) -> CardNotFoundError:
        names = self.names()
        prefixed = [n for n in names if n.startswith(name)]
        if len(prefixed) > 1:
            return AmbiguousNameError(
                f"{name!r} is not a model name but starts several: {', '.join(prefixed)}; name one"
            )
        close = prefixed or difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        where = " (some cards were skipped as invalid; run 'yolohub validate')" if self.broken else ""
        return CardNotFoundError(
            f"no card named {name!r}{hint} ('yolohub list' shows the {len(names)} known "
            f"models{where})"
        )


def version_key(version: str) -> tuple:
    """Natural ordering for versions: 2.10 > 2.9, 910v2 > 910."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.findall(r"\d+|[A-Za-z]+", version))


# --- public API -------------------------------------------------------------------------------


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
    exports: tuple[dict, ...] = ()
    """This version's other assets (exported MindIR / ONNX graphs): format, shape, hash, link."""


def _summary(reg: Registry, rel: Release, defaults: set[str]) -> ModelSummary:
    from hub.cache import is_cached

    card, asset = rel.card, rel.asset
    proto = card.eval_protocol
    return ModelSummary(
        id=rel.id,
        name=card.name,
        version=asset.version,
        default=rel.id in defaults,
        dataset=card.dataset,
        metric=proto.metric if proto else ("AP" if asset.claimed is not None else None),
        claimed=asset.claimed,
        size=asset.size,
        cached=is_cached(asset),
        weak_hash=asset.weak,
        architecture=card.architecture.name if card.architecture else None,
        source=card.source,
        path=str(card.path) if card.path else None,
    )


def _defaults(reg: Registry) -> set[str]:
    out = set()
    for name in reg.names():
        try:
            out.add(reg.default(name).id)
        except AmbiguousNameError:
            pass
    return out


def list_models(pattern: str | None = None, *, cards_dirs: Sequence = ()) -> list[ModelSummary]:
    """Every visible name@version, optionally filtered by a shell pattern or substring of the name."""
    reg = Registry.scan(cards_dirs)
    defaults = _defaults(reg)
    rows = []
    for rel in reg.visible():
        if pattern and not _matches(rel, pattern):
            continue
        rows.append(_summary(reg, rel, defaults))
    return sorted(rows, key=lambda s: (s.name, not s.default, s.version))


def _matches(rel: Release, pattern: str) -> bool:
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatch(rel.card.name, pattern) or fnmatch.fnmatch(rel.id, pattern)
    return pattern.lower() in rel.id.lower()


def resolve(spec: str, *, cards_dirs: Sequence = ()) -> Release:
    """The release ``spec`` (``name`` or ``name@version``) names; raises CardNotFoundError."""
    return Registry.scan(cards_dirs).resolve(spec)


def info(name: str, *, cards_dirs: Sequence = ()) -> ModelInfo:
    """Details of one release: links, hash (and whether it is only a prefix), protocol, versions."""
    reg = Registry.scan(cards_dirs)
    rel = reg.resolve(name)
    card, asset = rel.card, rel.asset
    proto = card.eval_protocol
    return ModelInfo(
        summary=_summary(reg, rel, _defaults(reg)),
        links=asset.links,
        sha256=asset.sha256,
        hardware=asset.hardware,
        versions=tuple(r.asset.version for r in reg.versions(card.name)),
        architecture_args=dict(card.architecture.args) if card.architecture else {},
        head_params=card.architecture.head_params if card.architecture else (),
        eval_protocol=dict(card.front_matter.get("eval-protocol", {})) if proto else None,
        class_count=len(card.class_names) if card.class_names else None,
        shadowed=tuple(str(r.card.path) for r in reg.shadowed(rel)),
        summary_text=card.front_matter.get("summary"),
        exports=tuple(
            {"format": a.file_format, "input_shape": list(a.input_shape or ()),
             "sha256": a.sha256, "size": a.size, "link": a.links[0]}
            for a in card.assets if a.version == asset.version and a is not asset
        ),
    )
