"""Bring one pinned file into the cache: locked, resumable, hashed while written, atomic.

:func:`fetch_file` takes plain arguments (links, expected sha256, size, file format) so it can be
tested without cards.  The bytes go to ``partial/<declared>.<ext>.partial`` while this process
holds the asset's cross-process lock; they are hashed as they are written; an interrupted
transfer (dropped connection in this process, or a killed process) continues with ``Range`` +
``If-Range``, and anything that would splice two different files (a ``200`` answer to a ranged
request, a changed validator or total size) truncates the partial and starts over.  Only when the
digest (and the size, when known) match does the file move into ``blobs/`` with one rename;
a mismatch moves it to ``quarantine/`` and raises :class:`~hub.errors.ChecksumMismatchError`.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import shutil
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hub.assets import cache as _cache
from hub.assets.http import (
    RetryBudget,
    TransientError,
    Transport,
    candidate_urls,
    check_url,
    file_url_path,
    redact,
)
from hub.assets.integrity import (
    _UMASK,
    CHUNK_SIZE,
    VerificationRecord,
    digest_matches,
    hash_file,
    is_weak,
    normalize_sha256,
    verify_file,
    write_atomic,
)
from hub.errors import (
    CacheError,
    ChecksumMismatchError,
    DownloadError,
    HTTPStatusError,
    HubError,
    InputDataError,
    LockTimeoutError,
    OfflineModeError,
    UnreachableError,
    UnsafeURLError,
)
from hub.settings import Settings, get_settings

log = logging.getLogger(__name__)

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
MAX_RESTARTS = 3
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.I)


@dataclass(frozen=True)
class DownloadResult:
    """Where a verified file is and how it got there."""

    path: Path
    sha256: str  # full digest of the file
    declared: str  # the (possibly prefix) hash the caller asked for
    size: int
    url: str | None  # link the bytes came from; None when served from the cache
    from_cache: bool
    transferred: int = 0  # bytes received by this call
    resumed_from: int = 0  # offset of the first byte this call received

    @property
    def weak(self) -> bool:
        return is_weak(self.declared)


def show_progress(settings: Settings, progress: bool | None) -> bool:
    """Progress bars: off when the caller says so, else ``YOLOHUB_PROGRESS`` (auto = TTY)."""
    if progress is False or settings.progress == "off":
        return False
    if settings.progress == "on":
        return True
    return sys.stderr.isatty()


def fetch_file(
    links: Sequence[str],
    *,
    sha256: str,
    size: int | None = None,
    file_format: str = "ckpt",
    label: str | None = None,
    owner: str | None = None,
    owner_info: dict | None = None,
    settings: Settings | None = None,
    progress: bool | None = None,
    force: bool = False,
) -> DownloadResult:
    """Return the cached, verified file whose sha256 is (or starts with) ``sha256``.

    Served from the cache after one ``stat`` when its verification record still matches.
    Otherwise every candidate URL (each link, preceded by its ``YOLOHUB_MIRRORS`` rewrites) is
    tried in order.  ``owner`` (``name@version``) is recorded as a user of the file.

    Raises :class:`ChecksumMismatchError` (bytes arrived but do not match), :class:`DownloadError`
    (no link delivered), :class:`UnsafeURLError` (no link may be fetched),
    :class:`OfflineModeError`, :class:`LockTimeoutError`, :class:`CacheError` (disk full, cache
    not writable), :class:`InputDataError` (malformed hash, size or format).
    """
    job = _Job(
        links=links,
        declared=normalize_sha256(sha256, what="asset sha256"),
        size=_check_size(size),
        ext=_cache.file_extension(file_format),
        label=label or normalize_sha256(sha256)[:16],
        owner=owner,
        owner_info=owner_info or {},
        settings=settings or get_settings(),
        progress=progress,
    )
    return job.run(force=force)


def _check_size(size) -> int | None:
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InputDataError(f"asset size must be a positive number of bytes, found {size!r}")
    return size


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


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


# --- the cross-process lock ----------------------------------------------------------------------


class DownloadLock:
    """One downloader per asset across processes (an OS file lock, released if the holder dies).

    The holder writes who it is (pid, host, start time) next to the lock so that waiters can say
    whom they are waiting for; after ``timeout`` seconds a waiter gives up with
    :class:`LockTimeoutError` naming the holder.  Because the lock is the kernel's ``flock``, a
    process killed with ``kill -9`` frees it at once: no stale lock file can block anyone.
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
        try:
            data = json.loads(self.owner_path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _describe_owner(self) -> str:
        o = self.owner()
        if not o:
            return "another process"
        since = time.strftime("%H:%M:%S", time.localtime(o.get("started", 0)))
        return f"pid {o.get('pid')} on {o.get('host')} (since {since})"

    def __enter__(self) -> DownloadLock:
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


def blob_lock(layout: _cache.CacheLayout, sha256: str, *, timeout: float,
              label: str) -> DownloadLock:
    """The lock of one cached blob (by full digest), shared by download and cache cleanup.

    A download holds it while it moves a verified file into ``blobs/`` and records who uses it;
    ``cache prune`` / ``cache rm`` hold it while they check that nobody uses a blob and delete
    it.  So a path that :func:`fetch_file` returned is registered before any cleanup can look at
    it, and cleanup never deletes a file between a download's check and its return.  Held for
    milliseconds (or one re-hash of a changed file), never for a transfer.
    """
    return DownloadLock(layout.blob_lock_path(sha256), timeout=timeout, label=label,
                        what="blob", record_owner=False)


# --- one job -------------------------------------------------------------------------------------


class _Restart(Exception):
    """The partial bytes cannot be continued; start the transfer from byte 0."""


@dataclass
class _Job:
    links: Sequence[str]
    declared: str
    size: int | None
    ext: str
    label: str
    owner: str | None
    owner_info: dict
    settings: Settings
    progress: bool | None

    def __post_init__(self) -> None:
        self.layout = _cache.CacheLayout(self.settings.home)
        self.partial = self.layout.partial_path(self.declared, self.ext)
        self.state_path = self.partial.with_name(self.partial.name + ".json")
        self.limit = self.size if self.size is not None else self.settings.max_download
        self.transferred = 0
        self.resumed_from = 0
        self.pos = 0

    # -- cache side --

    def _cached(self, *, deep_if_changed: bool) -> DownloadResult | None:
        found = _cache.locate(self.layout, self.declared, self.ext)
        if found is None:
            return None
        path, sha = found
        old = _cache.read_asset_record(self.layout, self.declared)
        if old is not None and old.sha256 == sha and (self.owner is None or self.owner in old.owners):
            # already registered for us: cleanup keeps it, no lock needed (the fast path)
            return self._check_cached(path, sha, deep_if_changed=deep_if_changed)
        # not (yet) ours: check and register it under the blob lock, so that a concurrent
        # `cache prune` cannot delete it between our check and our return
        lock = blob_lock(self.layout, sha, timeout=self.settings.lock_timeout, label=self.label)
        try:
            lock.__enter__()
        except LockTimeoutError:
            raise
        except OSError as exc:  # a read-only shared cache: nobody can delete from it either
            log.debug("cannot take the blob lock of %s: %s", sha[:12], exc)
            return self._check_cached(path, sha, deep_if_changed=deep_if_changed)
        try:
            return self._check_cached(path, sha, deep_if_changed=deep_if_changed)
        finally:
            lock.__exit__(None, None, None)

    def _check_cached(self, path: Path, sha: str, *,
                      deep_if_changed: bool) -> DownloadResult | None:
        record = _cache.load_record(self.layout, sha)
        if not path.exists():
            return None
        if record is not None and record.sha256 != sha:
            record = None
        if not deep_if_changed:
            try:
                st = path.stat()
            except FileNotFoundError:
                return None
            if record is None or not record.matches_stat(st):
                return None
        result, new_record = verify_file(
            path, self.declared, expected_size=self.size, record=record, label=self.label
        )
        if result.status == "missing":
            return None
        if not result.ok:
            log.warning("%s: cached file is damaged (%s); fetching it again", self.label,
                        result.detail)
            self._quarantine(path, result.actual or "unknown", url=None, reason=result.detail)
            _cache.drop_record(self.layout, sha)
            return None
        if new_record is not None:
            _cache.store_record(self.layout, new_record)
        self._register(result.actual or sha, result.size or 0, url=None)
        return DownloadResult(path, result.actual or sha, self.declared, result.size or 0, None,
                              True)

    def _register(self, sha: str, size: int, *, url: str | None) -> None:
        if self.owner is None:
            old = _cache.read_asset_record(self.layout, self.declared)
            if old is not None and old.sha256 == sha:
                return
        else:
            old = _cache.read_asset_record(self.layout, self.declared)
            if url is None and old is not None and old.sha256 == sha and self.owner in old.owners:
                return
        info = dict(self.owner_info)
        if url:
            info["url"] = redact(url)
        info["at"] = time.time()
        try:
            _cache.write_asset_record(
                self.layout, declared=self.declared, sha256=sha, ext=self.ext, size=size,
                owner=self.owner, owner_info=info,
            )
        except OSError as exc:  # a read-only shared cache still serves verified files
            log.debug("cannot update the asset record: %s", exc)

    def _quarantine(self, path: Path, actual: str, *, url: str | None, reason: str) -> Path:
        qdir = self.layout.quarantine_dir()
        qdir.mkdir(parents=True, exist_ok=True)
        target = qdir / f"{self.declared}-{actual[:16]}-{time.time_ns()}.{self.ext}"
        os.chmod(path, 0o600)  # unverified bytes may be someone's private file: owner only
        os.replace(path, target)
        meta = target.with_name(target.name + ".json")
        write_atomic(
            meta,
            json.dumps({"expected": self.declared, "actual": actual, "url": redact(url or "")
                        or None, "size": target.stat().st_size, "reason": reason,
                        "at": time.time()}, indent=1),
        )
        os.chmod(meta, 0o600)
        log.warning("%s: moved the mismatching file to %s", self.label, target)
        return target

    # -- orchestration --

    def run(self, *, force: bool) -> DownloadResult:
        if not force:
            hit = self._cached(deep_if_changed=False)
            if hit is not None:
                return hit
        candidates = candidate_urls(self.links, self.settings.mirrors)
        if not candidates:
            raise DownloadError(f"{self.label}: the card lists no link to download from")
        if self.settings.offline:
            local = [u for u in candidates if u.lower().startswith("file:")]
            if not local:
                hit = self._cached(deep_if_changed=True)
                if hit is not None:
                    return hit
                raise OfflineModeError(
                    f"{self.label} is not in the cache ({self.layout.root}) and offline mode is "
                    "on (YOLOHUB_OFFLINE=1 or offline=True), so nothing was fetched; download it "
                    "once with network access (`yolohub download NAME`), then go offline"
                )
            candidates = local
        self.layout.ensure()
        with DownloadLock(self.layout.lock_path(self.declared),
                          timeout=self.settings.lock_timeout, label=self.label):
            if not force:
                hit = self._cached(deep_if_changed=True)
                if hit is not None:
                    return hit
            else:
                self._discard_partial()
            return self._download(candidates)

    def _download(self, candidates: list[str]) -> DownloadResult:
        failures: list[tuple[str, HubError]] = []
        transport = Transport(self.settings)
        try:
            for url in candidates:
                try:
                    check_url(url)
                    if url.lower().startswith("file:"):
                        actual, n = self._copy_local(url)
                    else:
                        actual, n = self._transfer(transport, url)
                    result = self._finish(url, actual, n)
                except (ChecksumMismatchError, DownloadError, UnsafeURLError,
                        OfflineModeError) as exc:
                    log.debug("%s: %s", self.label, exc)  # the combined error says it once
                    failures.append((url, exc))
                    continue
                # failed links are worth a word only when another one delivered; when all fail,
                # the error lists each once
                for failed, exc in failures:
                    log.warning("%s: %s failed (%s); got the file from %s", self.label,
                                redact(failed), _link_reason(failed, exc), redact(url))
                return result
        finally:
            transport.close()
        raise _combine(self.label, self.declared, failures)

    def _discard_partial(self) -> None:
        self.partial.unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)

    def _finish(self, url: str, actual: str, n: int) -> DownloadResult:
        problem = None
        if self.size is not None and n != self.size:
            problem = f"received {n} bytes, the card says {self.size}"
            if n < self.size:
                problem += f" (truncated at {n} of {self.size})"
        if not digest_matches(self.declared, actual):
            what = "sha256" if not is_weak(self.declared) else "sha256 prefix"
            hash_problem = f"expected {what} {self.declared}, got {actual}"
            if n == 0 or actual == EMPTY_SHA256:
                hash_problem += " (the digest of 0 bytes: the server sent an empty body)"
            problem = hash_problem + (f"; {problem}" if problem else f" over {n} bytes")
        if problem:
            self.state_path.unlink(missing_ok=True)
            target = self._quarantine(self.partial, actual, url=url, reason=problem)
            raise ChecksumMismatchError(
                f"{redact(url)}: {problem}. The file was NOT added to the cache (kept for "
                f"inspection as {target}). The link may serve a different file than the card "
                "pins; try a mirror or report it to the card's author",
                expected=self.declared, actual=actual, url=redact(url), size=n,
                expected_size=self.size, path=str(target),
            )
        blob = self.layout.blob_path(actual, self.ext)
        blob.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.partial, 0o666 & ~_UMASK)  # verified: as readable as any cache file
        with blob_lock(self.layout, actual, timeout=self.settings.lock_timeout, label=self.label):
            os.replace(self.partial, blob)
            self.state_path.unlink(missing_ok=True)
            _cache.store_record(self.layout, VerificationRecord.for_file(blob, actual))
            self._register(actual, n, url=url)
        if is_weak(self.declared):
            log.warning(
                "%s: verified against a %d-digit sha256 prefix only (weak); the full digest is "
                "%s; `yolohub rehash NAME` writes it into the card",
                self.label, len(self.declared), actual,
            )
        log.debug("%s: %s verified (sha256 %s)", self.label, human_bytes(n), actual[:16])
        return DownloadResult(blob, actual, self.declared, n, redact(url), False,
                              self.transferred, self.resumed_from)

    # -- transfers --

    def _copy_local(self, url: str) -> tuple[str, int]:
        """Copy a ``file://`` source into the partial, hashing as it goes (no network)."""
        import hashlib

        src = Path(file_url_path(url))
        try:
            st = src.stat()
        except OSError as exc:
            raise DownloadError(f"{url}: cannot read the local file: {exc.strerror or exc}") from None
        if not src.is_file():
            raise DownloadError(f"{url}: not a regular file")
        self._check_announced(url, st.st_size)
        check_free_space(self.partial.parent, st.st_size)
        h = hashlib.sha256()
        n = 0
        with self._bar(st.st_size, 0) as bar, open(src, "rb") as fin, \
                _open_private(self.partial, append=False) as fout:
            while True:
                chunk = fin.read(CHUNK_SIZE)
                if not chunk:
                    break
                n += len(chunk)
                if n > self.limit:
                    raise self._runaway(url, n)
                fout.write(chunk)
                h.update(chunk)
                bar.update(len(chunk))
        self.transferred += n
        return h.hexdigest(), n

    def _bar(self, total: int | None, initial: int):
        from tqdm import tqdm

        return tqdm(
            total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
            desc=self.label, disable=not show_progress(self.settings, self.progress),
            dynamic_ncols=True, leave=False,
        )

    def _check_announced(self, url: str, total: int | None) -> None:
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

    def _runaway(self, url: str, n: int) -> DownloadError:
        self._discard_partial()
        cap = "the card's size" if self.size is not None else "YOLOHUB_MAX_DOWNLOAD"
        return DownloadError(
            f"{redact(url)}: the body exceeded {human_bytes(self.limit)} ({cap}) after {n} bytes; "
            "stopped and discarded it"
        )

    def _resume_point(self, url: str):
        """(offset, hasher, validator, total) to continue from, or a fresh start."""
        import hashlib

        try:
            n = self.partial.stat().st_size
        except FileNotFoundError:
            return 0, hashlib.sha256(), None, None
        state = _read_state(self.state_path)
        if (
            n > 0
            and state.get("url") == url
            and state.get("validator")
            and (state.get("total") is None or n <= state["total"])
            and n <= self.limit
        ):
            log.info("%s: resuming at byte %d of %s", self.label, n, state.get("total") or "?")
            return n, hash_file(self.partial), state["validator"], state.get("total")
        if n > 0 and state.get("validator") and state.get("url") not in (None, url):
            # bytes from another link: keep them in case this one fails before sending anything;
            # the partial is overwritten only when this link delivers its first byte
            return 0, hashlib.sha256(), None, None
        self._discard_partial()
        return 0, hashlib.sha256(), None, None

    def _transfer(self, transport: Transport, url: str) -> tuple[str, int]:
        """HTTP(S) transfer with retries and resume; returns (sha256 hex, byte count)."""
        import hashlib

        offset, hasher, validator, total = self._resume_point(url)
        budget = RetryBudget(self.settings)
        restarts = 0
        first_offset = None
        if self.size is not None:
            check_free_space(self.partial.parent, self.size - offset)
        with self._bar(total or self.size, offset) as bar:
            while True:
                if offset and not validator:
                    offset, hasher, total = 0, hashlib.sha256(), None
                    self._discard_partial()
                headers = {}
                if offset:
                    headers = {"Range": f"bytes={offset}-", "If-Range": validator}
                received_before = self.transferred
                try:
                    resp = transport.open(url, headers=headers)
                    try:
                        start, validator, total = self._accept(resp, url, offset, validator, total)
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
                                     self.label, offset)
                            offset, hasher = 0, hashlib.sha256()
                        if first_offset is None:
                            first_offset = offset
                            self.resumed_from = offset
                        bar.reset(total=total)
                        bar.update(offset)
                        offset = self._consume(resp, url, offset, hasher, total, bar)
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
                    log.info("%s: %s; starting over", self.label, why)
                    offset, hasher, validator, total = 0, hashlib.sha256(), None, None
                    self._discard_partial()
                except TransientError as exc:
                    if self.transferred > received_before:
                        budget.progress()
                        offset = self.pos
                    budget.absorb(exc, url)

    def _accept(self, resp, url: str, offset: int, validator, total):
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
        self._check_announced(url, total)
        if total is not None:
            check_free_space(self.partial.parent, total - start)
        _write_state(self.state_path, {"url": url, "validator": new_validator, "total": total,
                                       "declared": self.declared})
        return start, new_validator, total

    def _consume(self, resp, url: str, offset: int, hasher, total, bar) -> int:
        """Append the body to the partial, hashing as it goes; ``self.pos`` tracks the offset."""
        self.pos = offset
        try:
            with _open_private(self.partial, append=bool(offset)) as f:
                if offset:
                    f.truncate(offset)
                pipe = _ChunkPipeline(f.write, hasher.update)
                try:
                    while True:
                        chunk = pipe.next_buffer()
                        n = resp.readinto(chunk)
                        if not n:
                            break
                        if self.pos + n > self.limit:
                            raise self._runaway(url, self.pos + n)
                        pipe.put(chunk[:n])
                        self.pos += n
                        self.transferred += n
                        bar.update(n)
                finally:
                    # every queued chunk is written and hashed before anything else happens, so
                    # the hash covers exactly the bytes in the partial file, even on errors
                    pipe.close()
        except OSError as exc:
            if isinstance(exc, HubError):
                raise
            raise CacheError(
                f"cannot write {self.partial}: {exc.strerror or exc}; check free space and "
                "permissions of YOLOHUB_HOME"
            ) from exc
        if total is not None and self.pos < total:
            raise TransientError(f"body ended early: received {self.pos} of {total} bytes")
        if total is not None and self.pos > total:
            raise DownloadError(
                f"{redact(url)}: received {self.pos} bytes, more than the {total} announced"
            )
        return self.pos


