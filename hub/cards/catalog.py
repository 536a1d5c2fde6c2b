"""The catalog: every card yolohub can see, and the one resolver of ``name`` / ``name@version``.

:class:`Catalog` is scanned once per command from the card sources (:mod:`hub.cards.sources`:
``--cards``/``cards_dirs=``, ``YOLOHUB_CARDS``, installed, built-in) and passed down to whatever
needs a card; public functions keep their ``cards_dirs=`` keyword and accept an open Catalog
there too (:func:`open_catalog`).  A registry URL is listed and searched through its index alone,
and a card is fetched (and checked against the index's sha256) only when a release is resolved.

When two sources hold the same ``name@version``, the higher-precedence one wins and the other is
reported as shadowed by ``info``.  An unpinned ``name`` resolves to the default version
(:meth:`Catalog.default`, the one place that rule lives).
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Union

from hub.cards.card import Card, Release, load_card
from hub.cards.sources import (  # noqa: F401 (re-exported: where callers have imported them)
    Source,
    _make,
    _primary_assets,
    _report_broken,
    _StubFactory,
    as_card_error,
    card_files,
    installed_cards_dir,
    is_card_name,
    sources,
    stub_card,
)
from hub.errors import AmbiguousNameError, CardNotFoundError, CardValidationError

log = logging.getLogger(__name__)

__all__ = ["Catalog", "CardsArg", "Registry", "open_catalog", "resolve", "version_key"]


@dataclass(frozen=True)
class Catalog:
    """Every card one command can see (a snapshot), the ones that failed to parse, and the one
    resolver from ``name`` / ``name@version`` / MindSpore Hub uid to a :class:`Release`.

    Open it once per command (:func:`open_catalog`) and pass it down: scanning parses every
    local card file and reads every registry index.
    """

    releases: tuple[tuple[Source, Release], ...]
    broken: tuple[CardValidationError, ...]
    # id(stub card) -> (source, index entry) for cards of registry URLs not fetched yet
    stubs: Mapping[int, tuple[Source, Mapping]] = field(default_factory=dict)
    _fetched: dict[int, int] = field(default_factory=dict)  # id(fetched card) -> id(its stub)

    @classmethod
    def scan(cls, cards_dirs: Iterable[str | os.PathLike] = ()) -> Catalog:
        releases: list[tuple[Source, Release]] = []
        broken: list[CardValidationError] = []
        stubs: dict[int, tuple[Source, Mapping]] = {}
        for src in sources(cards_dirs):
            if src.remote is not None:
                factory = _StubFactory()
                for entry in src.remote.entries():
                    card = factory.card(entry)
                    stubs[id(card)] = (src, entry)
                    releases.extend((src, _make(Release, card=card, asset=a)) for a in card.assets)
                continue
            for path in card_files(src.directory):
                try:
                    card = load_card(path, source=src.kind)
                except Exception as exc:  # noqa: BLE001 - one bad card must not hide the others
                    broken.append(as_card_error(path, exc))
                    _report_broken(path, broken[-1])
                    continue
                releases.extend((src, Release(card, a)) for a in _primary_assets(card))
        return cls(tuple(releases), tuple(broken), stubs)

    @functools.cached_property
    def _by_name(self) -> dict[str, list[tuple[Source, Release]]]:
        out: dict[str, list[tuple[Source, Release]]] = {}
        for s, r in self.releases:
            out.setdefault(r.card.name, []).append((s, r))
        return out

    def origin(self, card: Card) -> str | None:
        """Where a card comes from: its file, or its URL for a card of a registry URL."""
        stub = self.stubs.get(id(card)) or self.stubs.get(self._fetched.get(id(card), -1))
        if stub is not None:
            return stub[0].remote.url + stub[1]["path"]
        return str(card.path) if card.path else None

    def materialize(self, rel: Release) -> Release:
        """``rel`` with its real card: fetched, checked against the index, parsed (remote
        sources); a local release passes through."""
        stub = self.stubs.get(id(rel.card))
        if stub is None:
            return rel
        src, entry = stub
        card = src.remote.load_card(entry)
        self._fetched[id(card)] = id(rel.card)
        for asset in card.assets:
            if asset.version == rel.asset.version:
                return Release(card, asset)
        raise CardNotFoundError(
            f"{rel.id}: the registry {src.remote.url} lists this version, but its card "
            f"{entry['path']} does not hold it; ask the registry owner to run 'yolohub index'"
        )

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def visible(self) -> list[Release]:
        """One release per name@version: the highest-precedence one."""
        seen: dict[str, Release] = {}
        for _, rel in sorted(self.releases, key=lambda sr: sr[0].rank):
            seen.setdefault(rel.id, rel)
        return list(seen.values())

    def shadowed(self, release: Release) -> list[Release]:
        """Other cards with ``release``'s name@version, hidden by its (better) source; never
        the release's own card."""
        same = [(s, r) for s, r in self._by_name.get(release.card.name, []) if r.id == release.id]
        same.sort(key=lambda sr: sr[0].rank)
        return [r for _, r in same[1:]
                if r.card is not release.card
                and (r.card.path is None or r.card.path != release.card.path)]

    def versions(self, name: str) -> list[Release]:
        seen: dict[str, Release] = {}
        for _, rel in sorted(self._by_name.get(name, []), key=lambda sr: sr[0].rank):
            seen.setdefault(rel.id, rel)
        return list(seen.values())

    def default(self, name: str) -> Release:
        """The default version of ``name`` — the one rule: the first asset of the newest card
        (by ``model-version``) in the highest-precedence source that has the name."""
        ranked = self._by_name.get(name, [])
        if not ranked:
            raise self._unknown(name)
        best_rank = min(s.rank for s, _ in ranked)
        cards: dict[int, Card] = {}
        for s, r in ranked:
            if s.rank == best_rank:
                cards.setdefault(id(r.card), r.card)
        newest = max(version_key(c.version) for c in cards.values())
        top = [c for c in cards.values() if version_key(c.version) == newest]
        if len(top) > 1:
            files = ", ".join(self.origin(c) or "?" for c in top)
            raise AmbiguousNameError(
                f"{name!r} is defined by several cards with model-version {top[0].version}: "
                f"{files}; pin a version (name@version) or remove one of the cards"
            )
        return Release(top[0], top[0].assets[0])

    def defaults(self) -> set[str]:
        """The ids of every name's default release (ambiguous names have none)."""
        out = set()
        for name in self.names():
            try:
                out.add(self.default(name).id)
            except AmbiguousNameError:
                pass
        return out

    def representative(self, name: str) -> Release:
        """The release that stands for ``name`` in listings: its default, or its first version
        when several cards claim the default."""
        try:
            return self.default(name)
        except AmbiguousNameError:
            return self.versions(name)[0]

    def resolve(self, spec: str | Release) -> Release:
        """The release ``spec`` names, with its full card (fetched for remote sources); a
        :class:`Release` passes through unchanged."""
        if isinstance(spec, Release):
            return spec
        return self.materialize(self._resolve(spec))

    def _resolve(self, spec: str) -> Release:
        from hub.cards.mshub import uid_parts

        uid = uid_parts(spec) if "/" in spec else None
        if uid is not None:
            return self._resolve_uid(spec, *uid)
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

    def _resolve_uid(self, spec: str, publisher: str, ms_version: str, stem: str) -> Release:
        """MindSpore Hub's ``publisher/mindspore-version/card-name`` uid.

        The card name is MindSpore Hub's card file name (``yolov3_darknet53_coco2017``), which
        is the model name plus ``_<dataset>`` for most cards; the publisher is the card's
        ``user-id`` and the version its ``mindspore-version`` (both compared case-insensitively).
        """
        hits = []
        for rel in self.visible():
            fm = rel.card.front_matter
            if str(fm.get("user-id", "")).lower() != publisher.lower():
                continue
            if str(fm.get("mindspore-version", "")) != ms_version:
                continue
            stub = self.stubs.get(id(rel.card))
            where = stub[1]["path"] if stub else (rel.card.path.as_posix() if rel.card.path else "")
            file_stem = where.rsplit("/", 1)[-1][: -len(".md")] if where.endswith(".md") else where
            ds = rel.card.dataset or ""
            if stem.lower() in {file_stem.lower(), rel.card.name.lower(),
                                f"{rel.card.name}_{ds}".lower()}:
                hits.append(rel)
        if not hits:
            raise CardNotFoundError(
                f"no card matches the MindSpore Hub uid {spec!r} (user-id {publisher!r}, "
                f"mindspore-version {ms_version!r}, card {stem!r}); 'yolohub search {stem}' "
                "finds cards by name"
            )
        by_card = {id(r.card): r for r in hits}
        best = [r for r in hits if r.asset is r.card.assets[0]] or hits
        if len(by_card) > 1:
            files = ", ".join(sorted({self.origin(r.card) or "?" for r in hits}))
            raise AmbiguousNameError(f"the uid {spec!r} matches several cards: {files}; name one")
        return best[0]

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


Registry = Catalog  # the former name


CardsArg = Union[Catalog, Sequence[Union[str, os.PathLike]], None]
"""What public functions take as ``cards_dirs=``: card directories / registry URLs, or an open
:class:`Catalog` (so one command scans once)."""


def open_catalog(cards: CardsArg = ()) -> Catalog:
    """``cards`` as a Catalog: an open one passes through, directories/URLs are scanned."""
    if isinstance(cards, Catalog):
        return cards
    return Catalog.scan(cards or ())


def resolve(spec: str | Release, *, cards_dirs: CardsArg = ()) -> Release:
    """The release ``spec`` (``name`` or ``name@version``) names; raises CardNotFoundError.

    A :class:`Release` passes through without scanning anything.
    """
    if isinstance(spec, Release):
        return spec
    return open_catalog(cards_dirs).resolve(spec)


@functools.lru_cache(maxsize=4096)
def version_key(version: str) -> tuple:
    """Natural ordering for versions: 2.10 > 2.9, 910v2 > 910."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.findall(r"\d+|[A-Za-z]+", version))
