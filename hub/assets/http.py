"""The only module that opens network connections: one session, its timeouts, and the retry policy.

It opens one streaming request at a time with the connect/read timeouts from the settings,
follows redirects only to links the URL policy (:mod:`hub.assets.urls`) allows, and turns HTTP
answers into either a response to read, a :class:`TransientError` worth retrying, or a
:class:`~hub.errors.DownloadError` (an :class:`~hub.errors.UnreachableError` when the host name
does not resolve, the connection is refused or TLS fails: retrying cannot fix those).
:class:`RetryBudget` holds the retry policy: exponential backoff with jitter, ``Retry-After``
honoured, and the count reset whenever bytes arrive.  :func:`get_document` fetches small
documents (registry indexes, cards) whole.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

from hub.assets.urls import (  # noqa: F401 (strip_link, candidate_urls: imported from here too)
    candidate_urls,
    check_url,
    file_url_path,
    redact,
    strip_link,
)
from hub.errors import (
    DownloadError,
    HTTPStatusError,
    OfflineModeError,
    UnreachableError,
    UnsafeURLError,
)
from hub.settings import Settings, get_settings

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_REDIRECTS = 10
MAX_RETRY_AFTER = 300.0


# --- retries -------------------------------------------------------------------------------------


class TransientError(Exception):
    """A failure worth retrying (connection error, read timeout, 408/429/5xx, truncated body).

    Internal to the download code; it never escapes :mod:`hub.assets.download`.
    """

    def __init__(self, reason: str, *, retry_after: float | None = None):
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(reason)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class RetryBudget:
    """How many more failures a transfer may absorb, and how long to sleep before the next try.

    The budget is ``settings.retries`` consecutive failures; :meth:`progress` (called when bytes
    arrive) resets it, so a slow but moving transfer is never abandoned.  Delays double from
    ``settings.backoff`` up to ``settings.backoff_max``, with equal jitter; a ``Retry-After``
    from the server is a lower bound (capped at five minutes).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ):
        self.retries = settings.retries
        self.base = settings.backoff
        self.cap = settings.backoff_max
        self.failures = 0
        self._sleep = sleep
        self._rng = rng
        self.history: list[str] = []

    def progress(self) -> None:
        self.failures = 0

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        d = min(self.cap, self.base * (2 ** max(0, failures - 1)))
        d = d / 2 + self._rng() * d / 2
        if retry_after is not None:
            d = max(d, min(retry_after, MAX_RETRY_AFTER))
        return d

    def absorb(self, error: TransientError, url: str) -> None:
        """Sleep before the next attempt, or raise :class:`DownloadError` once the budget is spent."""
        self.failures += 1
        self.history.append(error.reason)
        if self.failures > self.retries:
            raise DownloadError(
                f"{redact(url)}: gave up after {self.failures} consecutive failures without "
                f"progress; last: {error.reason}"
            )
        d = self.delay(self.failures, error.retry_after)
        log.info(
            "%s: %s; retry %d/%d in %.1f s", redact(url), error.reason, self.failures,
            self.retries, d,
        )
        self._sleep(d)


# --- one request ---------------------------------------------------------------------------------