class _ChunkPipeline:
    """Hands each received chunk to worker threads: one writes it to disk, one hashes it.

    File writes and ``hashlib`` updates release the GIL, so receiving the next chunk, writing
    this one and hashing the previous one run at the same time: a download costs about the
    slowest of the three instead of their sum.  Queues are short and chunks live in a small
    ring of reusable buffers, so memory stays flat whatever the file size.
    """

    DEPTH = 4

    def __init__(self, *sinks, chunk_size: int = CHUNK_SIZE):
        # Each worker has at most DEPTH chunks queued and one in hand, so a ring of DEPTH + 2
        # buffers never hands out one that a worker still reads.
        self._ring = [memoryview(bytearray(chunk_size)) for _ in range(self.DEPTH + 2)]
        self._next = 0
        self._workers = [_Worker(sink, self.DEPTH) for sink in sinks]

    def next_buffer(self) -> memoryview:
        """A buffer to receive the next chunk into (then pass a slice of it to :meth:`put`)."""
        buf = self._ring[self._next]
        self._next = (self._next + 1) % len(self._ring)
        return buf

    def put(self, chunk: memoryview) -> None:
        for w in self._workers:
            if w.error is not None:
                self.close()
            w.queue.put(chunk)

    def close(self) -> None:
        """Wait for every queued chunk (idempotent); re-raise the first worker failure."""
        for w in self._workers:
            w.stop()
        for w in self._workers:
            if w.error is not None:
                raise w.error


