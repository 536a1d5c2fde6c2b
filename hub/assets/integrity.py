"""Streaming sha256, expected-hash rules and verification records.

A card pins a file by sha256: the full 64-hex digest, or (legacy MindSpore Hub cards) a prefix of
at least 8 hex digits, which is accepted but reported as *weak*.  Hashing streams the file in
1 MiB chunks, so memory stays flat whatever the size.  A :class:`VerificationRecord` remembers
what a file looked like when its full hash was last computed (size, mtime_ns, inode), so that a
later check costs one ``stat`` instead of a re-hash, unless the file changed or a deep check is
asked for.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from hub.errors import ChecksumMismatchError, InputDataError
from hub.fileio import write_atomic

CHUNK_SIZE = 1 << 20
MIN_PREFIX = 8
FULL_LENGTH = 64
_HEX = re.compile(r"^[0-9a-f]+$")


def normalize_sha256(value: str, *, what: str = "sha256") -> str:
    """Return ``value`` as lowercase hex, checking it is a full digest or a prefix of >= 8 digits."""
    if not isinstance(value, str):
        raise InputDataError(f"{what} must be a string of hex digits, found {type(value).__name__}")
    v = value.strip().lower()
    if not _HEX.match(v) or not MIN_PREFIX <= len(v) <= FULL_LENGTH:
        raise InputDataError(
            f"{what} {value!r} is not usable: expected {FULL_LENGTH} hex digits (or a legacy "
            f"prefix of at least {MIN_PREFIX}); compute it with `yolohub publish` or "
            "`sha256sum FILE`"
        )
    return v


def is_weak(expected: str) -> bool:
    """True when ``expected`` is only a prefix of a sha256 digest."""
    return len(expected) < FULL_LENGTH


def digest_matches(expected: str, actual: str) -> bool:
    """Whether a full ``actual`` digest satisfies ``expected`` (full digest or legacy prefix)."""
    expected = expected.lower()
    actual = actual.lower()
    if len(expected) == FULL_LENGTH:
        return actual == expected
    return len(expected) >= MIN_PREFIX and actual.startswith(expected)


def sha256_file(
    path: str | os.PathLike,
    *,
    chunk_size: int = CHUNK_SIZE,
    on_bytes: Callable[[int], None] | None = None,
    limit: int | None = None,
) -> str:
    """Hex sha256 of a file (or of its first ``limit`` bytes), streamed in ``chunk_size`` pieces."""
    return hash_file(path, chunk_size=chunk_size, on_bytes=on_bytes, limit=limit).hexdigest()


def hash_file(
    path: str | os.PathLike,
    *,
    chunk_size: int = CHUNK_SIZE,
    on_bytes: Callable[[int], None] | None = None,
    limit: int | None = None,
    hasher=None,
):
    """Feed a file (or its first ``limit`` bytes) into a sha256 object and return the object.

    Returning the hash object (not the digest) lets a resumed download continue hashing where a
    previous process stopped.
    """
    h = hasher if hasher is not None else hashlib.sha256()
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    remaining = limit
    with open(path, "rb", buffering=0) as f:
        while remaining is None or remaining > 0:
            want = chunk_size if remaining is None else min(chunk_size, remaining)
            n = f.readinto(view[:want])
            if not n:
                break
            h.update(view[:n])
            if remaining is not None:
                remaining -= n
            if on_bytes is not None:
                on_bytes(n)
    if remaining:
        raise InputDataError(f"{path} has fewer bytes than the {limit} expected")
    return h


@dataclass(frozen=True)
class VerificationRecord:
    """What a file looked like when its full sha256 was last computed."""

    sha256: str
    size: int
    mtime_ns: int
    inode: int
    verified_at: float
    yolohub_version: str

    @classmethod
    def for_file(cls, path: str | os.PathLike, sha256: str) -> VerificationRecord:
        """A record of ``path`` as it is now, whose full digest the caller just computed."""
        from hub import __version__

        st = os.stat(path)
        return cls(
            sha256=sha256,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            inode=st.st_ino,
            verified_at=time.time(),
            yolohub_version=__version__,
        )

    def matches_stat(self, st: os.stat_result) -> bool:
        """True when the file still has the size, mtime and inode it had when hashed."""
        return (
            st.st_size == self.size and st.st_mtime_ns == self.mtime_ns and st.st_ino == self.inode
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> VerificationRecord:
        data = json.loads(text)
        rec = cls(
            sha256=str(data["sha256"]),
            size=int(data["size"]),
            mtime_ns=int(data["mtime_ns"]),
            inode=int(data["inode"]),
            verified_at=float(data["verified_at"]),
            yolohub_version=str(data["yolohub_version"]),
        )
        if len(rec.sha256) != FULL_LENGTH or not _HEX.match(rec.sha256):
            raise ValueError(f"record holds {rec.sha256!r}, not a full sha256")
        return rec

    def save(self, path: Path) -> None:
        write_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> VerificationRecord | None:
        """The record stored at ``path``, or None when absent or unreadable (then re-hash)."""
        try:
            return cls.from_json(path.read_text())
        except (OSError, ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of checking one file against an expected digest.

    ``status`` is ``ok``, ``mismatch`` (hash or size differs), ``missing`` (no file) or
    ``unknown`` (nothing to check against).  ``method`` says how: ``record`` (stat matched the
    stored record, no re-hash) or ``hash`` (the file was read).
    """

    path: Path | None
    expected: str
    actual: str | None
    status: str
    method: str
    size: int | None = None
    expected_size: int | None = None
    label: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def weak(self) -> bool:
        return is_weak(self.expected)

    def describe(self) -> str:
        """One line for humans: what, verdict, how, and the hashes when they differ."""
        name = self.label or (str(self.path) if self.path else self.expected)
        weak = " (weak: card pins only a sha256 prefix)" if self.weak and self.ok else ""
        if self.status == "ok":
            how = "record, no re-hash" if self.method == "record" else "re-hashed"
            return f"{name}: ok{weak} [{how}] sha256={self.actual}"
        if self.status == "missing":
            return f"{name}: missing from the cache{': ' + self.detail if self.detail else ''}"
        if self.status == "unknown":
            return f"{name}: cannot verify: {self.detail}"
        return f"{name}: MISMATCH {self.detail} (file {self.path})"

    def raise_for_status(self, *, url: str | None = None) -> None:
        """Raise :class:`ChecksumMismatchError` unless the result is ok."""
        if self.ok:
            return
        raise ChecksumMismatchError(
            self.describe(),
            expected=self.expected,
            actual=self.actual,
            url=url,
            size=self.size,
            expected_size=self.expected_size,
            path=str(self.path) if self.path else None,
        )


