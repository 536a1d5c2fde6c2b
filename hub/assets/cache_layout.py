"""Where everything in the download cache lives: path arithmetic only, no I/O beyond ``mkdir``.

Layout under ``get_settings().home``::

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

import re
from dataclasses import dataclass
from pathlib import Path

from hub.assets.integrity import FULL_LENGTH, normalize_sha256
from hub.errors import CacheError, InputDataError
from hub.fileio import safe_join
from hub.settings import Settings, get_settings

_EXT = re.compile(r"^[a-z0-9]{1,16}$")
DIGEST_NAME = re.compile(r"^[0-9a-f]{8,64}$")


def file_extension(file_format: str | None) -> str:
    """The blob extension for a card's ``file-format`` (``ckpt`` when absent)."""
    ext = (file_format or "ckpt").strip().lower()
    if not _EXT.match(ext):
        raise InputDataError(
            f"file format {file_format!r} cannot name a cache file: expected 1-16 letters or "
            "digits such as ckpt"
        )
    return ext


def full_digest(sha256: str) -> str:
    """``sha256`` normalized, refusing a legacy prefix (blobs are named by full digests)."""
    sha256 = normalize_sha256(sha256)
    if len(sha256) != FULL_LENGTH:
        raise InputDataError(f"blob names need a full sha256, got the prefix {sha256!r}")
    return sha256


def is_blob_name(stem: str) -> bool:
    """True when ``stem`` is a full hex digest, i.e. a name the cache gives a blob."""
    return len(stem) == FULL_LENGTH and DIGEST_NAME.match(stem) is not None


@dataclass(frozen=True)
class CacheLayout:
    """Paths of everything in the cache rooted at ``root``."""

    root: Path

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> CacheLayout:
        return cls((settings or get_settings()).home)

    def blob_path(self, sha256: str, ext: str) -> Path:
        sha256 = full_digest(sha256)
        return safe_join(self.root, "blobs", "sha256", sha256[:2], f"{sha256}.{file_extension(ext)}")

    def blob_shard(self, digest: str) -> Path:
        """The directory holding the blobs whose digest starts like ``digest``."""
        return self.blobs_dir() / normalize_sha256(digest)[:2]

    def blobs_dir(self) -> Path:
        return self.root / "blobs" / "sha256"

    def record_path(self, sha256: str) -> Path:
        return safe_join(self.root, "records", f"{full_digest(sha256)}.json")

    def records_dir(self) -> Path:
        return self.root / "records"

    def asset_record_path(self, declared: str) -> Path:
        return safe_join(self.root, "assets", f"{normalize_sha256(declared)}.json")

    def asset_records_dir(self) -> Path:
        return self.root / "assets"

    def partial_path(self, declared: str, ext: str) -> Path:
        name = f"{normalize_sha256(declared)}.{file_extension(ext)}.partial"
        return safe_join(self.root, "partial", name)

    def partial_dir(self) -> Path:
        return self.root / "partial"

    def lock_path(self, declared: str) -> Path:
        return safe_join(self.root, "locks", f"{normalize_sha256(declared)}.lock")

    def blob_lock_path(self, sha256: str) -> Path:
        return safe_join(self.root, "locks", f"{full_digest(sha256)}.blob.lock")

    def quarantine_dir(self) -> Path:
        return safe_join(self.root, "quarantine")

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


def partial_state_path(partial: Path) -> Path:
    """The resume state (``.json``) kept next to a partial file."""
    return partial.with_name(partial.name + ".json")
