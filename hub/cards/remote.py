"""Registries served over HTTP(S) or ``file://``: their index, cached, and their cards, verified.

A remote registry is any static host serving a directory written by ``yolohub publish`` or
``yolohub index``: ``<url>/index.json`` plus the card files it lists.  The client

* keeps the index under ``$YOLOHUB_HOME/registries/<key>/`` and asks the server again only when
  the copy is older than ``YOLOHUB_REGISTRY_TTL`` (``yolohub update`` forces it), with
  ``If-None-Match`` / ``If-Modified-Since`` so an unchanged index costs one 304;
* validates a new index against ``schema/registry-index.schema.json`` before it replaces the
  cached one (a broken index never overwrites a good one);
* fetches a card only when a command needs it, and refuses bytes whose sha256 or size differ
  from the index's (``IntegrityError``, exit 4), so a card edited behind the index's back is
  never used;
* when the server is down or offline mode is on, uses the cached index and cards with a
  one-line notice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

from hub.errors import (
    ChecksumMismatchError,
    DownloadError,
    OfflineModeError,
    RegistryError,
)
from hub.settings import Settings, get_settings

log = logging.getLogger(__name__)

_noticed: set[tuple[str, str]] = set()  # (url, reason) notices already printed in this process


def _notice(url: str, text: str) -> None:
    if (url, text) not in _noticed:
        _noticed.add((url, text))
        log.warning("note: %s", text)


def normalize_url(url: str) -> str:
    """The registry's base URL, ending in '/' (a URL naming index.json itself is accepted)."""
    from hub.assets.http import check_url, strip_link

    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url.strip()):
        raise RegistryError(
            f"registry URL {url!r} contains spaces or control characters; percent-encode them "
            "(%20) or fix the URL"
        )
    url = check_url(strip_link(url))
    if url.endswith("/index.json"):
        url = url[: -len("index.json")]
    return url if url.endswith("/") else url + "/"


@dataclass
class RemoteIndex:
    """A validated index and where it came from."""

    url: str
    data: dict
    fetched: float  # when the server last confirmed it (time.time())
    stale: bool = False  # True when the server could not be asked and the cache was used