def verify_file(
    path: str | os.PathLike,
    expected: str,
    *,
    expected_size: int | None = None,
    record: VerificationRecord | None = None,
    deep: bool = False,
    label: str = "",
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[VerifyResult, VerificationRecord | None]:
    """Check ``path`` against ``expected``; return the result and a fresh record when re-hashed.

    Without ``deep``, a ``record`` whose size/mtime/inode still match the file is trusted (one
    stat).  Otherwise the file is re-hashed; the returned record is then new (or None when the
    file is missing).  The caller decides whether to store the record or raise.
    """
    p = Path(path)
    expected = normalize_sha256(expected)
    try:
        st = p.stat()
    except FileNotFoundError:
        return VerifyResult(p, expected, None, "missing", "stat", label=label), None
    if expected_size is not None and st.st_size != expected_size:
        detail = f"size {st.st_size} bytes, card says {expected_size}"
        return (
            VerifyResult(p, expected, None, "mismatch", "stat", st.st_size, expected_size, label,
                         detail),
            None,
        )
    if not deep and record is not None and record.matches_stat(st):
        status = "ok" if digest_matches(expected, record.sha256) else "mismatch"
        detail = "" if status == "ok" else _hash_detail(expected, record.sha256)
        return (
            VerifyResult(p, expected, record.sha256, status, "record", st.st_size, expected_size,
                         label, detail),
            None,
        )
    actual = sha256_file(p, on_bytes=on_bytes)
    new_record = VerificationRecord.for_file(p, actual)
    ok = digest_matches(expected, actual)
    # A deep check of a weak card also compares with the full digest recorded earlier.
    if ok and record is not None and record.sha256 != actual:
        ok = False
    if ok:
        detail = ""
    elif record is not None and record.sha256 != actual and digest_matches(expected, actual):
        detail = f"expected sha256 {record.sha256} (recorded), found {actual}"
    else:
        detail = _hash_detail(expected, actual)
    status = "ok" if ok else "mismatch"
    return (
        VerifyResult(p, expected, actual, status, "hash", new_record.size, expected_size, label,
                     detail),
        new_record,
    )


def _hash_detail(expected: str, actual: str) -> str:
    kind = "sha256" if len(expected) == FULL_LENGTH else f"sha256 prefix ({len(expected)} digits)"
    return f"expected {kind} {expected}, found {actual}"
