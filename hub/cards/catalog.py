"""The registry: every card yolohub can see, and resolution of ``name`` / ``name@version``.

Card sources, highest precedence first:

1. directories or registry URLs given with ``--cards`` (or ``cards_dirs=``), in the order given;
2. directories or registry URLs listed in ``YOLOHUB_CARDS`` (separated by ``;``, whitespace or,
   between directories, ``:``), in order;
3. cards installed under ``$YOLOHUB_HOME/cards`` by ``yolohub unpack``;
4. the built-in cards shipped with yolohub.

A registry URL (``https://``, loopback ``http://``, ``file://``) is read through its
``index.json`` (:mod:`hub.cards.remote`): listing and searching use the index alone, and a card is
fetched (and checked against the index's sha256) only when a release is resolved.

When two sources hold the same ``name@version``, the higher-precedence one wins and the other is
reported as shadowed by ``info``.  An unpinned ``name`` resolves to the default version: the first
asset of the newest card (by ``model-version``) in the highest-precedence source that has the name.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hub._paths import builtin_cards_dir
from hub.cards.card import Architecture, Asset, Card, EvalProtocol, Release, load_card
from hub.errors import (
    AmbiguousNameError,
    CardNotFoundError,
    CardValidationError,
    Finding,
    InputDataError,
)
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
                kw = {k.replace("-", "_"): v for k, v in p.items()}
                return EvalProtocol(**{k: v for k, v in kw.items() if k in _PROTO_FIELDS})

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


def is_card_name(path: Path) -> bool:
    name = path.name
    if name.lower() == "readme.md":
        return False
    if name.endswith("_cn.md") and path.with_name(name[: -len("_cn.md")] + ".md").exists():
        return False
    return True


@dataclass(frozen=True)
class Registry:
    """A snapshot of all readable cards, and the ones that failed to parse."""

    releases: tuple[tuple[Source, Release], ...]
    broken: tuple[CardValidationError, ...]
    # id(stub card) -> (source, index entry) for cards of registry URLs not fetched yet
    stubs: Mapping[int, tuple[Source, Mapping]] = field(default_factory=dict)
    _fetched: dict[int, int] = field(default_factory=dict)  # id(fetched card) -> id(its stub)

    @classmethod
    def scan(cls, cards_dirs: Iterable[str | os.PathLike] = ()) -> Registry:
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

    def resolve(self, spec: str) -> Release:
        """The release ``spec`` names, with its full card (fetched for remote sources)."""
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


@functools.lru_cache(maxsize=4096)
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


def _summary(reg: Registry, rel: Release, defaults: set[str],
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
    from hub.assets.cache import blob_digests

    reg = Registry.scan(cards_dirs)
    defaults = _defaults(reg)
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
        shadowed=tuple(reg.origin(r.card) or "?" for r in reg.shadowed(rel)),
        summary_text=card.front_matter.get("summary"),
        evaluation=card.front_matter.get("evaluation"),
        exports=tuple(
            {"format": a.file_format, "input_shape": list(a.input_shape or ()),
             "sha256": a.sha256, "size": a.size, "link": a.links[0]}
            for a in card.assets if a.version == asset.version and a is not asset
        ),
    )
