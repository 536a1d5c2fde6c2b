"""Cleaning an asset store: remove the files no card references, and nothing else.

``publish`` only ever adds files to a store (``<store>/<name>/<version>/<name>-<version>-<hex>.<ext>``),
so replaced or abandoned checkpoints accumulate there.  ``gc_store`` is the one explicit way to
remove them: it reads every card of the registries it is given and removes only files that (a)
look like publish output and (b) no asset link of those cards points at.  Anything else in the
store (an index, a README, someone's own files) is never touched.  It holds the store lock that
``publish`` takes while it places a file and writes its card, so it never sees one without the
other.  ``dry_run`` lists what would go.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from hub.errors import InputDataError, PublishError

# a file publish writes: <name>/<version>/<name>-<version>-<8 or 64 hex>.<format>
_PUBLISHED = re.compile(r"(?P<stem>.+)-(?P<hex>[0-9a-f]{8}|[0-9a-f]{64})\.(ckpt|mindir|air|onnx|om)")
TEMP_AGE = 24 * 3600  # a publish's temporary copy idle this long was abandoned


@dataclass(frozen=True)
class StoreCleanup:
    """What ``gc_store`` removed (or, with ``dry_run``, would remove) from a store."""

    store: Path
    removed: tuple[Path, ...]
    freed: int
    kept: int  # published files some card references
    dry_run: bool

    def to_dict(self) -> dict:
        return {"store": str(self.store), "removed": [str(p) for p in self.removed],
                "freed": self.freed, "kept": self.kept, "dry_run": self.dry_run}


def gc_store(
    store: str | os.PathLike,
    *,
    registries: Iterable[str | os.PathLike],
    dry_run: bool = False,
    temp_age: float = TEMP_AGE,
) -> StoreCleanup:
    """Remove the published files of ``store`` that no card in ``registries`` links to.

    Every registry that publishes into the store must be named: a file only the cards of an
    unnamed registry use would look unreferenced.  A card that does not validate makes the
    clean-up refuse (``PublishError``), since what it references cannot be known.
    """
    from filelock import FileLock

    from hub.assets.store_write import STORE_LOCK

    store = Path(store)
    registries = [Path(r) for r in registries]
    if not store.is_dir():
        raise InputDataError(f"store {str(store)!r} is not a directory")
    if not registries:
        raise InputDataError("name every registry whose cards use this store (--registry DIR); "
                             "without them every file would look unreferenced")
    for reg in registries:
        if not reg.is_dir():
            raise InputDataError(f"registry {str(reg)!r} is not a directory")
    with FileLock(str(store / STORE_LOCK)):
        links = _links(registries)
        removed: list[Path] = []
        freed = kept = 0
        now = time.time()
        for path in sorted(store.rglob("*")):
            if not path.is_file() or path.is_symlink():
                continue
            rel = path.relative_to(store)
            if _is_abandoned_temp(path, now, temp_age):
                pass
            elif not _is_published(rel):
                continue
            elif _referenced(path, rel, links):
                kept += 1
                continue
            size = path.stat().st_size
            if not dry_run:
                path.unlink()
                _remove_empty_parents(path.parent, store)
            removed.append(path)
            freed += size
    return StoreCleanup(store, tuple(removed), freed, kept, dry_run)


def _links(registries: list[Path]) -> tuple[set[Path], list[str]]:
    """(local files named by file:// links, URL paths of the other links) of every card."""
    from hub.cards.card import load_card
    from hub.cards.catalog import card_files

    files: set[Path] = set()
    paths: list[str] = []
    bad: list[str] = []
    for reg in registries:
        for card_path in card_files(reg):
            try:
                card = load_card(card_path)
            except Exception:  # noqa: BLE001 - unreadable for whatever reason: refuse below
                bad.append(str(card_path))
                continue
            for asset in card.assets:
                for link in asset.links:
                    parts = urlsplit(link)
                    if parts.scheme == "file":
                        files.add(Path(unquote(parts.path)).resolve())
                    else:
                        paths.append(unquote(parts.path))
    if bad:
        raise PublishError(
            f"cannot tell which store files {len(bad)} invalid card(s) reference: "
            f"{', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}; fix them (`yolohub validate`) "
            "or move them out of the registry, then clean the store"
        )
    return files, paths


def _is_published(rel: Path) -> bool:
    parts = rel.parts
    if len(parts) != 3:
        return False
    m = _PUBLISHED.fullmatch(parts[2])
    return m is not None and m.group("stem") == f"{parts[0]}-{parts[1]}"


def _is_abandoned_temp(path: Path, now: float, age: float) -> bool:
    if not path.name.startswith(".publish-"):
        return False
    try:
        return now - path.stat().st_mtime > age
    except OSError:
        return False


def _referenced(path: Path, rel: Path, links: tuple[set[Path], list[str]]) -> bool:
    files, paths = links
    if path.resolve() in files:
        return True
    tail = "/" + rel.as_posix()
    return any(p.endswith(tail) for p in paths)


def _remove_empty_parents(directory: Path, store: Path) -> None:
    while directory != store:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


__all__ = ["StoreCleanup", "gc_store"]
