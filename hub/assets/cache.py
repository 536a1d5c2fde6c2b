"""The on-disk cache: content-addressed blobs, verification records, asset records, cleanup.

Layout under ``get_settings().home`` (no network here, only path arithmetic and small JSON files)::

    blobs/sha256/<aa>/<sha256>.<ext>   verified files, named by their full digest: two cards that
                                       share a file share one copy
    records/<sha256>.json              verification record of a blob (size, mtime_ns, inode, ...)
    assets/<declared>.json             per-asset record: the hash a card declares (full or legacy
                                       prefix) -> blob digest, owners (name@version -> card, url)
    partial/<declared>.<ext>.partial   bytes of an unfinished transfer (+ ``.json`` resume state)
    locks/<declared>.lock              cross-process download lock (+ ``.owner``: who holds it)
    locks/<sha256>.blob.lock           the lock of one blob: held while a download moves a file
                                       in and registers it, and while cleanup decides to delete it
    quarantine/                        files whose hash did not match, kept for inspection

Every name is derived from hex digests and a checked extension, and every path goes through
:func:`safe_join`, so nothing from a URL, a header or a card can point outside the root.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hub.assets.integrity import (
    FULL_LENGTH,
    VerificationRecord,
    is_weak,
    normalize_sha256,
    write_atomic,
)
from hub.errors import CacheError, InputDataError
from hub.settings import Settings, get_settings

_EXT = re.compile(r"^[a-z0-9]{1,16}$")
_DIGEST_NAME = re.compile(r"^[0-9a-f]{8,64}$")


def safe_join(root: Path, *parts: str) -> Path:
    """``root / parts`` but refusing absolute parts, ``..``, separators in names and symlink escapes."""
    for part in parts:
        if (
            not part
            or part in (".", "..")
            or "/" in part
            or "\\" in part
            or "\x00" in part
            or os.path.isabs(part)
        ):
            raise CacheError(
                f"refusing cache path component {part!r}: names in the cache must be plain file "
                "names derived from digests"
            )
    path = root.joinpath(*parts)
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        raise CacheError(f"refusing {path}: it resolves to {real}, outside the cache {real_root}")
    return path


def file_extension(file_format: str | None) -> str:
    """The blob extension for a card's ``file-format`` (``ckpt`` when absent)."""
    ext = (file_format or "ckpt").strip().lower()
    if not _EXT.match(ext):
        raise InputDataError(
            f"file format {file_format!r} cannot name a cache file: expected 1-16 letters or "
            "digits such as ckpt"
        )
    return ext