@dataclass
class Response:
    """An open streaming answer: status, the headers we use, and the body iterator."""

    url: str
    status: int
    headers: dict
    _resp: object

    def readinto(self, buffer: memoryview) -> int:
        """Fill ``buffer`` with the next body bytes; 0 at the end of the body.

        Reads straight from the ``http.client`` response into the caller's buffer (no
        intermediate ``bytes`` copies, which cost as much as the hashing on a fast link); falls
        back to urllib3's ``read`` when that object is not available.  Connection problems and
        bodies cut short surface as :class:`TransientError`.
        """
        import http.client

        import requests
        import urllib3

        raw = self._resp.raw
        fp = getattr(raw, "_fp", None)
        try:
            if fp is not None and hasattr(fp, "readinto") and not getattr(fp, "closed", True):
                return fp.readinto(buffer)
            if fp is not None and getattr(fp, "closed", False):
                return 0
            chunk = raw.read(len(buffer), decode_content=False)
            buffer[: len(chunk)] = chunk
            return len(chunk)
        except (
            requests.exceptions.RequestException,
            urllib3.exceptions.HTTPError,
            http.client.HTTPException,
            OSError,
        ) as exc:
            raise TransientError(f"connection broken mid-body ({_short(exc)})") from None

    def close(self) -> None:
        self._resp.close()


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps: ``reason`` (urllib3), exception arguments, ``__cause__``."""
    chain: list[BaseException] = []
    todo = [exc]
    while todo and len(chain) < 20:
        e = todo.pop(0)
        if any(e is c for c in chain):
            continue
        chain.append(e)
        reason = getattr(e, "reason", None)
        todo += [x for x in (reason, *getattr(e, "args", ()), e.__cause__, e.__context__)
                 if isinstance(x, BaseException)]
    return chain


def connection_failure(exc: BaseException, url: str) -> Exception:
    """Classify a failed connection: :class:`UnreachableError` when retrying cannot help (the
    name does not resolve, the host refuses, TLS fails), else a :class:`TransientError`.

    The message names the cause itself (``Name or service not known``, ``Connection refused``,
    the TLS verification error), not urllib3's wrapper text, so it stays short and whole.
    """
    import socket
    import ssl

    import urllib3

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    chain = _causes(exc)
    for e in chain:
        if isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError":
            gai = next((c for c in chain if isinstance(c, socket.gaierror)), None)
            why = gai.strerror if gai is not None and gai.strerror else "name resolution failed"
            return UnreachableError(f"cannot resolve the host name ({why})")
    for e in chain:
        if isinstance(e, ConnectionRefusedError):
            return UnreachableError(f"connection refused (nothing listens on port {port})")
    for e in chain:
        if isinstance(e, ssl.SSLError):
            why = getattr(e, "verify_message", None) or getattr(e, "reason", None) or str(e)
            return UnreachableError(f"TLS failed: {why}")
    for e in chain:
        if isinstance(e, (urllib3.exceptions.SSLError,)) or type(e).__name__ == "SSLError":
            return UnreachableError(f"TLS failed: {_short(chain[-1])}")
    inner = next((e for e in reversed(chain) if isinstance(e, OSError) and e.strerror), None)
    why = inner.strerror if inner is not None else _short(chain[-1])
    return TransientError(f"connection failed ({why})")


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."


class Transport:
    """A requests session that applies the settings' timeouts to every request."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or get_settings()
        self._session = None

    def _sess(self):
        if self._session is None:
            import requests

            s = requests.Session()
            s.headers["User-Agent"] = _user_agent()
            # checkpoints are binary: a content-coding would break Range offsets and sizes
            s.headers["Accept-Encoding"] = "identity"
            s.trust_env = True
            self._session = s
        return self._session

    def open(self, url: str, *, headers: dict | None = None) -> Response:
        """Send one GET and return the streaming response (2xx or 416).

        Raises :class:`TransientError` for failures worth retrying, :class:`DownloadError` for
        definitive refusals (404, 403, ...), :class:`UnsafeURLError` for a link or redirect
        yolohub will not follow, :class:`OfflineModeError` when offline mode is on.
        """
        import requests

        if self.settings.offline:
            raise OfflineModeError(
                f"offline mode is on (YOLOHUB_OFFLINE or offline=True): not fetching "
                f"{redact(url)}; turn it off or put the file in the cache first"
            )
        timeout = (self.settings.connect_timeout, self.settings.read_timeout)
        for _hop in range(MAX_REDIRECTS + 1):
            check_url(url)
            if urlsplit(url).scheme.lower() == "file":
                raise UnsafeURLError(f"refusing redirect to a local file {url}")
            try:
                r = self._sess().get(
                    url, headers=headers or {}, stream=True, timeout=timeout,
                    allow_redirects=False,
                )
            except requests.exceptions.ConnectTimeout as exc:
                raise TransientError(
                    f"connect timeout after {self.settings.connect_timeout:g} s ({_short(exc)})"
                ) from None
            except requests.exceptions.ReadTimeout:
                raise TransientError(
                    f"no answer within the read timeout of {self.settings.read_timeout:g} s"
                ) from None
            except requests.exceptions.ConnectionError as exc:
                raise connection_failure(exc, url) from None
            except requests.exceptions.RequestException as exc:
                raise DownloadError(f"{redact(url)}: request failed: {_short(exc)}") from None
            if r.is_redirect and r.headers.get("Location"):
                nxt = requests.compat.urljoin(url, r.headers["Location"])
                r.close()
                log.debug("redirect %s -> %s", redact(url), redact(nxt))
                url = nxt
                continue
            if 200 <= r.status_code < 300 or r.status_code == 416:
                return Response(url, r.status_code, dict(r.headers), r)
            status = r.status_code
            reason = f"HTTP {status} {r.reason or ''}".strip()
            retry_after = parse_retry_after(r.headers.get("Retry-After"))
            r.close()
            if status in RETRY_STATUSES:
                raise TransientError(reason, retry_after=retry_after)
            hint = {
                401: "the server wants credentials; yolohub only fetches public files",
                403: "the server refuses access; check the link or use a mirror (YOLOHUB_MIRRORS)",
                404: "the file is not at that address; the card's link may be stale, try a "
                "mirror (YOLOHUB_MIRRORS) or ask the card's author",
            }.get(status, "the server refused the request")
            raise HTTPStatusError(f"{redact(url)}: {reason}: {hint}", status=status,
                                  reason=reason, hint=hint)
        raise DownloadError(f"{redact(url)}: more than {MAX_REDIRECTS} redirects")

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _user_agent() -> str:
    from hub import __version__

    return f"yolohub/{__version__}"


