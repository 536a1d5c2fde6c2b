"""A real HTTP server on 127.0.0.1 for tests, with faults that can be switched on per request.

It is :mod:`hub.assets.serve`'s static server (Range, If-Range, ETag, sendfile) plus a queue of faults:
each GET takes the next queued fault (``times`` says for how many GETs it stays), and every
request is logged (method, path, Range, If-Range, status, body bytes sent).

``tests/conftest.py`` loads this module as a pytest plugin, so its fixtures (``http_server``,
``socket_guard``, ``big_file``) are available to every test module; import the helpers::

    from httpserver import make_random_file

    def test_something(http_server):
        sha, size = make_random_file(http_server.root / "w.ckpt", 4 << 20)
        http_server.drop_after(1 << 20)              # first GET breaks after 1 MiB
        url = http_server.url_for("w.ckpt")
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hub.assets.serve import StaticHandler, StaticServer


@dataclass
class Fault:
    """What to do wrong on a GET.

    kind: ``status`` (answer ``status`` with an empty body, optional ``Retry-After``), ``drop``
    (send ``after_bytes`` of the body, then close the connection), ``wrong_length`` (announce
    ``Content-Length + delta``, send the real bytes, close), ``ignore_range`` (answer 200 with the
    whole file even to a Range request), ``trickle`` (send ``after_bytes`` at full speed, the rest
    at ``rate`` bytes/s), ``stall`` (send headers and ``after_bytes``, then sleep ``seconds``),
    ``no_length`` (no Content-Length: the body runs until the connection closes), ``redirect``
    (302 to ``location``), ``none`` (behave, but still run ``then``; ``disposition`` adds a
    Content-Disposition header).  ``then`` runs after the response (e.g. to change the
    served file); ``times`` is how many GETs the fault applies to (None: forever).
    """

    kind: str
    status: int = 500
    retry_after: str | None = None
    after_bytes: int = 0
    rate: float = 0.0
    delta: int = 0
    seconds: float = 0.0
    then: Callable[[], None] | None = None
    times: int | None = 1
    disposition: str | None = None
    location: str = ""


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    if_range: str | None
    time: float
    status: int | None = None
    sent: int = 0
    fault: str | None = None
    headers: dict = field(default_factory=dict)


class FaultHandler(StaticHandler):
    fault: Fault | None = None
    entry: Request | None = None

    def _serve(self, *, head: bool) -> None:
        self.fault = None if head else self.server.take_fault()
        self.entry = self.server.log_request_entry(self, head)
        fault = self.fault
        if fault is not None:
            self.entry.fault = fault.kind
        try:
            if fault is not None and fault.kind == "status":
                self.send_response(fault.status)
                if fault.retry_after is not None:
                    self.send_header("Retry-After", fault.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if fault is not None and fault.kind == "redirect":
                self.send_response(302)
                self.send_header("Location", fault.location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if fault is not None and fault.kind == "ignore_range":
                del self.headers["Range"]
            super()._serve(head=head)
        finally:
            if fault is not None and fault.then is not None:
                fault.then()

    def send_response(self, code, message=None) -> None:
        if self.entry is not None:
            self.entry.status = int(code)
        super().send_response(code, message)

    def end_headers(self) -> None:
        fault = self.fault
        if fault is not None and fault.disposition:
            self.send_header("Content-Disposition", fault.disposition)
        super().end_headers()

    def send_length_header(self, length: int) -> None:
        fault = self.fault
        if fault is not None and fault.kind == "no_length":
            self.close_connection = True
            self.send_header("Connection", "close")
            return
        if fault is not None and fault.kind == "wrong_length":
            self.close_connection = True
            self.send_header("Connection", "close")
            length = max(0, length + fault.delta)
        super().send_length_header(length)

    def _send(self, f, start: int, count: int) -> None:
        sent = self.connection.sendfile(f, offset=start, count=count)
        self.entry.sent += sent or 0

    def send_body(self, f, start: int, length: int) -> None:
        fault = self.fault
        try:
            if fault is None or fault.kind in ("ignore_range", "none", "wrong_length", "no_length"):
                self._send(f, start, length)
                if fault is not None and fault.kind in ("wrong_length", "no_length"):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            head = min(fault.after_bytes, length)
            if head:
                self._send(f, start, head)
            if fault.kind == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault.kind == "stall":
                time.sleep(fault.seconds)
                self._send(f, start + head, length - head)
                return
            if fault.kind == "trickle":
                piece = max(1, int(fault.rate / 20))
                pos = start + head
                end = start + length
                while pos < end:
                    n = min(piece, end - pos)
                    self._send(f, pos, n)
                    pos += n
                    time.sleep(n / fault.rate)
                return
            raise AssertionError(f"unknown fault {fault.kind}")
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True


class FaultServer:
    """A threaded static server on 127.0.0.1 with a free port, a fault queue and a request log."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._server = StaticServer(self.root, ("127.0.0.1", 0), FaultHandler)
        self._server.take_fault = self._take_fault
        self._server.log_request_entry = self._log
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.requests: list[Request] = []
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return self._server.url

    def url_for(self, name: str) -> str:
        return f"{self.url}/{name}"

    # -- faults --

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def fail(self, status: int = 500, *, times: int = 1, retry_after: str | None = None) -> Fault:
        return self.add(Fault("status", status=status, times=times, retry_after=retry_after))

    def drop_after(self, n: int, *, times: int = 1, then=None) -> Fault:
        return self.add(Fault("drop", after_bytes=n, times=times, then=then))

    def wrong_length(self, delta: int, *, times: int | None = 1) -> Fault:
        return self.add(Fault("wrong_length", delta=delta, times=times))

    def ignore_range(self, *, times: int | None = None) -> Fault:
        return self.add(Fault("ignore_range", times=times))

    def trickle(self, rate: float, *, after: int = 0, times: int = 1) -> Fault:
        return self.add(Fault("trickle", rate=rate, after_bytes=after, times=times))

    def stall(self, seconds: float, *, after: int = 0, times: int = 1) -> Fault:
        return self.add(Fault("stall", seconds=seconds, after_bytes=after, times=times))

    def no_length(self, *, times: int | None = 1) -> Fault:
        return self.add(Fault("no_length", times=times))

    def redirect(self, location: str, *, times: int | None = 1) -> Fault:
        return self.add(Fault("redirect", location=location, times=times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self) -> Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.pop(0)
            return fault

    # -- log --

    def _log(self, handler: StaticHandler, head: bool) -> Request:
        entry = Request(
            method="HEAD" if head else "GET",
            path=handler.path,
            range=handler.headers.get("Range"),
            if_range=handler.headers.get("If-Range"),
            time=time.monotonic(),
            headers=dict(handler.headers.items()),
        )
        with self._lock:
            self.requests.append(entry)
        return entry

    def gets(self, name: str | None = None) -> list[Request]:
        with self._lock:
            return [
                r for r in self.requests
                if r.method == "GET" and (name is None or r.path.lstrip("/") == name)
            ]

    def bytes_sent(self, name: str | None = None) -> int:
        return sum(r.sent for r in self.gets(name))

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def make_random_file(path: str | os.PathLike, size: int) -> tuple[str, int]:
    """Write ``size`` random bytes to ``path``; return (sha256 hex, size)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    left = size
    with open(path, "wb") as f:
        while left:
            block = os.urandom(min(left, 1 << 20))
            f.write(block)
            h.update(block)
            left -= len(block)
    return h.hexdigest(), size


@pytest.fixture
def http_server(tmp_path):
    """A :class:`FaultServer` serving ``tmp_path/'srv'``; stopped after the test."""
    server = FaultServer(tmp_path / "srv")
    try:
        yield server
    finally:
        server.stop()


# --- helpers shared by the asset tests ------------------------------------------------------------


def write_asset_card(
    directory: str | os.PathLike,
    name: str,
    links: list[str] | str,
    sha256: str,
    *,
    size: int | None = None,
    version: str = "1.0",
) -> Path:
    """A minimal valid card (MindSpore Hub fields only) with one asset; returns its path."""
    from hub.cards.write import render_card

    links = [links] if isinstance(links, str) else list(links)
    asset = {"file-format": "ckpt", "asset-link": links[0], "asset-sha256": sha256,
             "version": version}
    if len(links) > 1:
        asset["mirrors"] = links[1:]
    if size is not None:
        asset["size"] = size
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.md"
    path.write_text(render_card({"model-name": name, "model-version": version, "asset": [asset]},
                                "test card\n"))
    return path


@dataclass
class SocketGuard:
    """Records (and refuses) every outgoing connection attempted while it is installed."""

    attempts: list = field(default_factory=list)


def install_socket_guard(monkeypatch) -> SocketGuard:
    """Make any outgoing connection from this process fail loudly, and record it."""
    guard = SocketGuard()

    def refuse(sock, address, *a, **k):
        guard.attempts.append(address)
        raise OSError(f"test socket guard: connection to {address!r} attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return guard


@pytest.fixture
def socket_guard(monkeypatch) -> SocketGuard:
    """No outgoing connection from this process for the whole test (attempts are recorded)."""
    return install_socket_guard(monkeypatch)


@pytest.fixture(scope="session")
def big_file(tmp_path_factory) -> tuple[Path, str, int]:
    """One 32 MiB random file per session: (path, sha256, size).  Link it, never modify it."""
    path = tmp_path_factory.mktemp("big") / "big.bin"
    sha, size = make_random_file(path, 32 << 20)
    path.chmod(0o444)
    return path, sha, size


def serve_copy(server: FaultServer, src: Path, name: str) -> str:
    """Expose ``src`` as ``name`` on ``server`` (a hard link, no copy); return its URL."""
    dst = server.root / name
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.link(src, dst)
    return server.url_for(name)