@dataclass(frozen=True)
class CacheLayout:
    """Paths of everything in the cache rooted at ``root``."""

    root: Path

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> CacheLayout:
        return cls((settings or get_settings()).home)

    def _dir(self, *parts: str) -> Path:
        return safe_join(self.root, *parts)

    def blob_path(self, sha256: str, ext: str) -> Path:
        sha256 = _full(sha256)
        return safe_join(self.root, "blobs", "sha256", sha256[:2], f"{sha256}.{file_extension(ext)}")

    def record_path(self, sha256: str) -> Path:
        return safe_join(self.root, "records", f"{_full(sha256)}.json")

    def asset_record_path(self, declared: str) -> Path:
        return safe_join(self.root, "assets", f"{normalize_sha256(declared)}.json")

    def partial_path(self, declared: str, ext: str) -> Path:
        name = f"{normalize_sha256(declared)}.{file_extension(ext)}.partial"
        return safe_join(self.root, "partial", name)

    def lock_path(self, declared: str) -> Path:
        return safe_join(self.root, "locks", f"{normalize_sha256(declared)}.lock")

    def blob_lock_path(self, sha256: str) -> Path:
        return safe_join(self.root, "locks", f"{_full(sha256)}.blob.lock")

    def quarantine_dir(self) -> Path:
        return self._dir("quarantine")

    def ensure(self) -> None:
        """Create the cache directories, with a clear error when the root is not writable."""
        try:
            for sub in ("blobs", "records", "assets", "partial", "locks", "quarantine"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(
                f"cannot create the cache under {self.root}: {exc.strerror or exc}; set "
                "YOLOHUB_HOME to a writable directory"
            ) from exc


def _full(sha256: str) -> str:
    sha256 = normalize_sha256(sha256)
    if len(sha256) != FULL_LENGTH:
        raise InputDataError(f"blob names need a full sha256, got the prefix {sha256!r}")
    return sha256


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
                sha256=_full(d["sha256"]),
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
    rec = AssetRecord(declared, _full(sha256), file_extension(ext), int(size), owners)
    write_atomic(layout.asset_record_path(declared), rec.to_json())
    return rec


def iter_asset_records(layout: CacheLayout) -> Iterator[AssetRecord]:
    d = layout.root / "assets"
    if not d.is_dir():
        return
    for p in sorted(d.glob("*.json")):
        rec = AssetRecord.load(p)
        if rec is not None:
            yield rec


def store_record(layout: CacheLayout, record: VerificationRecord) -> None:
    record.save(layout.record_path(record.sha256))


def load_record(layout: CacheLayout, sha256: str) -> VerificationRecord | None:
    return VerificationRecord.load(layout.record_path(sha256))


def drop_record(layout: CacheLayout, sha256: str) -> None:
    layout.record_path(sha256).unlink(missing_ok=True)


# --- questions the CLI and the loader ask -------------------------------------------------------


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


def _asset_keys(asset) -> tuple[str, str]:
    return normalize_sha256(asset.sha256, what="asset sha256"), file_extension(
        getattr(asset, "file_format", None)
    )


def locate(layout: CacheLayout, declared: str, ext: str) -> tuple[Path, str] | None:
    """The blob path and full digest that satisfy ``declared``, if the cache knows one."""
    declared = normalize_sha256(declared)
    if not is_weak(declared):
        return layout.blob_path(declared, ext), declared
    rec = read_asset_record(layout, declared)
    if rec is not None and rec.sha256.startswith(declared):
        return layout.blob_path(rec.sha256, rec.ext), rec.sha256
    # a blob fetched for another card may already satisfy the prefix (names are digests)
    shard = layout.root / "blobs" / "sha256" / declared[:2]
    matches = sorted(shard.glob(f"{declared}*.{ext}")) if shard.is_dir() else []
    if len(matches) == 1:
        sha = matches[0].name.split(".")[0]
        if len(sha) == FULL_LENGTH and _DIGEST_NAME.match(sha):
            return matches[0], sha
    return None


def status(asset, settings: Settings | None = None) -> AssetStatus:
    """Cache state of a card asset (an object with ``sha256`` and ``file_format``), no hashing."""
    layout = CacheLayout.from_settings(settings)
    declared, ext = _asset_keys(asset)
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


# --- listing and cleanup ------------------------------------------------------------------------


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
            + sum(_size(q) for q in self.quarantined)
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
            "quarantined": [{"path": str(q), "size": _size(q)} for q in self.quarantined],
        }


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def _iter_blobs(layout: CacheLayout) -> Iterator[tuple[str, Path]]:
    base = layout.root / "blobs" / "sha256"
    if not base.is_dir():
        return
    for p in sorted(base.glob("??/*")):
        stem, _, ext = p.name.partition(".")
        if len(stem) == FULL_LENGTH and _DIGEST_NAME.match(stem) and p.is_file():
            yield stem, p


def listing(settings: Settings | None = None) -> CacheListing:
    """Everything in the cache: blobs with their owners, unfinished transfers, quarantine."""
    layout = CacheLayout.from_settings(settings)
    by_sha: dict[str, list[AssetRecord]] = {}
    for rec in iter_asset_records(layout):
        by_sha.setdefault(rec.sha256, []).append(rec)
    blobs = []
    for sha, path in _iter_blobs(layout):
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
    pdir = layout.root / "partial"
    if pdir.is_dir():
        for p in sorted(pdir.glob("*.partial")):
            meta = _read_json(p.with_name(p.name + ".json"))
            try:
                st = p.stat()
            except FileNotFoundError:  # a transfer finished (or was discarded) meanwhile
                continue
            partials.append(
                PartialEntry(p, st.st_size, p.name.split(".")[0], meta.get("url"), st.st_mtime)
            )
    qdir = layout.quarantine_dir()
    quarantined = tuple(sorted(q for q in _iterdir(qdir) if not q.name.endswith(".json")))
    return CacheListing(layout.root, tuple(blobs), tuple(partials), quarantined)


