"""The registry index: ``DIR/index.json``, what a registry holds, in one file a client fetches.

For every valid card below ``DIR`` the index records its name, versions, the card file's path,
sha256 and byte size, dataset, metric, claims and eval results, its assets' sha256s, sizes and
links, and when it was published.  Clients list and search a remote registry from the index
alone, fetch a card only when it is needed and refuse card bytes whose sha256 differs from the
index's.  The format is ``schema/registry-index.schema.json``.

Regeneration is incremental: a card whose bytes hash to the sha256 the previous index recorded
for the same path is not parsed again.  The file is replaced atomically (readers see the old or
the new index, never half of one), under a lock so concurrent publishers do not lose entries.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub._paths import index_schema_path
from hub.errors import CardValidationError, RegistryError

log = logging.getLogger(__name__)

INDEX_NAME = "index.json"
INDEX_FORMAT = "yolohub-index/1"


@dataclass(frozen=True)
class IndexResult:
    """What ``write_index`` did: where, how many cards, how many it had to parse again."""

    path: Path
    cards: int
    parsed: int
    reused: int
    invalid: tuple[tuple[str, str], ...]  # (relative path, first problem)
    removed: int
    catalog: Path | None = None


# --- schema ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def index_schema() -> dict:
    with open(index_schema_path(), encoding="utf-8") as f:
        return json.load(f)


@functools.lru_cache(maxsize=1)
def _validator():
    from hub.cards.schema import reference_validator

    return reference_validator(index_schema())


@functools.lru_cache(maxsize=1)
def _fast_validator():
    from hub.cards.schema import fast_validator

    return fast_validator(index_schema())


def check_index(data: Any, *, origin: str) -> dict:
    """``data`` if it is a valid index, else :class:`RegistryError` naming the first problem."""
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise RegistryError(
            f"{origin} is not a yolohub registry index: expected format {INDEX_FORMAT!r}, found "
            f"{found!r}; point --cards/YOLOHUB_CARDS at a directory or URL holding an index.json "
            "written by 'yolohub index' or 'yolohub publish'"
        )
    from hub.cards.schema import fast_is_valid

    if fast_is_valid(_fast_validator(), data):
        return data
    err = next(iter(sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.path)))), None)
    if err is not None:
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise RegistryError(
            f"{origin} fails the registry index schema at {where}: {err.message[:200]}; "
            "regenerate it with 'yolohub index DIR' on the registry"
        )
    return data


# --- building ----------------------------------------------------------------------------------


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_for(card, *, rel: str, sha256: str, size: int, mtime: float) -> dict[str, Any]:
    """The index entry of a parsed card (``rel`` is its path below the registry, '/'-separated)."""
    fm: Mapping[str, Any] = card.front_matter
    published = fm.get("update-time")
    title = card.title.strip().lstrip("#").strip() or None
    entry: dict[str, Any] = {
        "name": card.name,
        "path": rel,
        "sha256": sha256,
        "size": size,
        "model-version": card.version,
        "versions": [a.version for a in card.assets],
        "title": title,
        "summary": card.summary,
        "tags": list(card.tags),
        "dataset": card.dataset,
        "metric": card.metric,
        "metrics": card.stated_metrics,
        "evaluation": str(fm["evaluation"]) if fm.get("evaluation") is not None else None,
        "architecture": card.architecture.name if card.architecture else None,
        "architecture-args": dict(card.architecture.args) if card.architecture else {},
        "eval-protocol": _plain(fm.get("eval-protocol") or None),
        "eval-results": _plain(list(fm.get("eval-results") or [])),
        "module-type": fm.get("module-type"),
        "license": fm.get("license"),
        "author": fm.get("author"),
        "user-id": fm.get("user-id"),
        "mindspore-version": fm.get("mindspore-version"),
        "published": str(published) if published else _iso(mtime),
        "assets": [
            {
                "version": a.version,
                "file-format": a.file_format,
                "sha256": a.sha256,
                "size": a.size,
                "claimed": a.claimed,
                "hardware": a.hardware,
                "links": list(a.links),
            }
            for a in card.assets
        ],
    }
    return entry


def _plain(obj: Any) -> Any:
    """JSON-safe copy (YAML may have produced dates)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def read_index(directory: str | os.PathLike) -> dict | None:
    """The index.json of a registry directory, or None when there is none (or it is unreadable)."""
    path = Path(directory) / INDEX_NAME
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == INDEX_FORMAT else None


def scan_cards(root: Path) -> list[str]:
    """Relative '/'-paths of the card files below ``root`` (what ``registry.card_files`` finds),
    sorted; os.scandir instead of pathlib because a registry may hold 10,000 cards."""
    from hub.cards.card import is_card_name

    out: list[str] = []
    stack = [("", str(root))]
    while stack:
        prefix, directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for e in entries:
            if e.is_dir(follow_symlinks=False):  # as pathlib.rglob: no symlinked directories
                stack.append((prefix + e.name + "/", e.path))
            elif e.name.endswith(".md") and e.is_file() and is_card_name(Path(e.path)):
                out.append(prefix + e.name)
    return sorted(out)


