"""Fill a download's partial file over HTTP(S), resuming with ``Range`` + ``If-Range``.

An interrupted transfer (a dropped connection in this process, or a killed process) continues
from the bytes on disk when the resume state says they came from the same link with a strong
validator (ETag or Last-Modified).  Anything that would splice two different files (a ``200``
answer to a ranged request, a changed validator or total size, a ``Content-Range`` that does not
start where we asked) truncates the partial and starts over, at most :data:`MAX_RESTARTS` times.
Transient failures are retried under a :class:`~hub.assets.http.RetryBudget` that resets
whenever bytes arrive.  The bytes are hashed as they are written (:mod:`hub.assets.pipeline`).
"""

from __future__ import annotations

import hashlib
import logging
import re

from hub.assets.http import RetryBudget, TransientError, Transport
from hub.assets.integrity import hash_file
from hub.assets.partial import Partial
from hub.assets.pipeline import ChunkPipeline
from hub.assets.urls import redact
from hub.errors import CacheError, DownloadError, HubError

log = logging.getLogger(__name__)

MAX_RESTARTS = 3
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.I)


class _Restart(Exception):
    """The partial bytes cannot be continued; start the transfer from byte 0."""


def fetch_http(partial: Partial, transport: Transport, url: str) -> tuple[str, int]:
    """Transfer ``url`` into ``partial`` with retries and resume; returns (sha256 hex, byte count)."""
    offset, hasher, validator, total = _resume_point(partial, url)
    budget = RetryBudget(partial.settings)
    restarts = 0
    first_offset = None
    if partial.size is not None:
        partial.check_room(partial.size - offset)
    with partial.bar(total or partial.size, offset) as bar:
        while True:
            if offset and not validator:
                offset, hasher, total = 0, hashlib.sha256(), None
                partial.discard()
            headers = {}
            if offset:
                headers = {"Range": f"bytes={offset}-", "If-Range": validator}
            received_before = partial.transferred
            try:
                resp = transport.open(url, headers=headers)
                try:
                    start, validator, total = _accept(partial, resp, url, offset, validator, total)
                    if start == 0 and offset:
                        restarts += 1
                        if restarts > MAX_RESTARTS:
                            raise DownloadError(
                                f"{redact(url)}: the server answered {restarts} ranged "
                                "requests with the whole file and the transfer keeps "
                                "breaking; giving up"
                            )
                        log.info("%s: the server sent the whole file instead of bytes %d-; "
                                 "starting over (the file changed or Range is unsupported)",
                                 partial.label, offset)
                        offset, hasher = 0, hashlib.sha256()
                    if first_offset is None:
                        first_offset = offset
                        partial.resumed_from = offset
                    bar.reset(total=total)
                    bar.update(offset)
                    offset = _consume(partial, resp, url, offset, hasher, total, bar)
                finally:
                    resp.close()
                return hasher.hexdigest(), offset
            except _Restart as why:
                restarts += 1
                if restarts > MAX_RESTARTS:
                    raise DownloadError(
                        f"{redact(url)}: had to restart {restarts} times ({why}); the server "
                        "keeps changing the file or mishandles Range"
                    ) from None
                log.info("%s: %s; starting over", partial.label, why)
                offset, hasher, validator, total = 0, hashlib.sha256(), None, None
                partial.discard()
            except TransientError as exc:
                if partial.transferred > received_before:
                    budget.progress()
                    offset = partial.pos
                budget.absorb(exc, url)


def _resume_point(partial: Partial, url: str):
    """(offset, hasher, validator, total) to continue from, or a fresh start."""
    try:
        n = partial.path.stat().st_size
    except FileNotFoundError:
        return 0, hashlib.sha256(), None, None
    state = partial.read_state()
    if (
        n > 0
        and state.get("url") == url
        and state.get("validator")
        and (state.get("total") is None or n <= state["total"])
        and n <= partial.limit
    ):
        log.info("%s: resuming at byte %d of %s", partial.label, n, state.get("total") or "?")
        return n, hash_file(partial.path), state["validator"], state.get("total")
    if n > 0 and state.get("validator") and state.get("url") not in (None, url):
        # bytes from another link: keep them in case this one fails before sending anything;
        # the partial is overwritten only when this link delivers its first byte
        return 0, hashlib.sha256(), None, None
    partial.discard()
    return 0, hashlib.sha256(), None, None


def _accept(partial: Partial, resp, url: str, offset: int, validator, total):
    """Check status and headers; return (first byte offset, validator, total size)."""
    h = {k.lower(): v for k, v in resp.headers.items()}
    if resp.status == 416:
        raise _Restart(f"server refused the range bytes={offset}- (416)")
    length = _int_or_none(h.get("content-length"))
    new_validator = _validator(h)
    if resp.status == 206:
        m = _CONTENT_RANGE.match(h.get("content-range", ""))
        if not m:
            raise _Restart(f"unreadable Content-Range {h.get('content-range')!r}")
        start, end = int(m.group(1)), int(m.group(2))
        new_total = None if m.group(3) == "*" else int(m.group(3))
        if start != offset:
            raise _Restart(f"asked for bytes {offset}-, the server sent {start}-{end}")
        if total is not None and new_total is not None and new_total != total:
            raise _Restart(f"the file's size changed from {total} to {new_total}")
        if validator and new_validator and new_validator != validator:
            raise _Restart("the server's validator (ETag/Last-Modified) changed")
        if length is not None and length != end - start + 1:
            raise _Restart(f"Content-Length {length} disagrees with Content-Range {start}-{end}")
        total = new_total
    elif resp.status == 200:
        start = 0
        total = length
    else:
        raise DownloadError(f"{redact(url)}: unexpected HTTP {resp.status} for a download")
    partial.check_announced(url, total)
    if total is not None:
        partial.check_room(total - start)
    partial.write_state(url=url, validator=new_validator, total=total)
    return start, new_validator, total


def _consume(partial: Partial, resp, url: str, offset: int, hasher, total, bar) -> int:
    """Append the body to the partial, hashing as it goes; ``partial.pos`` tracks the offset."""
    partial.pos = offset
    try:
        with partial.open(append=bool(offset)) as f:
            if offset:
                f.truncate(offset)
            pipe = ChunkPipeline(f.write, hasher.update)
            try:
                while True:
                    chunk = pipe.next_buffer()
                    n = resp.readinto(chunk)
                    if not n:
                        break
                    if partial.pos + n > partial.limit:
                        raise partial.runaway(url, partial.pos + n)
                    pipe.put(chunk[:n])
                    partial.pos += n
                    partial.transferred += n
                    bar.update(n)
            finally:
                # every queued chunk is written and hashed before anything else happens, so
                # the hash covers exactly the bytes in the partial file, even on errors
                pipe.close()
    except OSError as exc:
        if isinstance(exc, HubError):
            raise
        raise CacheError(
            f"cannot write {partial.path}: {exc.strerror or exc}; check free space and "
            "permissions of YOLOHUB_HOME"
        ) from exc
    if total is not None and partial.pos < total:
        raise TransientError(f"body ended early: received {partial.pos} of {total} bytes")
    if total is not None and partial.pos > total:
        raise DownloadError(
            f"{redact(url)}: received {partial.pos} bytes, more than the {total} announced"
        )
    return partial.pos


def _validator(headers: dict) -> str | None:
    """A strong validator for If-Range: a strong ETag, else Last-Modified."""
    etag = headers.get("etag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("last-modified") or None


def _int_or_none(value) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