def _iterdir(d: Path) -> list[Path]:
    try:
        return list(d.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


@dataclass(frozen=True)
class Removal:
    """What a cleanup removed (paths and bytes freed)."""

    removed: tuple[Path, ...]
    freed: int
    kept: tuple[str, ...] = ()  # notes on what was left in place and why

    def to_dict(self) -> dict:
        return {"removed": [str(p) for p in self.removed], "freed": self.freed, "kept": list(self.kept)}


def remove_asset(asset, *, owner: str | None = None, settings: Settings | None = None) -> Removal:
    """Drop ``owner``'s claim on an asset; delete the blob once no asset record refers to it.

    Without ``owner`` every claim on the declared hash is dropped.  A blob still used by another
    card (another declared hash with the same content) is kept, and the result says so.
    """
    layout = CacheLayout.from_settings(settings)
    declared, ext = _asset_keys(asset)
    removed: list[Path] = []
    freed = 0
    kept: list[str] = []
    rec_path = layout.asset_record_path(declared)
    rec = read_asset_record(layout, declared)
    found = locate(layout, declared, ext)
    if rec is not None:
        owners = {k: v for k, v in rec.owners.items() if owner is not None and k != owner}
        if owners:
            write_atomic(rec_path, AssetRecord(rec.declared, rec.sha256, rec.ext, rec.size, owners).to_json())
            kept.append(f"{rec.sha256[:12]} still used by {', '.join(sorted(owners))}")
            return Removal((), 0, tuple(kept))
        rec_path.unlink(missing_ok=True)
        removed.append(rec_path)
    partial = layout.partial_path(declared, ext)
    if partial.exists():
        from hub.assets.download import DownloadLock
        from hub.errors import LockTimeoutError

        try:
            with DownloadLock(layout.lock_path(declared), timeout=0, label=partial.name,
                              record_owner=False):
                for p in (partial, partial.with_name(partial.name + ".json")):
                    if p.exists():
                        freed += _size(p)
                        p.unlink(missing_ok=True)
                        removed.append(p)
        except LockTimeoutError:
            kept.append(f"{partial.name}: a download is in progress")
    if found is not None:
        path, sha = found
        s = get_settings() if settings is None else settings
        with _blob_lock(layout, sha, timeout=s.lock_timeout, label=f"blob {sha[:12]}"):
            removal = _remove_blob(layout, path, sha, owner)
        removed.extend(removal.removed)
        return Removal(tuple(removed), freed + removal.freed, tuple(kept) + removal.kept)
    return Removal(tuple(removed), freed, tuple(kept))


def _remove_blob(layout: CacheLayout, path: Path, sha: str, owner: str | None) -> Removal:
    """Delete blob ``sha`` unless an asset record still uses it (caller holds its blob lock)."""
    removed: list[Path] = []
    kept: list[str] = []
    freed = 0
    users = []
    for r in iter_asset_records(layout):
        if r.sha256 != sha:
            continue
        if owner is not None and owner in r.owners:
            # the same card reached this file through another declared hash (e.g. a legacy
            # prefix before `rehash`): that claim goes too
            rest = {k: v for k, v in r.owners.items() if k != owner}
            other = layout.asset_record_path(r.declared)
            if not rest:
                other.unlink(missing_ok=True)
                removed.append(other)
                continue
            write_atomic(other, AssetRecord(r.declared, r.sha256, r.ext, r.size, rest).to_json())
            r = AssetRecord(r.declared, r.sha256, r.ext, r.size, rest)
        users.append(r)
    if users:
        kept.append(
            f"{sha[:12]} still used by "
            + ", ".join(sorted({o for r in users for o in r.owners} or {r.declared for r in users}))
        )
    elif path.exists():
        freed += _size(path)
        path.unlink(missing_ok=True)
        removed.append(path)
        rp = layout.record_path(sha)
        rp.unlink(missing_ok=True)
    return Removal(tuple(removed), freed, tuple(kept))


def _blob_lock(layout: CacheLayout, sha: str, *, timeout: float, label: str):
    from hub.assets.download import blob_lock  # the transfer layer owns the lock class

    return blob_lock(layout, sha, timeout=timeout, label=label)


def _referencing(layout: CacheLayout, sha: str) -> list[AssetRecord]:
    """Asset records that point at blob ``sha``, read now (not from an earlier listing)."""
    return [r for r in iter_asset_records(layout) if r.sha256 == sha]


def _blob_files(layout: CacheLayout, sha: str) -> list[Path]:
    shard = layout.root / "blobs" / "sha256" / sha[:2]
    return [p for p in _iterdir(shard) if p.name.split(".")[0] == sha and p.is_file()]


def prune(
    *, settings: Settings | None = None, partial_age: float = 0.0, compiled: bool = False
) -> Removal:
    """Delete blobs no asset record refers to, stale records, quarantined files and partials,
    and compiled graphs of other MindSpore versions (``compiled``: all compiled graphs).

    Each blob is deleted under its blob lock, after checking again that no asset record refers
    to it: a download registers the file it returns under the same lock, so a path that
    ``download`` handed out is never pruned from under its user.  A blob whose lock is busy is
    kept.  Partials are removed only when no process is downloading them (their download lock is
    free) and they are older than ``partial_age`` seconds.  Files that vanish meanwhile (another
    prune, a finishing transfer) are skipped.
    """
    from hub.assets.download import DownloadLock
    from hub.errors import LockTimeoutError

    layout = CacheLayout.from_settings(settings)
    listing_ = listing(settings)
    removed: list[Path] = []
    freed = 0
    kept: list[str] = []
    rdir = layout.root / "records"
    present = {b.sha256 for b in listing_.blobs}
    live = {b.sha256 for b in listing_.blobs if b.referenced}
    verification = {p.stem for p in _iterdir(rdir) if p.suffix == ".json"}
    candidates = (present - live) | {
        s for s in verification - live if len(s) == FULL_LENGTH and _DIGEST_NAME.match(s)
    }
    candidates |= {r.sha256 for r in iter_asset_records(layout)} - present
    for sha in sorted(candidates):
        try:
            lock = _blob_lock(layout, sha, timeout=0, label=f"blob {sha[:12]}")
            with lock:
                users = _referencing(layout, sha)
                files = _blob_files(layout, sha)
                if users and files:
                    continue  # in use: keep the blob, its records and its verification record
                for f in files:
                    freed += _size(f)
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
            lock_path = layout.lock_path(part.declared)
        except (InputDataError, CacheError):
            kept.append(f"{part.path.name}: not a name yolohub writes; left alone")
            continue
        try:
            with DownloadLock(lock_path, timeout=0,
                              label=part.path.name, record_owner=False):
                if now - part.modified < partial_age:
                    kept.append(f"{part.path.name}: younger than {partial_age:.0f} s")
                    continue
                if not part.path.exists():
                    continue
                freed += _size(part.path)
                for p in (part.path, part.path.with_name(part.path.name + ".json")):
                    p.unlink(missing_ok=True)
                removed.append(part.path)
        except LockTimeoutError:
            kept.append(f"{part.path.name}: a download is in progress")
    for q in sorted(_iterdir(layout.quarantine_dir())):
        size = _size(q) if not q.name.endswith(".json") else 0
        try:
            if q.is_dir():
                shutil.rmtree(q)
            else:
                q.unlink()
        except FileNotFoundError:
            continue
        freed += size
        removed.append(q)
    from hub.tasks import compile_cache

    graphs = compile_cache.prune(settings=settings, everything=compiled)
    return Removal(tuple(removed) + graphs.removed, freed + graphs.freed, tuple(kept))


def blob_digests(settings: Settings | None = None) -> frozenset[str]:
    """The full sha256 of every blob file in the cache, from one directory walk (no hashing).

    Lets ``yolohub list`` rule out the uncached majority of a 10,000-card registry without a
    ``stat`` per card; :func:`is_cached` still decides for the rest.
    """
    root = CacheLayout.from_settings(settings).root / "blobs" / "sha256"
    out = set()
    try:
        shards = list(os.scandir(root))
    except OSError:
        return frozenset()
    for shard in shards:
        try:
            for e in os.scandir(shard.path):
                sha = e.name.split(".", 1)[0]
                if _DIGEST_NAME.match(sha):
                    out.add(sha)
        except OSError:
            continue
    return frozenset(out)