# --- small documents (registry indexes and cards) -------------------------------------------------


@dataclass
class Document:
    """A small document fetched whole: status 200 with its bytes, or 304 (not modified)."""

    url: str
    status: int
    headers: dict
    body: bytes = b""


def get_document(
    url: str,
    *,
    headers: dict | None = None,
    max_bytes: int = 64 << 20,
    settings: Settings | None = None,
) -> Document:
    """GET a small document (an index or a card) in one request, without retries.

    Conditional headers (``If-None-Match`` / ``If-Modified-Since``) may be passed; a 304 answer
    comes back as a :class:`Document` with status 304.  ``file://`` URLs are read from disk.
    Connection failures and 5xx raise :class:`TransientError` (the caller falls back to its
    cache); other refusals :class:`DownloadError`; offline mode :class:`OfflineModeError`.
    """
    import requests

    settings = settings or get_settings()
    url = check_url(url)
    if urlsplit(url).scheme.lower() == "file":
        path = file_url_path(url)
        try:
            with open(path, "rb") as f:
                body = f.read(max_bytes + 1)
        except FileNotFoundError:
            raise DownloadError(f"{url}: no such file") from None
        except OSError as exc:
            raise DownloadError(f"{url}: cannot read: {exc.strerror or exc}") from None
        if len(body) > max_bytes:
            raise DownloadError(f"{url}: larger than {max_bytes} bytes; is this really an index?")
        return Document(url, 200, {}, body)
    if settings.offline:
        raise OfflineModeError(f"offline mode is on: not fetching {redact(url)}")
    timeout = (settings.connect_timeout, settings.read_timeout)
    with requests.Session() as s:
        s.headers["User-Agent"] = _user_agent()
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                r = s.get(url, headers=headers or {}, timeout=timeout, stream=True,
                          allow_redirects=False)
            except requests.exceptions.RequestException as exc:
                raise TransientError(f"{redact(url)}: {_short(exc)}") from None
            with r:
                if r.is_redirect and r.headers.get("Location"):
                    url = check_url(requests.compat.urljoin(url, r.headers["Location"]))
                    if urlsplit(url).scheme.lower() == "file":
                        raise UnsafeURLError(f"refusing redirect to a local file {url}")
                    continue
                if r.status_code == 304:
                    return Document(url, 304, dict(r.headers))
                if r.status_code in RETRY_STATUSES:
                    raise TransientError(f"{redact(url)}: HTTP {r.status_code} {r.reason or ''}")
                if r.status_code != 200:
                    raise DownloadError(
                        f"{redact(url)}: HTTP {r.status_code} {r.reason or ''}".rstrip()
                    )
                body = bytearray()
                try:
                    for chunk in r.iter_content(1 << 16):
                        body += chunk
                        if len(body) > max_bytes:
                            raise DownloadError(
                                f"{redact(url)}: larger than {max_bytes} bytes; is this really "
                                "a registry document?"
                            )
                except requests.exceptions.RequestException as exc:
                    raise TransientError(f"{redact(url)}: {_short(exc)}") from None
                return Document(url, 200, dict(r.headers), bytes(body))
    raise DownloadError(f"{redact(url)}: more than {MAX_REDIRECTS} redirects")
