"""Fill a download's partial file from a ``file://`` link: a hashing copy, no network.

Local links serve stores on a shared disk and offline mode (``YOLOHUB_OFFLINE=1`` still allows
them).  The copy obeys the same size checks and byte cap as an HTTP transfer.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hub.assets.integrity import CHUNK_SIZE
from hub.assets.partial import Partial
from hub.assets.urls import file_url_path
from hub.errors import DownloadError


def copy_local(partial: Partial, url: str) -> tuple[str, int]:
    """Copy the file ``url`` names into ``partial``; return (sha256 hex, byte count)."""
    src = Path(file_url_path(url))
    try:
        st = src.stat()
    except OSError as exc:
        raise DownloadError(f"{url}: cannot read the local file: {exc.strerror or exc}") from None
    if not src.is_file():
        raise DownloadError(f"{url}: not a regular file")
    partial.check_announced(url, st.st_size)
    partial.check_room(st.st_size)
    h = hashlib.sha256()
    n = 0
    with partial.bar(st.st_size, 0) as bar, open(src, "rb") as fin, \
            partial.open(append=False) as fout:
        while True:
            chunk = fin.read(CHUNK_SIZE)
            if not chunk:
                break
            n += len(chunk)
            if n > partial.limit:
                raise partial.runaway(url, n)
            fout.write(chunk)
            h.update(chunk)
            bar.update(len(chunk))
    partial.transferred += n
    return h.hexdigest(), n
