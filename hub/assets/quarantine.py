"""Where bytes that failed their hash check go: aside, owner-readable only, with a note of why.

A file whose sha256 does not match the card (a fresh download, or a cached blob that changed on
disk) is never deleted and never served: it moves to ``quarantine/<declared>-<actual16>-<ns>.<ext>``
next to a ``.json`` note (expected and actual digest, link, size, reason, time) so that someone can
inspect it.  ``yolohub cache prune`` empties the quarantine.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from hub.assets.cache_layout import CacheLayout
from hub.assets.urls import redact
from hub.fileio import write_atomic

log = logging.getLogger(__name__)


def quarantine(layout: CacheLayout, path: Path, *, declared: str, actual: str, ext: str,
               url: str | None, reason: str, label: str) -> Path:
    """Move ``path`` into the quarantine and write its note; return where it went."""
    qdir = layout.quarantine_dir()
    qdir.mkdir(parents=True, exist_ok=True)
    target = qdir / f"{declared}-{actual[:16]}-{time.time_ns()}.{ext}"
    os.chmod(path, 0o600)  # unverified bytes may be someone's private file: owner only
    os.replace(path, target)
    note = target.with_name(target.name + ".json")
    write_atomic(
        note,
        json.dumps({"expected": declared, "actual": actual, "url": redact(url or "") or None,
                    "size": target.stat().st_size, "reason": reason, "at": time.time()},
                   indent=1),
    )
    os.chmod(note, 0o600)
    log.warning("%s: moved the mismatching file to %s", label, target)
    return target
