"""Deleting from the download cache: ``cache rm`` (one asset's claim) and ``cache prune``.

Nothing a download handed out is ever deleted from under its user: a blob goes only under its
blob lock (:func:`hub.assets.locks.blob_lock`), after checking again that no asset record refers
to it, and a download registers the file it returns under the same lock.  A partial file goes
only while its download lock is free.  Files that vanish meanwhile (another prune, a finishing
transfer) are skipped.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from hub.assets.cache import list_dir, listing, size_of
from hub.assets.cache_layout import CacheLayout, is_blob_name, partial_state_path
from hub.assets.locks import blob_lock, download_lock
from hub.assets.records import (
    asset_keys,
    blob_files,
    drop_owner,
    iter_asset_records,
    locate,
    read_asset_record,
    referencing,
)
from hub.errors import CacheError, InputDataError, LockTimeoutError
from hub.settings import Settings, get_settings


@dataclass(frozen=True)
class Removal:
    """What a cleanup removed (paths and bytes freed)."""

    removed: tuple[Path, ...]
    freed: int
    kept: tuple[str, ...] = ()  # notes on what was left in place and why

    def to_dict(self) -> dict:
        return {"removed": [str(p) for p in self.removed], "freed": self.freed, "kept": list(self.kept)}

    def __add__(self, other: Removal) -> Removal:
        return Removal(self.removed + other.removed, self.freed + other.freed,
                       self.kept + other.kept)


def remove_asset(asset, *, owner: str | None = None, settings: Settings | None = None) -> Removal:
    """Drop ``owner``'s claim on an asset; delete the blob once no asset record refers to it.

    Without ``owner`` every claim on the declared hash is dropped.  A blob still used by another
    card (another declared hash with the same content) is kept, and the result says so.
    """
    layout = CacheLayout.from_settings(settings)
    declared, ext = asset_keys(asset)
    removed: list[Path] = []
    freed = 0
    kept: list[str] = []
    rec = read_asset_record(layout, declared)
    found = locate(layout, declared, ext)
    if rec is not None:
        rest = drop_owner(layout, rec, owner)
        if rest is not None:
            kept.append(f"{rest.sha256[:12]} still used by {', '.join(sorted(rest.owners))}")
            return Removal((), 0, tuple(kept))
        removed.append(layout.asset_record_path(declared))
    partial = layout.partial_path(declared, ext)
    if partial.exists():
        try:
            freed += _remove_partial(layout, partial, declared, removed)
        except LockTimeoutError:
            kept.append(f"{partial.name}: a download is in progress")
    if found is not None:
        path, sha = found
        s = get_settings() if settings is None else settings
        with blob_lock(layout, sha, timeout=s.lock_timeout, label=f"blob {sha[:12]}"):
            removal = _remove_blob(layout, path, sha, owner)
        removed.extend(removal.removed)
        return Removal(tuple(removed), freed + removal.freed, tuple(kept) + removal.kept)
    return Removal(tuple(removed), freed, tuple(kept))


def _remove_partial(layout: CacheLayout, partial: Path, declared: str,
                    removed: list[Path]) -> int:
    """Delete a partial file and its resume state; bytes freed.

    Raises :class:`LockTimeoutError` while a download holds the asset's download lock.
    """
    freed = 0
    with download_lock(layout, declared, timeout=0, label=partial.name, record_owner=False):
        for p in (partial, partial_state_path(partial)):
            if p.exists():
                freed += size_of(p)
                p.unlink(missing_ok=True)
                removed.append(p)
    return freed


def _remove_blob(layout: CacheLayout, path: Path, sha: str, owner: str | None) -> Removal:
    """Delete blob ``sha`` unless an asset record still uses it (caller holds its blob lock)."""
    removed: list[Path] = []
    kept: list[str] = []
    freed = 0
    users = []
    for r in referencing(layout, sha):
        if owner is not None and owner in r.owners:
            # the same card reached this file through another declared hash (e.g. a legacy
            # prefix before `rehash`): that claim goes too
            rest = drop_owner(layout, r, owner)
            if rest is None:
                removed.append(layout.asset_record_path(r.declared))
                continue
            r = rest
        users.append(r)
    if users:
        kept.append(
            f"{sha[:12]} still used by "
            + ", ".join(sorted({o for r in users for o in r.owners} or {r.declared for r in users}))
        )
    elif path.exists():
        freed += size_of(path)
        path.unlink(missing_ok=True)
        removed.append(path)
        layout.record_path(sha).unlink(missing_ok=True)
    return Removal(tuple(removed), freed, tuple(kept))


def prune(*, settings: Settings | None = None, partial_age: float = 0.0) -> Removal:
    """Delete blobs no asset record refers to, stale records, quarantined files and partials.

    (Compiled graphs are the compile cache's own: :func:`hub.tasks.compile_cache.prune`;
    ``yolohub cache prune`` runs both.)

    Each blob is deleted under its blob lock, after checking again that no asset record refers
    to it: a download registers the file it returns under the same lock, so a path that
    ``download`` handed out is never pruned from under its user.  A blob whose lock is busy is
    kept.  Partials are removed only when no process is downloading them (their download lock is
    free) and they are older than ``partial_age`` seconds.  Files that vanish meanwhile (another
    prune, a finishing transfer) are skipped.
    """
    layout = CacheLayout.from_settings(settings)
    listing_ = listing(settings)
    removed: list[Path] = []
    freed = 0
    kept: list[str] = []
    present = {b.sha256 for b in listing_.blobs}
    live = {b.sha256 for b in listing_.blobs if b.referenced}
    verification = {p.stem for p in list_dir(layout.records_dir()) if p.suffix == ".json"}
    candidates = (present - live) | {s for s in verification - live if is_blob_name(s)}
    candidates |= {r.sha256 for r in iter_asset_records(layout)} - present
    for sha in sorted(candidates):
        try:
            with blob_lock(layout, sha, timeout=0, label=f"blob {sha[:12]}"):
                users = referencing(layout, sha)
                files = blob_files(layout, sha)
                if users and files:
                    continue  # in use: keep the blob, its records and its verification record
                for f in files:
                    freed += size_of(f)
                    f.unlink(missing_ok=True)
                    removed.append(f)
                rp = layout.record_path(sha)
                if rp.exists():
                    rp.unlink(missing_ok=True)
                    removed.append(rp)
                for r in users:  # asset records whose blob vanished
                    p = layout.asset_record_path(r.declared)
                    p.unlink(missing_ok=True)
                    removed.append(p)
        except LockTimeoutError:
            kept.append(f"{sha[:12]}: in use by a download")
        except PermissionError as exc:  # read-only shared cache
            kept.append(f"{sha[:12]}: {exc.strerror or exc}")
    now = time.time()
    for part in listing_.partials:
        try:
            lock = download_lock(layout, part.declared, timeout=0, label=part.path.name,
                                 record_owner=False)
        except (InputDataError, CacheError):
            kept.append(f"{part.path.name}: not a name yolohub writes; left alone")
            continue
        try:
            with lock:
                if now - part.modified < partial_age:
                    kept.append(f"{part.path.name}: younger than {partial_age:.0f} s")
                    continue
                if not part.path.exists():
                    continue
                freed += size_of(part.path)
                for p in (part.path, partial_state_path(part.path)):
                    p.unlink(missing_ok=True)
                removed.append(part.path)
        except LockTimeoutError:
            kept.append(f"{part.path.name}: a download is in progress")
    for q in sorted(list_dir(layout.quarantine_dir())):
        size = size_of(q) if not q.name.endswith(".json") else 0
        try:
            if q.is_dir():
                shutil.rmtree(q)
            else:
                q.unlink()
        except FileNotFoundError:
            continue
        freed += size
        removed.append(q)
    return Removal(tuple(removed), freed, tuple(kept))
