"""The cache's bookkeeping: which blob satisfies a declared hash, who uses it, when it was hashed.

Two kinds of small JSON file (see :mod:`hub.assets.cache_layout` for where they live):

- an :class:`AssetRecord` per declared hash (a card's full digest or legacy prefix): the blob that
  satisfies it and its *owners* (``name@version`` -> card, url), which cleanup respects;
- a :class:`~hub.assets.integrity.VerificationRecord` per blob: what the file looked like when
  its hash was computed, so a later check costs one ``stat``.

:func:`locate` answers "which cached blob satisfies this declared hash" from these and the blob
names.  Nothing here opens a connection or takes a lock; callers that must not race with cleanup
hold the blob lock (:mod:`hub.assets.locks`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hub.assets.cache_layout import CacheLayout, file_extension, full_digest, is_blob_name
from hub.assets.integrity import (
    VerificationRecord,
    is_weak,
    normalize_sha256,
    write_atomic,
)
from hub.errors import InputDataError

# --- per-asset records -------------------------------------------------------------------------


@dataclass(frozen=True)
class AssetRecord:
    """What the cache knows about one declared hash: which blob satisfies it and who uses it."""

    declared: str
    sha256: str
    ext: str
    size: int
    owners: dict = field(default_factory=dict)  # "name@version" -> {"card": ..., "url": ...}

    @property
    def weak(self) -> bool:
        return is_weak(self.declared)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def load(cls, path: Path) -> AssetRecord | None:
        try:
            d = json.loads(path.read_text())
            rec = cls(
                declared=normalize_sha256(d["declared"]),
                sha256=full_digest(d["sha256"]),
                ext=file_extension(d["ext"]),
                size=int(d["size"]),
                owners=dict(d.get("owners") or {}),
            )
        except (OSError, ValueError, KeyError, TypeError, InputDataError):
            return None
        return rec


def read_asset_record(layout: CacheLayout, declared: str) -> AssetRecord | None:
    return AssetRecord.load(layout.asset_record_path(declared))


def write_asset_record(
    layout: CacheLayout,
    *,
    declared: str,
    sha256: str,
    ext: str,
    size: int,
    owner: str | None = None,
    owner_info: dict | None = None,
) -> AssetRecord:
    """Create or update the record of ``declared``; adds ``owner`` to its owners."""
    declared = normalize_sha256(declared)
    old = read_asset_record(layout, declared)
    owners = dict(old.owners) if old and old.sha256 == sha256 else {}
    if owner:
        owners[owner] = dict(owner_info or {})
    rec = AssetRecord(declared, full_digest(sha256), file_extension(ext), int(size), owners)
    write_atomic(layout.asset_record_path(declared), rec.to_json())
    return rec


def drop_owner(layout: CacheLayout, record: AssetRecord, owner: str | None) -> AssetRecord | None:
    """Withdraw ``owner``'s claim (every claim when None) from ``record`` on disk.

    The record is rewritten with the remaining owners, or deleted when none is left; returns the
    rewritten record, or None when it was deleted.
    """
    rest = {k: v for k, v in record.owners.items() if owner is not None and k != owner}
    path = layout.asset_record_path(record.declared)
    if not rest:
        path.unlink(missing_ok=True)
        return None
    kept = AssetRecord(record.declared, record.sha256, record.ext, record.size, rest)
    write_atomic(path, kept.to_json())
    return kept


def iter_asset_records(layout: CacheLayout) -> Iterator[AssetRecord]:
    d = layout.asset_records_dir()
    if not d.is_dir():
        return
    for p in sorted(d.glob("*.json")):
        rec = AssetRecord.load(p)
        if rec is not None:
            yield rec


def referencing(layout: CacheLayout, sha: str) -> list[AssetRecord]:
    """Asset records that point at blob ``sha``, read now (not from an earlier listing)."""
    return [r for r in iter_asset_records(layout) if r.sha256 == sha]


# --- verification records ----------------------------------------------------------------------


def store_record(layout: CacheLayout, record: VerificationRecord) -> None:
    record.save(layout.record_path(record.sha256))


def load_record(layout: CacheLayout, sha256: str) -> VerificationRecord | None:
    return VerificationRecord.load(layout.record_path(sha256))


def drop_record(layout: CacheLayout, sha256: str) -> None:
    layout.record_path(sha256).unlink(missing_ok=True)


# --- blobs -------------------------------------------------------------------------------------


def iter_blobs(layout: CacheLayout) -> Iterator[tuple[str, Path]]:
    """(full digest, path) of every blob file, in name order."""
    base = layout.blobs_dir()
    if not base.is_dir():
        return
    for p in sorted(base.glob("??/*")):
        stem = p.name.partition(".")[0]
        if is_blob_name(stem) and p.is_file():
            yield stem, p


def blob_files(layout: CacheLayout, sha: str) -> list[Path]:
    """Every file named after blob ``sha`` (normally one; more if its extension differs)."""
    try:
        entries = list(layout.blob_shard(sha).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [p for p in entries if p.name.split(".")[0] == sha and p.is_file()]


def locate(layout: CacheLayout, declared: str, ext: str) -> tuple[Path, str] | None:
    """The blob path and full digest that satisfy ``declared``, if the cache knows one."""
    declared = normalize_sha256(declared)
    if not is_weak(declared):
        return layout.blob_path(declared, ext), declared
    rec = read_asset_record(layout, declared)
    if rec is not None and rec.sha256.startswith(declared):
        return layout.blob_path(rec.sha256, rec.ext), rec.sha256
    # a blob fetched for another card may already satisfy the prefix (names are digests)
    shard = layout.blob_shard(declared)
    matches = sorted(shard.glob(f"{declared}*.{ext}")) if shard.is_dir() else []
    if len(matches) == 1:
        sha = matches[0].name.split(".")[0]
        if is_blob_name(sha):
            return matches[0], sha
    return None


def asset_keys(asset) -> tuple[str, str]:
    """(declared hash, extension) of a card asset (an object with ``sha256``, ``file_format``)."""
    return normalize_sha256(asset.sha256, what="asset sha256"), file_extension(
        getattr(asset, "file_format", None)
    )
