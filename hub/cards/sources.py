"""Card sources: where cards live, in precedence order, and how each kind is read.

Sources, highest precedence first:

1. directories or registry URLs given with ``--cards`` (or ``cards_dirs=``), in the order given;
2. directories or registry URLs listed in ``YOLOHUB_CARDS`` (separated by ``;``, whitespace or,
   between directories, ``:``), in order;
3. cards installed under ``$YOLOHUB_HOME/cards`` by ``yolohub unpack``;
4. the built-in cards shipped with yolohub.

A registry URL (``https://``, loopback ``http://``, ``file://``) is read through its
``index.json`` (:mod:`hub.cards.remote`) as *stub* cards built here from the index entries;
:class:`hub.cards.catalog.Catalog` puts the sources together.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from hub._paths import builtin_cards_dir
from hub.cards.card import (
    Architecture,
    Asset,
    Card,
    EvalProtocol,
    attribute,
    eval_protocol,
    is_card_name,
)
from hub.errors import CardValidationError, Finding, InputDataError
from hub.settings import get_settings, is_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    directory: Path
    kind: str  # "cli", "env", "installed" or "builtin"
    rank: int  # 0 = highest precedence
    remote: Any = None  # hub.cards.remote.RemoteRegistry for a registry URL

    @property
    def label(self) -> str:
        return self.remote.url if self.remote is not None else str(self.directory)


def installed_cards_dir() -> Path:
    """Where ``yolohub unpack`` installs the cards of a bundle (a card source of its own)."""
    return get_settings().home / "cards"


def sources(cards_dirs: Iterable[str | os.PathLike] = ()) -> list[Source]:
    """The card sources in precedence order; unknown directories are an error."""
    out: list[Source] = []
    seen: set[Path] = set()
    for kind, dirs in (("cli", cards_dirs), ("env", get_settings().cards_path)):
        for d in dirs:
            if is_url(d):
                from hub.cards.remote import RemoteRegistry

                reg = RemoteRegistry(d)
                out.append(Source(reg.root, kind, len(out), reg))
                continue
            d = Path(d).expanduser()
            if not d.is_dir():
                origin = "--cards" if kind == "cli" else "YOLOHUB_CARDS"
                raise InputDataError(
                    f"card directory {str(d)!r} (from {origin}) does not exist or is not a "
                    "directory; create it, fix the path, or give a registry URL "
                    "(https://..., http://127.0.0.1:PORT/..., file:///...)"
                )
            real = d.resolve()
            if real in seen:  # the same directory named twice holds no second copy of its cards
                continue
            seen.add(real)
            out.append(Source(d, kind, len(out)))
    installed = installed_cards_dir()
    for kind, d in (("installed", installed), ("builtin", builtin_cards_dir())):
        if d.is_dir() and d.resolve() not in seen:
            seen.add(d.resolve())
            out.append(Source(d, kind, len(out)))
    return out


_PROTO_FIELDS = frozenset(f.name for f in fields(EvalProtocol))


def _make(cls, **fields_):
    """An instance of a frozen dataclass without its __init__ (fields already checked by the
    index schema): building 10,000 stub cards this way takes a third of the time."""
    defaults = _DEFAULTS.get(cls)
    if defaults is None:
        import dataclasses

        defaults = _DEFAULTS[cls] = {
            f.name: f.default for f in fields(cls) if f.default is not dataclasses.MISSING
        }
    obj = object.__new__(cls)
    # fields added to the class later keep their declared defaults
    object.__setattr__(obj, "__dict__", {**defaults, **fields_} if defaults else fields_)
    return obj


_DEFAULTS: dict[type, dict[str, Any]] = {}


class _StubFactory:
    """Builds stub cards, sharing the protocol and architecture objects many cards repeat."""

    def __init__(self):
        self._shared: dict[tuple, Any] = {}

    def _share(self, key: tuple, build):
        obj = self._shared.get(key)
        if obj is None:
            obj = self._shared[key] = build()
        return obj

    def card(self, entry: Mapping[str, Any]) -> Card:
        assets = tuple(
            _make(
                Asset,
                file_format=a["file-format"],
                links=tuple(a["links"]),
                sha256=a["sha256"].lower(),
                size=a.get("size"),
                version=a["version"],
                claimed=a.get("claimed"),
                hardware=a.get("hardware"),
            )
            for a in entry["assets"]
        )
        arch = None
        if entry.get("architecture"):
            args = entry.get("architecture-args") or {}
            try:
                key = ("a", entry["architecture"], tuple(args.items()))
                hash(key)
            except TypeError:  # unhashable argument values: not shared
                key = ("a", id(args))
            arch = self._share(key, lambda: Architecture(entry["architecture"], dict(args)))
        proto = None
        p = entry.get("eval-protocol")
        if isinstance(p, Mapping) and "dataset" in p and "metric" in p:
            def build():
                return eval_protocol({k: v for k, v in p.items() if attribute(k) in _PROTO_FIELDS})

            try:
                key = ("p", tuple(p.items()))
                hash(key)
            except TypeError:
                key = ("p", id(p))
            proto = self._share(key, build)
        fm = {"model-name": entry["name"]}
        for key in ("summary", "tags", "license", "evaluation", "module-type", "eval-protocol"):
            if entry.get(key) is not None:
                fm[key] = entry[key]
        return _make(
            Card,
            name=entry["name"],
            version=str(entry["model-version"]),
            path=None,  # relative to the registry URL (Registry.origin has it)
            source="remote",
            assets=assets,
            architecture=arch,
            eval_protocol=proto,
            recipe=None,
            class_names=None,
            dataset=(entry.get("dataset") or "").lower() or None,
            front_matter=fm,
            body="",
            title=entry.get("title") or "",
        )


def stub_card(entry: Mapping[str, Any], source: Source | None = None) -> Card:
    """A card as far as the index describes it (no body, no recipe): enough to list and search.

    Resolving a release replaces it with the real card, fetched and checked against the index.
    """
    return _StubFactory().card(entry)


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
    """Card files below a directory (recursively), in a stable order.

    ``README.md`` is not a card, and neither is a MindSpore Hub translation ``x_cn.md`` beside
    its card ``x.md`` (MindSpore Hub judges and loads the English card only).
    """
    return sorted(p for p in directory.rglob("*.md") if p.is_file() and is_card_name(p))


def as_card_error(path: Path, exc: Exception) -> CardValidationError:
    """``exc`` as the finding of a card that cannot be used (an unexpected error included)."""
    if isinstance(exc, CardValidationError):
        return exc
    detail = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:200]
    return CardValidationError([Finding(str(path), None, "", f"cannot be read ({detail})")])


_reported: set[tuple[str, int]] = set()


def _report_broken(path: Path, exc: CardValidationError) -> None:
    """Warn about a skipped card once per process (and again only when the file changes)."""
    try:
        key = (str(path), path.stat().st_mtime_ns)
    except OSError:
        key = (str(path), 0)
    if key in _reported:
        return
    _reported.add(key)
    first = exc.findings[0].message if exc.findings else "unreadable"
    more = f" (+{len(exc.findings) - 1} more)" if len(exc.findings) > 1 else ""
    log.warning("skipping invalid card %s: %s%s; run 'yolohub validate %s'",
                path, first, more, path)
