"""The unfinished file of one download: where its bytes go, how far it got, what may not happen.

A :class:`Partial` is shared by the ways bytes arrive (:mod:`hub.assets.ranged` over HTTP,
:mod:`hub.assets.local` from a ``file://`` link).  It owns ``partial/<declared>.<ext>.partial``
(readable by its owner only until verified) and its ``.json`` resume state, counts the bytes
received, and enforces the byte cap (the card's ``size``, else ``YOLOHUB_MAX_DOWNLOAD``) and the
free-space check before anything is written.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from hub.assets.cache_layout import partial_state_path
from hub.assets.urls import redact
from hub.errors import CacheError, DownloadError
from hub.fileio import read_json_dict, write_atomic
from hub.progress import human_bytes, progress_bar
from hub.settings import Settings


def check_free_space(directory: Path, need: int) -> None:
    """Raise :class:`CacheError` unless ``directory`` has room for ``need`` bytes plus a margin."""
    if need <= 0:
        return
    free = shutil.disk_usage(directory).free
    margin = max(need // 20, 16 << 20)
    if need + margin > free:
        raise CacheError(
            f"not enough free space in {directory}: the download needs {human_bytes(need)} "
            f"(plus {human_bytes(margin)} margin) but {human_bytes(free)} are free; run "
            "`yolohub cache prune`, free some space, or point YOLOHUB_HOME at a larger disk"
        )


@dataclass
class Partial:
    """One download's partial file, its resume state, and the counts of bytes written into it."""

    path: Path
    declared: str  # the hash the card pins (names the file; recorded in the resume state)
    size: int | None  # the card's byte count, when it gives one
    label: str
    settings: Settings
    progress: bool | None = None
    transferred: int = 0  # bytes received by this job
    resumed_from: int = 0  # offset of the first byte this job received
    pos: int = 0  # how far the file has been written

    @property
    def limit(self) -> int:
        """No body may grow past this: the card's size, else ``YOLOHUB_MAX_DOWNLOAD``."""
        return self.size if self.size is not None else self.settings.max_download

    @property
    def state_path(self) -> Path:
        return partial_state_path(self.path)

    def open(self, *, append: bool):
        """Open for writing, readable by its owner only until its hash is verified."""
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        fd = os.open(self.path, flags, 0o600)
        try:
            os.fchmod(fd, 0o600)  # a partial left by an older version may be world-readable
            return os.fdopen(fd, "ab" if append else "wb")
        except BaseException:
            os.close(fd)
            raise

    def discard(self) -> None:
        """Delete the bytes and the resume state (the next transfer starts at byte 0)."""
        self.path.unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)

    def read_state(self) -> dict:
        """The resume state (link, validator, total) of the bytes on disk; ``{}`` when none."""
        return read_json_dict(self.state_path)

    def write_state(self, *, url: str, validator: str | None, total: int | None) -> None:
        write_atomic(self.state_path, json.dumps({"url": url, "validator": validator,
                                                  "total": total, "declared": self.declared}))

    def check_room(self, need: int) -> None:
        check_free_space(self.path.parent, need)

    def bar(self, total: int | None, initial: int):
        return progress_bar(self.settings, self.progress, total=total, initial=initial,
                            label=self.label)

    def check_announced(self, url: str, total: int | None) -> None:
        """Refuse a source whose announced size differs from the card's or exceeds the cap."""
        if total is None:
            return
        if self.size is not None and total != self.size:
            raise DownloadError(
                f"{redact(url)}: the server announces {total} bytes but the card says "
                f"{self.size}; it serves a different file (or a wrong Content-Length), so "
                "nothing was downloaded"
            )
        if total > self.limit:
            raise DownloadError(
                f"{redact(url)}: the server announces {human_bytes(total)}, more than the "
                f"{human_bytes(self.limit)} cap (YOLOHUB_MAX_DOWNLOAD); give the card a `size:` "
                "or raise the cap"
            )

    def runaway(self, url: str, n: int) -> DownloadError:
        """Discard a body that grew past :attr:`limit`; the error to raise."""
        self.discard()
        cap = "the card's size" if self.size is not None else "YOLOHUB_MAX_DOWNLOAD"
        return DownloadError(
            f"{redact(url)}: the body exceeded {human_bytes(self.limit)} ({cap}) after {n} bytes; "
            "stopped and discarded it"
        )
