"""The cache's cross-process locks: one class, used by downloads, ``cache prune`` and ``cache rm``.

Two locks per asset, both :class:`CacheLock`:

- :func:`download_lock` (``locks/<declared>.lock``): one downloader per declared hash; held for
  a whole transfer, and by cleanup while it deletes that asset's partial file;
- :func:`blob_lock` (``locks/<sha256>.blob.lock``): held for milliseconds while a download moves
  a verified file into ``blobs/`` and registers its owner, and while cleanup checks that nobody
  uses a blob and deletes it.  So a path that a download returned is registered before any
  cleanup can look at it.

The lock is the kernel's ``flock`` (through ``filelock``): a holder killed with ``kill -9``
frees it at once, so a stale lock file never blocks anyone; the next holder simply takes it
over and overwrites the stale ``.owner`` note.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

from hub.assets.cache_layout import CacheLayout
from hub.errors import LockTimeoutError
from hub.fileio import read_json_dict, write_atomic

log = logging.getLogger(__name__)


class CacheLock:
    """An OS file lock with a wait limit that can say whom it is waiting for.

    With ``record_owner`` the holder writes who it is (pid, host, start time) next to the lock,
    so that waiters can name it; after ``timeout`` seconds a waiter gives up with
    :class:`LockTimeoutError` naming the holder (``timeout=0``: try once).
    """

    LOG_EVERY = 10.0

    def __init__(self, path: Path, *, timeout: float, label: str, what: str = "download",
                 record_owner: bool = True):
        from filelock import FileLock

        self.path = path
        self.owner_path = path.with_suffix(".owner")
        self.timeout = timeout
        self.label = label
        self.what = what
        self.record_owner = record_owner
        self._lock = FileLock(str(path))

    def owner(self) -> dict:
        """Who holds (or last held) the lock, as its holder recorded it; ``{}`` when unknown."""
        return read_json_dict(self.owner_path)

    def _describe_owner(self) -> str:
        o = self.owner()
        if not o:
            return "another process"
        since = time.strftime("%H:%M:%S", time.localtime(o.get("started", 0)))
        return f"pid {o.get('pid')} on {o.get('host')} (since {since})"

    def __enter__(self) -> CacheLock:
        from filelock import Timeout

        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.timeout
        first = True
        while True:
            remaining = deadline - time.monotonic()
            try:
                self._lock.acquire(timeout=max(0.0, min(remaining, self.LOG_EVERY if not first else 0.0)),
                                   poll_interval=0.05)
                break
            except Timeout:
                if remaining <= 0:
                    raise LockTimeoutError(
                        f"{self.label}: {self._describe_owner()} has held the {self.what} lock "
                        f"{self.path} for more than {self.timeout:g} s; wait for it, stop it, or "
                        "raise YOLOHUB_LOCK_TIMEOUT"
                    ) from None
                log.info("%s: waiting for %s to release the %s lock", self.label,
                         self._describe_owner(), self.what)
                first = False
        if self.record_owner:
            try:
                write_atomic(
                    self.owner_path,
                    json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                "started": time.time()}),
                )
            except BaseException:
                self._lock.release()
                raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.record_owner:
                self.owner_path.unlink(missing_ok=True)
        finally:
            self._lock.release()


def download_lock(layout: CacheLayout, declared: str, *, timeout: float, label: str,
                  record_owner: bool = True) -> CacheLock:
    """The lock of one declared hash's transfer (its partial file and resume state).

    A download holds it for the whole transfer and records itself as the holder; cleanup takes
    it with ``timeout=0`` and ``record_owner=False`` to delete a partial nobody is writing.
    """
    return CacheLock(layout.lock_path(declared), timeout=timeout, label=label,
                     record_owner=record_owner)


def blob_lock(layout: CacheLayout, sha256: str, *, timeout: float, label: str) -> CacheLock:
    """The lock of one cached blob (by full digest), shared by download and cache cleanup.

    A download holds it while it moves a verified file into ``blobs/`` and records who uses it;
    ``cache prune`` / ``cache rm`` hold it while they check that nobody uses a blob and delete
    it.  So a path that a download returned is registered before any cleanup can look at it,
    and cleanup never deletes a file between a download's check and its return.  Held for
    milliseconds (or one re-hash of a changed file), never for a transfer.
    """
    return CacheLock(layout.blob_lock_path(sha256), timeout=timeout, label=label,
                     what="blob", record_owner=False)