class _Worker:
    def __init__(self, sink, depth: int):
        self.sink = sink
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="yolohub-transfer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (chunk := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.sink(chunk)
                except BaseException as exc:  # re-raised in the caller's thread by close()
                    self.error = exc

    def stop(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()


def _open_private(path: Path, *, append: bool):
    """Open a partial for writing, readable by its owner only until its hash is verified."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a partial left by an older version may be world-readable
        return os.fdopen(fd, "ab" if append else "wb")
    except BaseException:
        os.close(fd)
        raise


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


def _read_state(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_state(path: Path, state: dict) -> None:
    write_atomic(path, json.dumps(state))


def _link_reason(url: str, exc: BaseException) -> str:
    """The failure of one link without the URL in front (the caller shows it once)."""
    if isinstance(exc, HTTPStatusError) and exc.reason:
        return exc.reason  # its advice goes once into the hint below the list
    text = str(exc)
    for prefix in (redact(url), url):
        if text.startswith(prefix + ": "):
            return text[len(prefix) + 2:]
    return text


def _hint(failures: list[tuple[str, HubError]]) -> str:
    """What to do, given why the links failed."""
    errors = [e for _, e in failures]
    hints = []
    if any(isinstance(e, UnreachableError) for e in errors):
        hints.append(
            "No network? YOLOHUB_OFFLINE=1 uses cached files only, without connecting; "
            "YOLOHUB_MIRRORS=old-host=new-host names a reachable copy"
        )
    else:
        for hint in dict.fromkeys(e.hint for e in errors if isinstance(e, HTTPStatusError)):
            if hint:
                hints.append(hint[0].upper() + hint[1:])
    if any(type(e) is DownloadError and "gave up after" in str(e) for e in errors):
        hints.append("the servers kept failing: try again later, or raise YOLOHUB_RETRIES / "
                     "YOLOHUB_READ_TIMEOUT")
    if not hints:
        hints.append("Check the network, or add a mirror with YOLOHUB_MIRRORS=old-host=new-host")
    return "; ".join(hints)


def _combine(label: str, declared: str, failures: list[tuple[str, HubError]]) -> HubError:
    """One error for a job whose every candidate failed, listing each attempt."""
    if len(failures) == 1 and not isinstance(failures[0][1], DownloadError):
        return failures[0][1]
    lines = "\n".join(f"  - {redact(u)}: {_link_reason(u, e)}" for u, e in failures)
    mismatches = [e for _, e in failures if isinstance(e, ChecksumMismatchError)]
    if mismatches:
        first = mismatches[0]
        return ChecksumMismatchError(
            f"{label}: no link delivered the file the card pins ({len(failures)} tried):\n{lines}",
            expected=declared, actual=first.actual, url=first.url, size=first.size,
            expected_size=first.expected_size, path=first.path,
        )
    if all(isinstance(e, UnsafeURLError) for _, e in failures):
        return UnsafeURLError(f"{label}: every link was refused:\n{lines}")
    if all(isinstance(e, OfflineModeError) for _, e in failures):
        return failures[0][1]
    if len(failures) == 1:  # one line
        (u, e), = failures
        return DownloadError(f"{label}: {redact(u)}: {_link_reason(u, e)}. {_hint(failures)}")
    return DownloadError(
        f"{label}: could not download from any of {len(failures)} links:\n{lines}\n"
        f"{_hint(failures)}"
    )
