"""The download job: bring one pinned file into the cache, or find it there, and say where it is.

:func:`fetch_file` takes plain arguments (links, expected sha256, size, file format) so it can be
tested without cards.  A job first asks the cache (one ``stat`` when the file's verification
record still matches, a re-hash when it changed); otherwise it takes the asset's download lock
(:mod:`hub.assets.locks`) and tries every candidate link in order: mirrors first
(:mod:`hub.assets.urls`), bytes into a :class:`~hub.assets.partial.Partial` over HTTP
(:mod:`hub.assets.ranged`, resumable) or from a local file (:mod:`hub.assets.local`).  Only when
the digest (and the size, when known) match does the file move into ``blobs/`` with one rename,
under the blob lock, and its owner get recorded (:mod:`hub.assets.records`); a mismatch goes to
the quarantine (:mod:`hub.assets.quarantine`) and raises
:class:`~hub.errors.ChecksumMismatchError`.  When every link fails, one error lists each.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hub.assets import records
from hub.assets.cache_layout import CacheLayout, file_extension
from hub.assets.http import Transport
from hub.assets.integrity import (
    VerificationRecord,
    digest_matches,
    is_weak,
    normalize_sha256,
    verify_file,
)
from hub.assets.local import copy_local
from hub.assets.locks import blob_lock, download_lock
from hub.assets.partial import Partial
from hub.assets.quarantine import quarantine
from hub.assets.ranged import fetch_http
from hub.assets.urls import candidate_urls, check_url, redact
from hub.errors import (
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
from hub.fileio import _UMASK
from hub.progress import human_bytes, show_progress  # noqa: F401 (re-exported)
from hub.settings import Settings, get_settings

log = logging.getLogger(__name__)

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


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
        ext=file_extension(file_format),
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
        self.layout = CacheLayout(self.settings.home)
        self.partial = Partial(
            self.layout.partial_path(self.declared, self.ext), declared=self.declared,
            size=self.size, label=self.label, settings=self.settings, progress=self.progress,
        )

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
        with download_lock(self.layout, self.declared, timeout=self.settings.lock_timeout,
                           label=self.label):
            if not force:
                hit = self._cached(deep_if_changed=True)
                if hit is not None:
                    return hit
            else:
                self.partial.discard()
            return self._download(candidates)

    # -- the cache side --

    def _cached(self, *, deep_if_changed: bool) -> DownloadResult | None:
        """The cached file, if it still verifies; registered for our owner before returning."""
        found = records.locate(self.layout, self.declared, self.ext)
        if found is None:
            return None
        path, sha = found
        old = records.read_asset_record(self.layout, self.declared)
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
        record = records.load_record(self.layout, sha)
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
            records.drop_record(self.layout, sha)
            return None
        if new_record is not None:
            records.store_record(self.layout, new_record)
        self._register(result.actual or sha, result.size or 0, url=None)
        return DownloadResult(path, result.actual or sha, self.declared, result.size or 0, None,
                              True)

    def _register(self, sha: str, size: int, *, url: str | None) -> None:
        """Record our owner as a user of blob ``sha`` (unless the record already says so)."""
        old = records.read_asset_record(self.layout, self.declared)
        if old is not None and old.sha256 == sha and (
            self.owner is None or (url is None and self.owner in old.owners)
        ):
            return
        info = dict(self.owner_info)
        if url:
            info["url"] = redact(url)
        info["at"] = time.time()
        try:
            records.write_asset_record(
                self.layout, declared=self.declared, sha256=sha, ext=self.ext, size=size,
                owner=self.owner, owner_info=info,
            )
        except OSError as exc:  # a read-only shared cache still serves verified files
            log.debug("cannot update the asset record: %s", exc)

    def _quarantine(self, path: Path, actual: str, *, url: str | None, reason: str) -> Path:
        return quarantine(self.layout, path, declared=self.declared, actual=actual, ext=self.ext,
                          url=url, reason=reason, label=self.label)

    # -- the links --

    def _download(self, candidates: list[str]) -> DownloadResult:
        failures: list[tuple[str, HubError]] = []
        transport = Transport(self.settings)
        try:
            for url in candidates:
                try:
                    check_url(url)
                    if url.lower().startswith("file:"):
                        actual, n = copy_local(self.partial, url)
                    else:
                        actual, n = fetch_http(self.partial, transport, url)
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

    def _finish(self, url: str, actual: str, n: int) -> DownloadResult:
        """Move verified bytes into ``blobs/`` and register them; quarantine anything else."""
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
        partial = self.partial
        if problem:
            partial.state_path.unlink(missing_ok=True)
            target = self._quarantine(partial.path, actual, url=url, reason=problem)
            raise ChecksumMismatchError(
                f"{redact(url)}: {problem}. The file was NOT added to the cache (kept for "
                f"inspection as {target}). The link may serve a different file than the card "
                "pins; try a mirror or report it to the card's author",
                expected=self.declared, actual=actual, url=redact(url), size=n,
                expected_size=self.size, path=str(target),
            )
        blob = self.layout.blob_path(actual, self.ext)
        blob.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(partial.path, 0o666 & ~_UMASK)  # verified: as readable as any cache file
        with blob_lock(self.layout, actual, timeout=self.settings.lock_timeout, label=self.label):
            os.replace(partial.path, blob)
            partial.state_path.unlink(missing_ok=True)
            records.store_record(self.layout, VerificationRecord.for_file(blob, actual))
            self._register(actual, n, url=url)
        if is_weak(self.declared):
            log.warning(
                "%s: verified against a %d-digit sha256 prefix only (weak); the full digest is "
                "%s; `yolohub rehash NAME` writes it into the card",
                self.label, len(self.declared), actual,
            )
        log.debug("%s: %s verified (sha256 %s)", self.label, human_bytes(n), actual[:16])
        return DownloadResult(blob, actual, self.declared, n, redact(url), False,
                              partial.transferred, partial.resumed_from)


# --- when every link failed ----------------------------------------------------------------------


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
