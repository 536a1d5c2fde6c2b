"""Files every part of the hub writes and reads: atomic replacement, small JSON side files, and
paths joined under a root without escaping it."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from hub.errors import CacheError

__all__ = ["read_json_dict", "safe_join", "write_atomic"]


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) so that readers never see a half-written file.

    The new file keeps the old file's permissions, or gets the umask's (not ``mkstemp``'s 0600),
    so cards and records in a shared directory stay readable by the group.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        mode = 0o666 & ~_UMASK
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json_dict(path: str | os.PathLike) -> dict:
    """The JSON object stored at ``path``, or ``{}`` when it is absent, unreadable or not an object.

    For the cache's small side files (lock owners, resume state, quarantine notes), where a
    missing or damaged file only means "nothing known".
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


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