def build_index(
    directory: str | os.PathLike, *, previous: Mapping | None = None
) -> tuple[dict, int, int]:
    """(index, cards parsed, cards reused) for every card file below ``directory``."""
    from hub.cards.card import parse_card

    root = Path(directory)
    old = {e["path"]: e for e in (previous or {}).get("cards", []) if isinstance(e, dict)}
    old_invalid = {e["path"]: e for e in (previous or {}).get("invalid", []) if isinstance(e, dict)}
    entries, invalid = [], []
    parsed = reused = 0
    for rel in scan_cards(root):
        path = root / rel
        try:
            raw = path.read_bytes()
            st = path.stat()
        except OSError as exc:
            invalid.append({"path": rel, "error": f"cannot read: {exc.strerror}", "sha256": None})
            continue
        sha = hashlib.sha256(raw).hexdigest()
        prev = old.get(rel)
        if prev is not None and prev.get("sha256") == sha:
            entries.append(prev)
            reused += 1
            continue
        if rel in old_invalid and old_invalid[rel].get("sha256") == sha:
            invalid.append(old_invalid[rel])
            reused += 1
            continue
        parsed += 1
        try:
            text = raw.decode("utf-8-sig")
            card = parse_card(text, file=rel, path=path)
        except (CardValidationError, UnicodeDecodeError) as exc:
            first = str(exc.findings[0]) if isinstance(exc, CardValidationError) else str(exc)
            invalid.append({"path": rel, "error": first[:500], "sha256": sha})
            continue
        entries.append(entry_for(card, rel=rel, sha256=sha, size=len(raw), mtime=st.st_mtime))
    entries.sort(key=lambda e: (e["name"], e["path"]))
    from hub import __version__

    index = {
        "format": INDEX_FORMAT,
        "generated": _iso(_dt.datetime.now(_dt.timezone.utc).timestamp()),
        "generator": f"yolohub {__version__}",
        "count": len(entries),
        "cards": entries,
        "invalid": invalid,
    }
    return index, parsed, reused


def dump_index(index: Mapping) -> str:
    """Compact JSON with one card per line (small to fetch, readable in a diff)."""
    head = {k: v for k, v in index.items() if k not in ("cards", "invalid")}
    compact = {"ensure_ascii": False, "separators": (",", ":")}
    cards = ",\n".join(json.dumps(e, **compact) for e in index.get("cards", []))
    return (
        json.dumps(head, **compact)[:-1]
        + (',"cards":[\n' if head else '{"cards":[\n')
        + cards
        + '\n],"invalid":'
        + json.dumps(index.get("invalid", []), **compact)
        + "}\n"
    )


def write_index(
    directory: str | os.PathLike,
    *,
    catalog: bool = True,
    url: str | None = None,
    progress: bool | None = None,
) -> IndexResult:
    """Regenerate ``directory/index.json`` (and the HTML catalog) incrementally and atomically.

    ``url`` is where the registry is served (shown in the catalog's snippets); once given it is
    kept in the index for later runs.
    """
    from filelock import FileLock

    from hub.fileio import write_atomic
    root = Path(directory)
    if not root.is_dir():
        raise RegistryError(f"cannot index {str(root)!r}: it is not a directory of cards")
    with FileLock(str(root / ".index.lock")):
        previous = read_index(root)
        index, parsed, reused = build_index(root, previous=previous)
        url = url or (previous or {}).get("url")
        if url:
            index["url"] = url
        before = {e["path"] for e in (previous or {}).get("cards", [])}
        removed = len(before - {e["path"] for e in index["cards"]})
        check_index(index, origin=str(root / INDEX_NAME))
        write_atomic(root / INDEX_NAME, dump_index(index))
        page = None
        if catalog:
            from hub.cards.pages import write_catalog

            page = write_catalog(root, index, url=url, progress=progress)
    invalid = tuple((e["path"], e["error"]) for e in index["invalid"])
    return IndexResult(root / INDEX_NAME, len(index["cards"]), parsed, reused, invalid, removed, page)


def reindex_containing(card_path: str | os.PathLike) -> Path | None:
    """Refresh the index (and catalog) of the registry that holds ``card_path``, if it has one.

    A card changed in place (``yolohub eval --update-card``, ``yolohub rehash``) must not fall
    out of step with its index, or clients would refuse it as edited behind the index's back.
    """
    from hub.errors import HubError

    here = Path(card_path).resolve().parent
    for d in [here, *here.parents][:4]:
        if (d / INDEX_NAME).is_file():
            try:
                write_index(d)
            except (HubError, OSError) as exc:
                log.warning("%s changed but %s was not updated (%s); run 'yolohub index %s'",
                            card_path, d / INDEX_NAME, exc, d)
            return d
    return None
