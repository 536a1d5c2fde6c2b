"""Writing into an asset store: append-only, each file named by name, version and digest.

A store is a plain directory (``<store>/<name>/<version>/<name>-<version>-<sha8>.<ext>``) that
any static HTTP server can serve.  A file is copied in under a temporary name while it is hashed
(:func:`copy_hashing`), named after its digest (:func:`asset_name`), and placed with a hard link
that never replaces a file already there (:func:`place`).  ``publish`` holds :data:`STORE_LOCK`
while it places a file and writes its card, so ``gc_store`` never sees one without the other.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from hub.assets.integrity import CHUNK_SIZE, sha256_file
from hub.assets.urls import check_url
from hub.errors import PublishError, UnsafeURLError

STORE_LOCK = ".yolohub-store.lock"


def missing_dirs(store: Path, rel_dir: Path) -> list[Path]:
    """The directories of ``store / rel_dir`` that do not exist yet, outermost first."""
    out, d = [], store / rel_dir
    while d != store and not d.exists():
        out.append(d)
        d = d.parent
    return out[::-1]


def asset_name(store: Path, rel_dir: Path, name: str, version: str, sha: str, ext: str) -> Path:
    """The store path for these bytes: ``<name>-<version>-<sha8>.<ext>``, or the full sha256
    when another file already holds the 8-digit name (never a name that holds other bytes)."""
    for digits in (8, 64):
        rel = rel_dir / f"{name}-{version}-{sha[:digits]}.{ext}"
        path = store / rel
        if not path.exists() or (path.is_file() and sha256_file(path) == sha):
            return rel
    raise PublishError(f"{store / rel_dir} holds other files under the names of sha256 {sha}; "
                       "the store looks tampered with, choose another --store")


def place(tmp: Path, target: Path, sha: str) -> None:
    """Move ``tmp`` to ``target`` without ever replacing a file already there.

    A hard link fails if ``target`` exists, so a concurrent publisher's file (or an earlier
    publish of the same bytes) survives; identical bytes are simply reused.
    """
    try:
        os.link(tmp, target)
    except FileExistsError:
        if sha256_file(target) != sha:
            raise PublishError(f"{target} appeared meanwhile with other bytes; publish again") from None
    except OSError:  # a file system without hard links
        if target.exists():
            if sha256_file(target) != sha:
                raise PublishError(f"{target} appeared meanwhile with other bytes; publish "
                                   "again") from None
        else:
            os.replace(tmp, target)
    tmp.unlink(missing_ok=True)


def copy_hashing(src: Path, directory: Path, ext: str) -> tuple[Path, str, int]:
    """Copy ``src`` into a temporary file in ``directory``, hashing the bytes as they pass."""
    directory.mkdir(parents=True, exist_ok=True)
    need = src.stat().st_size
    free = shutil.disk_usage(directory).free
    if need > free:
        raise PublishError(
            f"not enough space in {directory}: the checkpoint needs {need} bytes, {free} are "
            "free; free some space or choose another --store"
        )
    fd, name = tempfile.mkstemp(prefix=".publish-", suffix=f".{ext}", dir=directory)
    tmp = Path(name)
    h = hashlib.sha256()
    n = 0
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
            while chunk := f.read(CHUNK_SIZE):
                h.update(chunk)
                out.write(chunk)
                n += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, h.hexdigest(), n


def check_base_url(base_url: str) -> None:
    """Refuse a ``--base-url`` that yolohub itself would not download from."""
    try:
        check_url(base_url.rstrip("/") + "/")
    except UnsafeURLError as exc:
        raise PublishError(f"--base-url {base_url!r} cannot be used: {exc}") from None
