"""Failing fast without a network: what retrying cannot fix is tried once, and said in one line.

Real sockets on loopback (a port nobody listens on, a server answering 404/403, TLS spoken to a
plain-HTTP server).  Host names that do not resolve use the reserved ``.invalid`` TLD, and name
resolution is answered locally (as a machine without network would), so no query leaves the
machine.
"""

from __future__ import annotations

import logging
import socket
import time

import pytest
from httpserver import make_random_file, serve_copy

from hub.assets.download import fetch_file
from hub.assets.http import Transport
from hub.cards.catalog import resolve
from hub.cli import main
from hub.errors import DownloadError, UnreachableError
from hub.settings import get_settings

MiB = 1 << 20


@pytest.fixture(autouse=True)
def default_retry_policy(monkeypatch):
    """The shipped policy (5 retries, backoff 1..8 s): a retried failure would take many seconds."""
    for key in ("YOLOHUB_RETRIES", "YOLOHUB_BACKOFF", "YOLOHUB_BACKOFF_MAX"):
        monkeypatch.delenv(key, raising=False)
    assert get_settings().retries == 5 and get_settings().backoff == 1.0


def _no_dns(monkeypatch, *, everything: bool = False):
    """Resolve only loopback names; others fail at once, as without a network (nothing is sent)."""
    real = socket.getaddrinfo
    asked = []

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in ("localhost", "127.0.0.1", "::1"):
            return real(host, *args, **kwargs)
        asked.append(name)
        if everything:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if name.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        raise AssertionError(f"unexpected lookup of {name}")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _timed(fn):
    start = time.monotonic()
    with pytest.raises(DownloadError) as err:
        fn()
    return err.value, time.monotonic() - start


def test_a_refused_connection_is_not_retried(tmp_path):
    url = f"http://127.0.0.1:{_free_port()}/w.ckpt"
    err, seconds = _timed(lambda: fetch_file([url], sha256="ab" * 32))
    assert seconds < 3.0  # five retries with the default backoff sleep at least 11.5 s
    text = str(err)
    assert "connection refused" in text and text.count(url) == 1
    assert "YOLOHUB_OFFLINE=1" in text and "YOLOHUB_MIRRORS" in text
    assert err.exit_code == 5


def test_an_unresolvable_host_is_not_retried_and_the_cause_is_whole(monkeypatch):
    asked = _no_dns(monkeypatch)
    url = "https://models.example.invalid/yolo/w.ckpt"
    with pytest.raises(UnreachableError, match=r"cannot resolve the host name \(Name or service"):
        Transport(get_settings()).open(url)
    err, seconds = _timed(lambda: fetch_file([url], sha256="ab" * 32))
    assert seconds < 3.0 and asked.count("models.example.invalid") == 2  # once per call
    assert str(err).count(url) == 1 and "(Name or service not known)" in str(err)


@pytest.mark.parametrize("status", [404, 403])
def test_404_and_403_are_not_retried(http_server, status):
    if status == 403:
        (http_server.root / "w.ckpt").write_bytes(b"x")
        http_server.fail(403, times=10)
    url = http_server.url_for("w.ckpt")
    err, seconds = _timed(lambda: fetch_file([url], sha256="ab" * 32))
    assert seconds < 3.0 and len(http_server.gets()) == 1
    assert f"HTTP {status}" in str(err) and str(err).count(url) == 1
    assert "YOLOHUB_MIRRORS" in str(err)


def test_tls_failure_is_not_retried(http_server):
    (http_server.root / "w.ckpt").write_bytes(b"x")
    url = http_server.url_for("w.ckpt").replace("http://", "https://")  # TLS to a plain server
    err, seconds = _timed(lambda: fetch_file([url], sha256="ab" * 32))
    assert seconds < 3.0 and "TLS failed" in str(err) and str(err).count(url) == 1
    assert http_server.gets() == []  # the handshake failed: no request was ever made


def test_server_errors_are_still_retried(http_server, big_file, monkeypatch):
    monkeypatch.setenv("YOLOHUB_BACKOFF", "0.01")
    src, sha, size = big_file
    url = serve_copy(http_server, src, "w.ckpt")
    http_server.fail(503, times=2)
    assert fetch_file([url], sha256=sha, size=size).size == size
    assert [r.status for r in http_server.gets()] == [503, 503, 200]


def test_a_dead_first_link_is_mentioned_once_when_a_mirror_delivers(http_server, tmp_path,
                                                                   caplog):
    sha, size = make_random_file(http_server.root / "w.ckpt", MiB)
    dead = f"http://127.0.0.1:{_free_port()}/w.ckpt"
    with caplog.at_level(logging.INFO, logger="hub"):
        r = fetch_file([dead, http_server.url_for("w.ckpt")], sha256=sha, size=size)
    assert r.size == size
    (line,) = [m for m in caplog.messages if dead in m]
    assert "connection refused" in line and "got the file from" in line


def test_a_builtin_card_without_network_fails_in_seconds_with_one_line_per_link(
    monkeypatch, capsys
):
    asked = _no_dns(monkeypatch, everything=True)
    release = resolve("yolov3_darknet53")
    start = time.monotonic()
    code = main(["download", "yolov3_darknet53"])
    seconds = time.monotonic() - start
    out, err = capsys.readouterr()
    assert code == 5 and out == "" and seconds < 5.0, (seconds, err)
    lines = err.splitlines()
    assert lines[0].startswith("error: ") and err.count("error: ") == 1
    links = [line for line in lines if line.startswith("  - ")]
    assert len(links) == len(asked) >= 2  # every link (mirrors included) tried exactly once
    for line in links:
        assert len(line) < 200 and line.count("https://") == 1
        assert line.endswith("cannot resolve the host name (Temporary failure in name resolution)")
    assert release.asset.links[0].strip("<>") in err
    assert "YOLOHUB_OFFLINE=1" in lines[-1] and "YOLOHUB_MIRRORS" in lines[-1]
    assert "retry" not in err.lower() and "Traceback" not in err