class RemoteRegistry:
    """One registry URL and its cache directory."""

    def __init__(self, url: str, *, settings: Settings | None = None):
        self.settings = settings or get_settings()
        self.url = normalize_url(url)
        key = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        self.root = self.settings.home / "registries" / key
        self._index: RemoteIndex | None = None

    # -- the index --

    @property
    def _index_file(self) -> Path:
        return self.root / "index.json"

    @property
    def _state_file(self) -> Path:
        return self.root / "state.json"

    def _state(self) -> dict:
        try:
            return json.loads(self._state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _cached(self) -> dict | None:
        try:
            with open(self._index_file, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def index(self, *, force: bool = False) -> RemoteIndex:
        """The registry's index: from the cache when fresh, else revalidated with the server."""
        if self._index is not None and not force:
            return self._index
        state = self._state()
        cached = self._cached() if state.get("url") == self.url else None
        age = time.time() - float(state.get("checked", 0))
        if cached is not None and not force and age < self.settings.registry_ttl:
            self._index = RemoteIndex(self.url, cached, float(state.get("checked", 0)))
            return self._index
        if cached is not None and self.settings.offline:
            _notice(self.url, f"offline mode: using the cached index of {self.url} "
                              f"(checked {_ago(age)} ago)")
            self._index = RemoteIndex(self.url, cached, float(state.get("checked", 0)), True)
            return self._index
        self._index = self._refresh(cached, state)
        return self._index

    def _refresh(self, cached: dict | None, state: dict) -> RemoteIndex:
        from hub.assets.http import TransientError, get_document
        from hub.cards.index import check_index
        from hub.fileio import write_atomic

        headers = {}
        if cached is not None:
            if state.get("etag"):
                headers["If-None-Match"] = state["etag"]
            if state.get("last-modified"):
                headers["If-Modified-Since"] = state["last-modified"]
        target = self.url + "index.json"
        try:
            doc = get_document(target, headers=headers, settings=self.settings)
        except (TransientError, DownloadError, OfflineModeError) as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            if cached is not None:
                age = time.time() - float(state.get("checked", 0))
                _notice(self.url, f"{self.url} unreachable ({_first_line(reason)}); using its "
                                  f"cached index (checked {_ago(age)} ago)")
                return RemoteIndex(self.url, cached, float(state.get("checked", 0)), True)
            if isinstance(exc, OfflineModeError):
                raise OfflineModeError(
                    f"offline mode is on and registry {self.url} has never been fetched; run "
                    "'yolohub update' once while online"
                ) from None
            if isinstance(exc, DownloadError) and "HTTP 404" in str(exc):
                raise RegistryError(
                    f"{self.url} is not a yolohub registry: {target} does not exist (HTTP 404); "
                    "the URL must name the directory holding index.json"
                ) from None
            raise DownloadError(f"registry {self.url}: cannot fetch its index: "
                                f"{_first_line(reason)}") from None
        now = time.time()
        if doc.status == 304 and cached is not None:
            self._write_state(state, now, doc.headers, revalidated=True)
            return RemoteIndex(self.url, cached, now)
        data = _parse_json(doc.body, target, doc.headers)
        check_index(data, origin=target)
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self._index_file, doc.body.decode("utf-8"))
        self._write_state(state, now, doc.headers)
        return RemoteIndex(self.url, data, now)

    def _write_state(self, state: dict, now: float, headers: dict, *, revalidated: bool = False
                     ) -> None:
        """Remember when the index was confirmed and its validators.  A 304 may omit them
        (Python's http.server sends neither ETag nor Last-Modified with it): keep the old ones."""
        from hub.fileio import write_atomic
        lower = {k.lower(): v for k, v in headers.items()}
        keep = state if revalidated else {}
        new = {
            "url": self.url,
            "checked": now,
            "etag": lower.get("etag") or keep.get("etag"),
            "last-modified": lower.get("last-modified") or keep.get("last-modified"),
        }
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self._state_file, json.dumps(new, indent=1))

    def entries(self) -> list[dict]:
        return list(self.index().data.get("cards", []))

    # -- cards --

    def card_path(self, entry: dict) -> Path:
        """A verified local copy of the card ``entry`` names, fetched when not cached."""
        from hub.assets.http import TransientError, get_document
        from hub.fileio import safe_join, write_atomic
        rel = entry["path"]
        local = safe_join(self.root / "cards", *rel.split("/"))
        if _matches(local, entry):
            return local
        url = urljoin(self.url, quote(rel))
        try:
            doc = get_document(url, settings=self.settings, max_bytes=2 << 20)
        except TransientError as exc:
            raise DownloadError(f"{entry['name']}: cannot fetch its card {url}: "
                                f"{_first_line(exc.reason)}") from None
        except OfflineModeError:
            raise OfflineModeError(
                f"offline mode is on and the card of {entry['name']} ({url}) is not cached yet"
            ) from None
        except DownloadError as exc:
            raise DownloadError(
                f"{entry['name']}: the registry's index lists {rel}, but fetching it failed: "
                f"{_first_line(str(exc))}; ask the registry owner to run 'yolohub index'"
            ) from None
        actual = hashlib.sha256(doc.body).hexdigest()
        if actual != entry["sha256"] or len(doc.body) != entry["size"]:
            html = _looks_like_html(doc.body, doc.headers)
            hint = (
                "the server answered with an HTML page instead of the card"
                if html
                else "the card was changed on the server behind the index's back, or the "
                "transfer was tampered with; ask the registry owner to run 'yolohub index'"
            )
            raise ChecksumMismatchError(
                f"card {url} does not match the registry index: expected sha256 "
                f"{entry['sha256']} ({entry['size']} bytes), got {actual} ({len(doc.body)} "
                f"bytes); {hint}",
                expected=entry["sha256"], actual=actual, url=url, size=len(doc.body),
                expected_size=entry["size"],
            )
        local.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(local, doc.body.decode("utf-8"))  # newline="" keeps the bytes identical
        return local

    def load_card(self, entry: dict):
        """The parsed card of ``entry`` (fetched and verified first)."""
        from hub.cards.card import load_card

        path = self.card_path(entry)
        return load_card(path, source="remote")


def _matches(path: Path, entry: dict) -> bool:
    try:
        raw = path.read_bytes()
    except OSError:
        return False
    return len(raw) == entry["size"] and hashlib.sha256(raw).hexdigest() == entry["sha256"]


def _looks_like_html(body: bytes, headers: dict) -> bool:
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    head = body[:512].lstrip().lower()
    return "html" in ctype or head.startswith(b"<!doctype html") or head.startswith(b"<html")


def _parse_json(body: bytes, url: str, headers: dict) -> Any:
    try:
        return json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        what = "an HTML page" if _looks_like_html(body, headers) else "something that is not JSON"
        raise RegistryError(
            f"{url} is not a yolohub registry index: the server returned {what} "
            f"({len(body)} bytes); check the registry URL"
        ) from None


def _first_line(text: str) -> str:
    return str(text).strip().splitlines()[0] if str(text).strip() else "no reason given"


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def update(cards_dirs=(), *, settings: Settings | None = None) -> list[RemoteIndex]:
    """Revalidate the index of every registry URL (``--cards`` / ``cards_dirs`` first, then
    ``YOLOHUB_CARDS``) now, ignoring the refresh interval (``yolohub update``)."""
    from hub.settings import is_url

    settings = settings or get_settings()
    out = []
    for entry in [*cards_dirs, *settings.cards_path]:
        if is_url(entry):
            out.append(RemoteRegistry(entry, settings=settings).index(force=True))
    return out


