"""A small static file server with Range support, for an asset store on loopback.

``yolohub publish`` writes checkpoints into a store directory; any static HTTP server can serve it.
This one is for the demo and the tests: threaded, HTTP/1.1 keep-alive, ``ETag`` and
``Last-Modified`` validators, single-range ``Range`` requests with ``If-Range``, and ``sendfile``
for the body.  Requests are confined to the served directory.
"""

from __future__ import annotations

import email.utils
import logging
import os
import posixpath
import re
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from hub.errors import InputDataError

log = logging.getLogger(__name__)

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class StaticHandler(BaseHTTPRequestHandler):
    """GET/HEAD of regular files below ``server.root``; 404 for anything else."""

    protocol_version = "HTTP/1.1"
    server_version = "yolohub-serve"

    # -- hooks a fault-injecting subclass can override --

    def send_body(self, f, start: int, length: int) -> None:
        """Write ``length`` bytes of ``f`` from ``start`` to the client."""
        self.connection.sendfile(f, offset=start, count=length)

    # -- request handling --

    def do_HEAD(self) -> None:  # noqa: N802 (http.server naming)
        self._serve(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(head=False)

    def resolve(self) -> Path | None:
        """The file a request path names, or None when it is missing or outside the root."""
        root = os.path.realpath(self.server.root)
        path = unquote(urlsplit(self.path).path)
        parts = [p for p in posixpath.normpath(path).split("/") if p and p not in (".", "..")]
        full = os.path.realpath(os.path.join(root, *parts))
        if os.path.commonpath([root, full]) != root or not os.path.isfile(full):
            return None
        return Path(full)

    def validators(self, st: os.stat_result) -> tuple[str, str]:
        etag = f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'
        return etag, email.utils.formatdate(st.st_mtime, usegmt=True)

    def _serve(self, *, head: bool) -> None:
        path = self.resolve()
        if path is None:
            self.send_error(HTTPStatus.NOT_FOUND, "no such file")
            return
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            size = st.st_size
            etag, modified = self.validators(st)
            start, end = 0, size - 1
            status = HTTPStatus.OK
            rng = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if rng and (if_range is None or if_range in (etag, modified)):
                parsed = self.parse_range(rng, size)
                if parsed is None:
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start, end = parsed
                status = HTTPStatus.PARTIAL_CONTENT
            if status == HTTPStatus.OK and self.not_modified(etag, st.st_mtime):
                self.send_response(HTTPStatus.NOT_MODIFIED)
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", modified)
                self.end_headers()
                return
            length = max(0, end - start + 1)
            self.send_response(status)
            self.send_header("Content-Type", self.content_type(path))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
            if status == HTTPStatus.PARTIAL_CONTENT:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_length_header(length)
            self.end_headers()
            if not head and length:
                self.send_body(f, start, length)

    def not_modified(self, etag: str, mtime: float) -> bool:
        """True when the request's If-None-Match / If-Modified-Since says the client's copy is
        current (RFC 9110: If-None-Match wins when both are sent)."""
        inm = self.headers.get("If-None-Match")
        if inm is not None:
            return any(t.strip() in (etag, "*") for t in inm.split(","))
        ims = self.headers.get("If-Modified-Since")
        if ims:
            try:
                since = email.utils.parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError):
                return False
            return int(mtime) <= since
        return False

    @staticmethod
    def content_type(path: Path) -> str:
        """HTML, JSON, markdown and images as themselves (a browser shows the catalog);
        anything else, checkpoints included, as bytes."""
        kind = {".html": "text/html; charset=utf-8", ".json": "application/json",
                ".md": "text/markdown; charset=utf-8", ".png": "image/png",
                ".svg": "image/svg+xml", ".css": "text/css"}
        return kind.get(path.suffix.lower(), "application/octet-stream")

    def send_length_header(self, length: int) -> None:
        self.send_header("Content-Length", str(length))

    @staticmethod
    def parse_range(value: str, size: int) -> tuple[int, int] | None:
        """(first, last) byte of a single ``bytes=`` range, or None when unsatisfiable."""
        m = _RANGE.match(value.strip())
        if not m or (not m.group(1) and not m.group(2)):
            return None
        if not m.group(1):
            n = int(m.group(2))
            return (max(0, size - n), size - 1) if n and size else None
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else size - 1
        if first >= size or last < first:
            return None
        return first, min(last, size - 1)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server signature)
        log.debug("%s %s", self.address_string(), format % args)


class StaticServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, root: str | os.PathLike, address=("127.0.0.1", 0), handler=StaticHandler):
        self.root = Path(root)
        super().__init__(address, handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def serve_directory(
    path: str | os.PathLike,
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    handler: type[StaticHandler] = StaticHandler,
) -> tuple[str, Callable[[], None]]:
    """Serve ``path`` in a background thread; return its base URL and a function that stops it."""
    if not Path(path).is_dir():
        raise InputDataError(f"cannot serve {path}: it is not a directory")
    server = StaticServer(path, (host, port), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="yolohub-serve", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return server.url, stop
