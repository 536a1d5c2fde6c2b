"""What the download cache holds: the state of one asset, a listing of everything, blob digests.

Read-only questions the CLI and the loader ask, answered from ``stat`` calls and small JSON
reads (never a hash).  Where things live is :mod:`hub.assets.cache_layout`; the records are
:mod:`hub.assets.records`; deleting is :mod:`hub.assets.cleanup`; filling it is
:mod:`hub.assets.download`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hub.assets.cache_layout import DIGEST_NAME, CacheLayout, partial_state_path
from hub.assets.integrity import is_weak
from hub.assets.records import (
    AssetRecord,
    asset_keys,
    iter_asset_records,
    iter_blobs,
    load_record,
    locate,
)
from hub.errors import CacheError, InputDataError
from hub.fileio import read_json_dict
from hub.settings import Settings


@dataclass(frozen=True)
class AssetStatus:
    """The cache state of one card asset, cheap to compute (stat calls, small JSON reads).

    ``state``: ``verified`` (blob present and unchanged since its hash was checked), ``changed``
    (blob present but modified since; the next download re-hashes it), ``partial`` (an unfinished
    transfer exists) or ``missing``.
    """

    state: str
    weak: bool
    declared: str
    path: Path | None = None
    sha256: str | None = None
    size: int | None = None
    partial_bytes: int = 0
    verified_at: float | None = None

    @property
    def cached(self) -> bool:
        return self.state == "verified"

    def describe(self) -> str:
        weak = ", weak hash (sha256 prefix only; `yolohub rehash` pins it)" if self.weak else ""
        if self.state == "verified":
            return f"cached{weak}"
        if self.state == "partial":
            return f"partial ({self.partial_bytes} bytes){weak}"
        return f"{self.state}{weak}"


def status(asset, settings: Settings | None = None) -> AssetStatus:
    """Cache state of a card asset (an object with ``sha256`` and ``file_format``), no hashing."""
    layout = CacheLayout.from_settings(settings)
    declared, ext = asset_keys(asset)
    weak = is_weak(declared)
    found = locate(layout, declared, ext)
    if found is not None:
        path, sha = found
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            st = None
        if st is not None:
            rec = load_record(layout, sha)
            ok = rec is not None and rec.sha256 == sha and rec.matches_stat(st)
            return AssetStatus(
                "verified" if ok else "changed",
                weak,
                declared,
                path,
                sha,
                st.st_size,
                verified_at=rec.verified_at if ok else None,
            )
    partial = layout.partial_path(declared, ext)
    try:
        n = partial.stat().st_size
    except FileNotFoundError:
        return AssetStatus("missing", weak, declared)
    return AssetStatus("partial", weak, declared, partial_bytes=n)


def is_cached(asset, settings: Settings | None = None) -> bool:
    """True when the asset's verified file is in the cache (one stat + a small JSON read)."""
    try:
        return status(asset, settings).cached
    except (InputDataError, CacheError):
        return False


# --- listing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlobEntry:
    sha256: str
    path: Path
    size: int
    owners: tuple[str, ...]
    declared: tuple[str, ...]
    verified_at: float | None
    state: str  # "verified" | "changed"

    @property
    def referenced(self) -> bool:
        return bool(self.declared)


@dataclass(frozen=True)
class PartialEntry:
    path: Path
    size: int
    declared: str
    url: str | None
    modified: float


@dataclass(frozen=True)
class CacheListing:
    root: Path
    blobs: tuple[BlobEntry, ...]
    partials: tuple[PartialEntry, ...]
    quarantined: tuple[Path, ...]

    @property
    def total_bytes(self) -> int:
        return (
            sum(b.size for b in self.blobs)
            + sum(p.size for p in self.partials)
            + sum(size_of(q) for q in self.quarantined)
        )

    def to_dict(self) -> dict:
        return {
            "root": str(self.root),
            "total_bytes": self.total_bytes,
            "blobs": [
                {
                    "sha256": b.sha256,
                    "path": str(b.path),
                    "size": b.size,
                    "owners": list(b.owners),
                    "declared": list(b.declared),
                    "weak": any(is_weak(d) for d in b.declared),
                    "state": b.state,
                    "verified_at": b.verified_at,
                    "referenced": b.referenced,
                }
                for b in self.blobs
            ],
            "partials": [
                {"path": str(p.path), "size": p.size, "declared": p.declared, "url": p.url}
                for p in self.partials
            ],
            "quarantined": [{"path": str(q), "size": size_of(q)} for q in self.quarantined],
        }


def size_of(p: Path) -> int:
    """The size of ``p`` in bytes; 0 when it vanished or cannot be read."""
    try:
        return p.stat().st_size
    except OSError:
        return 0


def listing(settings: Settings | None = None) -> CacheListing:
    """Everything in the cache: blobs with their owners, unfinished transfers, quarantine."""
    layout = CacheLayout.from_settings(settings)
    by_sha: dict[str, list[AssetRecord]] = {}
    for rec in iter_asset_records(layout):
        by_sha.setdefault(rec.sha256, []).append(rec)
    blobs = []
    for sha, path in iter_blobs(layout):
        recs = by_sha.get(sha, [])
        owners = tuple(sorted({o for r in recs for o in r.owners}))
        try:
            st = path.stat()
        except FileNotFoundError:  # removed while we listed (prune, cache rm)
            continue
        vrec = load_record(layout, sha)
        ok = vrec is not None and vrec.sha256 == sha and vrec.matches_stat(st)
        blobs.append(
            BlobEntry(
                sha,
                path,
                st.st_size,
                owners,
                tuple(sorted(r.declared for r in recs)),
                vrec.verified_at if ok else None,
                "verified" if ok else "changed",
            )
        )
    partials = []
    pdir = layout.partial_dir()
    if pdir.is_dir():
        for p in sorted(pdir.glob("*.partial")):
            meta = read_json_dict(partial_state_path(p))
            try:
                st = p.stat()
            except FileNotFoundError:  # a transfer finished (or was discarded) meanwhile
                continue
            partials.append(
                PartialEntry(p, st.st_size, p.name.split(".")[0], meta.get("url"), st.st_mtime)
            )
    qdir = layout.quarantine_dir()
    quarantined = tuple(sorted(q for q in list_dir(qdir) if not q.name.endswith(".json")))
    return CacheListing(layout.root, tuple(blobs), tuple(partials), quarantined)


def list_dir(d: Path) -> list[Path]:
    """The entries of ``d``; none when it does not exist."""
    try:
        return list(d.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def blob_digests(settings: Settings | None = None) -> frozenset[str]:
    """The full sha256 of every blob file in the cache, from one directory walk (no hashing).

    Lets ``yolohub list`` rule out the uncached majority of a 10,000-card registry without a
    ``stat`` per card; :func:`is_cached` still decides for the rest.
    """
    root = CacheLayout.from_settings(settings).blobs_dir()
    out = set()
    try:
        shards = list(os.scandir(root))
    except OSError:
        return frozenset()
    for shard in shards:
        try:
            for e in os.scandir(shard.path):
                sha = e.name.split(".", 1)[0]
                if DIGEST_NAME.match(sha):
                    out.add(sha)
        except OSError:
            continue
    return frozenset(out)
