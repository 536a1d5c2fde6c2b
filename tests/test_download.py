"""The transfer layer against a real loopback HTTP server with injected faults (hub.download/http).

Files are tens of MB of random bytes; every assertion is about bytes on disk, digests, the
server's request log or the error raised.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from httpserver import install_socket_guard, make_random_file, serve_copy

from hub.assets.cache_layout import CacheLayout
from hub.assets.download import fetch_file
from hub.assets.http import parse_retry_after
from hub.assets.locks import download_lock
from hub.assets.partial import check_free_space
from hub.assets.urls import candidate_urls, check_url
from hub.errors import (
    CacheError,
    ChecksumMismatchError,
    DownloadError,
    LockTimeoutError,
    OfflineModeError,
    UnsafeURLError,
)
from hub.fileio import safe_join
from hub.settings import get_settings

MiB = 1 << 20


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setenv("YOLOHUB_BACKOFF", "0.01")
    monkeypatch.setenv("YOLOHUB_BACKOFF_MAX", "0.05")
    monkeypatch.setenv("YOLOHUB_RETRIES", "3")


def blobs(home: Path) -> list[Path]:
    return sorted((home / "blobs").rglob("*.ckpt")) if (home / "blobs").exists() else []


def sha_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    return h.hexdigest()


# --- plain transfer and the cache ------------------------------------------------------------------


def test_download_lands_in_content_addressed_cache_and_second_call_uses_no_network(
    http_server, big_file, yolohub_env, monkeypatch
):
    src, sha, size = big_file
    url = serve_copy(http_server, src, "w.ckpt")
    first = fetch_file([url], sha256=sha, size=size, owner="w@1")
    assert not first.from_cache and first.transferred == size
    assert first.path == yolohub_env / "blobs" / "sha256" / sha[:2] / f"{sha}.ckpt"
    assert sha_of(first.path) == sha
    assert (yolohub_env / "records" / f"{sha}.json").exists()
    gets = len(http_server.gets())

    guard = install_socket_guard(monkeypatch)
    second = fetch_file([url], sha256=sha, size=size, owner="w@1")
    assert second.from_cache and second.path == first.path and second.transferred == 0
    assert len(http_server.gets()) == gets and guard.attempts == []


def test_two_cards_sharing_one_file_share_one_blob(http_server, big_file, yolohub_env):
    src, sha, size = big_file
    a = serve_copy(http_server, src, "a.ckpt")
    b = serve_copy(http_server, src, "b.ckpt")
    ra = fetch_file([a], sha256=sha, owner="a@1")
    rb = fetch_file([b], sha256=sha[:8], owner="b@1")  # legacy prefix, same bytes
    assert ra.path == rb.path and rb.from_cache
    assert len(blobs(yolohub_env)) == 1
    assert len(http_server.gets()) == 1


# --- resume ------------------------------------------------------------------------------------------


def test_dropped_connection_resumes_with_range_and_if_range(http_server, big_file):
    src, sha, size = big_file
    url = serve_copy(http_server, src, "w.ckpt")
    http_server.drop_after(10 * MiB)
    r = fetch_file([url], sha256=sha, size=size)
    assert sha_of(r.path) == sha
    first, second = http_server.gets()
    assert first.range is None and first.sent == 10 * MiB
    assert second.status == 206 and second.range.startswith("bytes=")
    offset = int(second.range[len("bytes="):-1])
    assert 0 < offset <= 10 * MiB
    assert second.if_range and second.if_range.startswith('"')  # the strong ETag of GET 1
    assert http_server.bytes_sent() == 10 * MiB + (size - offset)  # nothing fetched twice


def test_killed_downloader_is_resumed_by_the_next_process_and_its_lock_does_not_block(
    http_server, big_file, yolohub_env, monkeypatch
):
    src, sha, size = big_file
    url = serve_copy(http_server, src, "w.ckpt")
    http_server.trickle(2 * MiB, after=12 * MiB)  # fast to 12 MiB, then slow: time to kill it
    script = textwrap.dedent(f"""
        from hub.assets.download import fetch_file
        fetch_file([{url!r}], sha256={sha!r}, size={size})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    partial = CacheLayout(yolohub_env).partial_path(sha, "ckpt")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if partial.exists() and partial.stat().st_size >= 12 * MiB:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    left = partial.stat().st_size
    assert 12 * MiB <= left < size

    monkeypatch.setenv("YOLOHUB_LOCK_TIMEOUT", "3")  # a stale lock would raise LockTimeoutError
    r = fetch_file([url], sha256=sha, size=size)
    assert sha_of(r.path) == sha and not partial.exists()
    assert r.resumed_from == left and r.transferred == size - left
    last = http_server.gets()[-1]
    assert last.range == f"bytes={left}-" and last.status == 206


def test_server_answering_200_to_a_range_restarts_cleanly(http_server, big_file):
    src, sha, size = big_file
    url = serve_copy(http_server, src, "w.ckpt")
    http_server.drop_after(6 * MiB)
    http_server.ignore_range(times=1)
    r = fetch_file([url], sha256=sha, size=size)
    assert sha_of(r.path) == sha and r.size == size
    first, second = http_server.gets()
    assert second.range is not None and second.status == 200 and second.sent == size


def test_file_changed_between_attempts_restarts_never_splices(http_server, tmp_path, monkeypatch):
    old = http_server.root / "w.ckpt"
    new = http_server.root / "w.next"
    make_random_file(old, 16 * MiB)
    new_sha, size = make_random_file(new, 16 * MiB)
    monkeypatch.setenv("YOLOHUB_BACKOFF", "0.3")  # the swap happens well before the retry
    http_server.drop_after(5 * MiB, then=lambda: os.replace(new, old))  # new inode, new ETag
    # the card pins the new file: a splice old[:5M] + new[5M:] would fail the hash
    r = fetch_file([http_server.url_for("w.ckpt")], sha256=new_sha, size=size)
    assert sha_of(r.path) == new_sha
    second = http_server.gets()[1]
    assert second.range and second.status == 200  # If-Range saw the old ETag: whole new file


def test_wrong_content_length_is_detected_and_never_cached(http_server, big_file, yolohub_env):
    src, sha, size = big_file
    url = serve_copy(http_server, src, "w.ckpt")
    http_server.wrong_length(+4096, times=None)  # announces more than it sends, every time
    with pytest.raises(DownloadError) as err:
        fetch_file([url], sha256=sha, size=size)
    assert f"announces {size + 4096} bytes but the card says {size}" in str(err.value)
    assert blobs(yolohub_env) == []


def test_short_body_without_card_size_is_a_mismatch_with_byte_count(
    http_server, big_file, yolohub_env
):
    src, sha, size = big_file
    url = serve_copy(http_server, src, "w.ckpt")
    http_server.wrong_length(-MiB, times=None)  # announces (and sends) 1 MiB less
    with pytest.raises(ChecksumMismatchError) as err:
        fetch_file([url], sha256=sha)
    e = err.value
    assert e.size == size - MiB and e.expected == sha and e.actual != sha and e.url == url
    assert str(size - MiB) in str(e)
    assert blobs(yolohub_env) == []


def test_truncated_body_is_retried_from_where_it_stopped(http_server, big_file, monkeypatch):
    src, sha, size = big_file
    url = serve_copy(http_server, src, "w.ckpt")
    monkeypatch.setenv("YOLOHUB_RETRIES", "0")
    http_server.drop_after(3 * MiB)
    with pytest.raises(DownloadError, match="body ended early|connection broken"):
        fetch_file([url], sha256=sha, size=size)
    r = fetch_file([url], sha256=sha, size=size)  # the next call continues the partial
    assert sha_of(r.path) == sha and r.resumed_from == 3 * MiB


def test_read_timeout_is_honoured_and_the_transfer_resumes(http_server, big_file, monkeypatch):
    src, sha, size = big_file
    url = serve_copy(http_server, src, "w.ckpt")
    monkeypatch.setenv("YOLOHUB_READ_TIMEOUT", "0.3")
    http_server.stall(3.0, after=2 * MiB)
    r = fetch_file([url], sha256=sha, size=size)
    assert sha_of(r.path) == sha
    assert http_server.gets()[1].range is not None


# --- retries -------------------------------------------------------------------------------------------


def test_retries_500_and_honours_retry_after_on_429(http_server, big_file):
    src, sha, size = big_file
    url = serve_copy(http_server, src, "w.ckpt")
    http_server.fail(500, times=2)
    http_server.fail(429, retry_after="1")
    r = fetch_file([url], sha256=sha, size=size)
    assert sha_of(r.path) == sha
    gets = http_server.gets()
    assert [g.status for g in gets] == [500, 500, 429, 200]
    assert gets[3].time - gets[2].time >= 0.9  # Retry-After: 1, far above the 0.05 s backoff


def test_retry_budget_is_spent_then_a_clear_error(http_server, big_file):
    src, sha, size = big_file
    url = serve_copy(http_server, src, "w.ckpt")
    http_server.fail(503, times=10)
    with pytest.raises(DownloadError, match=r"gave up after 4 consecutive failures.*HTTP 503"):
        fetch_file([url], sha256=sha, size=size)
    assert len(http_server.gets()) == 4


def test_404_is_not_retried(http_server):
    with pytest.raises(DownloadError, match="404.*not at that address"):
        fetch_file([http_server.url_for("missing.ckpt")], sha256="ab" * 32)
    assert len(http_server.gets()) == 1


@pytest.mark.parametrize(
    "value, seconds",
    [("7", 7.0), ("0", 0.0), (None, None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after_parsing(value, seconds):
    assert parse_retry_after(value) == seconds


# --- mirrors -------------------------------------------------------------------------------------------


def test_links_are_tried_in_order_and_each_copy_is_hash_checked(
    http_server, big_file, tmp_path, yolohub_env
):
    src, sha, size = big_file
    bad_sha, _ = make_random_file(http_server.root / "bad.ckpt", size)  # same size, other bytes
    good = serve_copy(http_server, src, "good.ckpt")
    links = [http_server.url_for("gone.ckpt"), http_server.url_for("bad.ckpt"), good]
    r = fetch_file(links, sha256=sha, size=size)
    assert r.url == good and sha_of(r.path) == sha
    assert [g.path for g in http_server.gets()] == ["/gone.ckpt", "/bad.ckpt", "/good.ckpt"]
    quarantined = [p for p in (yolohub_env / "quarantine").iterdir() if p.suffix == ".ckpt"]
    assert len(quarantined) == 1 and sha_of(quarantined[0]) == bad_sha


def test_user_mirror_rewrites_are_tried_first(big_file, tmp_path, monkeypatch):
    from httpserver import FaultServer

    src, sha, size = big_file
    with FaultServer(tmp_path / "primary") as primary, FaultServer(tmp_path / "mirror") as mirror:
        serve_copy(primary, src, "m/w.ckpt")
        serve_copy(mirror, src, "w.ckpt")
        old = primary.url.split("//")[1] + "/m"
        new = mirror.url.split("//")[1]
        monkeypatch.setenv("YOLOHUB_MIRRORS", f"{old}={new}")
        r = fetch_file([primary.url_for("m/w.ckpt")], sha256=sha, size=size)
        assert r.url == mirror.url_for("w.ckpt")
        assert len(mirror.gets()) == 1 and primary.gets() == []


def test_mirror_rule_forms():
    mirrors = (("download.example.org", "mirror.example.cn/ms"),
               ("https://a.example.org/x", "https://b.example.org/y"))
    got = candidate_urls(["<https://download.example.org/p/w.ckpt>",
                          "https://a.example.org/x/w.ckpt"], mirrors)
    assert got == [
        "https://mirror.example.cn/ms/p/w.ckpt",
        "https://download.example.org/p/w.ckpt",
        "https://b.example.org/y/w.ckpt",
        "https://a.example.org/x/w.ckpt",
    ]


# --- integrity ------------------------------------------------------------------------------------


def test_prefix_hash_is_accepted_and_marked_weak(http_server, big_file):
    src, sha, size = big_file
    r = fetch_file([serve_copy(http_server, src, "w.ckpt")], sha256=sha[:8].upper())
    assert r.weak and r.sha256 == sha and r.declared == sha[:8]


def test_mismatch_quarantines_and_names_expected_actual_url_and_bytes(
    http_server, big_file, yolohub_env
):
    src, sha, size = big_file
    url = serve_copy(http_server, src, "w.ckpt")
    wrong = "0" * 64
    with pytest.raises(ChecksumMismatchError) as err:
        fetch_file([url], sha256=wrong, size=size)
    e = err.value
    assert (e.expected, e.actual, e.url, e.size) == (wrong, sha, url, size)
    for part in (wrong, sha, url, str(size)):
        assert part in str(e)
    assert blobs(yolohub_env) == []
    q = Path(e.path)
    assert q.parent == yolohub_env / "quarantine" and sha_of(q) == sha
    assert isinstance(e, OSError) and e.exit_code == 4


def test_empty_body_is_named_as_such(http_server):
    (http_server.root / "empty.ckpt").write_bytes(b"")
    with pytest.raises(ChecksumMismatchError, match="0 bytes"):
        fetch_file([http_server.url_for("empty.ckpt")], sha256="ab" * 32)


def test_corrupted_cached_file_is_refetched(http_server, big_file, yolohub_env):
    src, sha, size = big_file
    url = serve_copy(http_server, src, "w.ckpt")
    path = fetch_file([url], sha256=sha, size=size).path
    with open(path, "r+b") as f:
        f.seek(12345)
        byte = f.read(1)
        f.seek(12345)
        f.write(bytes([byte[0] ^ 0xFF]))
    r = fetch_file([url], sha256=sha, size=size)  # the stat changed: re-hashed, quarantined
    assert not r.from_cache and sha_of(r.path) == sha
    assert any(p.suffix == ".ckpt" for p in (yolohub_env / "quarantine").iterdir())


# --- offline, safety, limits -----------------------------------------------------------------------


def test_offline_missing_asset_is_a_clear_error_without_any_connection(
    http_server, big_file, socket_guard, monkeypatch
):
    src, sha, size = big_file
    url = serve_copy(http_server, src, "w.ckpt")
    monkeypatch.setenv("YOLOHUB_OFFLINE", "1")
    with pytest.raises(OfflineModeError, match="not in the cache.*offline mode is on"):
        fetch_file([url], sha256=sha, size=size, label="w@1")
    assert socket_guard.attempts == [] and http_server.gets() == []


def test_file_links_work_offline(tmp_path, big_file, socket_guard, monkeypatch):
    src, sha, size = big_file
    monkeypatch.setenv("YOLOHUB_OFFLINE", "1")
    r = fetch_file([src.as_uri()], sha256=sha, size=size)
    assert sha_of(r.path) == sha and socket_guard.attempts == []


@pytest.mark.parametrize(
    "url, ok",
    [
        ("https://download.mindspore.cn/x.ckpt", True),
        ("<https://download.mindspore.cn/x.ckpt>", True),
        ("http://127.0.0.1:8000/x.ckpt", True),
        ("http://localhost/x.ckpt", True),
        ("http://[::1]:9/x.ckpt", True),
        ("file:///tmp/x.ckpt", True),
        ("http://download.mindspore.cn/x.ckpt", False),
        ("http://10.0.0.1/x.ckpt", False),
        ("ftp://example.org/x.ckpt", False),
        ("file://remote-host/x.ckpt", False),
        ("javascript:alert(1)", False),
        ("x.ckpt", False),
    ],
)
def test_only_https_loopback_http_and_file_urls_are_allowed(url, ok):
    if ok:
        assert check_url(url)
    else:
        with pytest.raises(UnsafeURLError, match="refusing"):
            check_url(url)


def test_unsafe_link_opens_no_connection(socket_guard):
    with pytest.raises(UnsafeURLError):
        fetch_file(["http://example.org/w.ckpt"], sha256="ab" * 32)
    assert socket_guard.attempts == []


def test_redirect_to_a_non_loopback_http_host_is_refused(http_server, big_file):
    http_server.redirect("http://example.org/w.ckpt")
    with pytest.raises(UnsafeURLError, match="plain http is only allowed to loopback"):
        fetch_file([http_server.url_for("w.ckpt")], sha256=big_file[1])


def test_names_from_urls_and_content_disposition_never_escape_the_cache(
    http_server, big_file, tmp_path, yolohub_env
):
    from httpserver import Fault

    src, sha, size = big_file
    serve_copy(http_server, src, "w.ckpt")
    http_server.add(Fault("none", disposition='attachment; filename="../../../escaped.ckpt"'))
    before = set(tmp_path.rglob("*"))
    url = http_server.url + "/sub/..%2F..%2Fw.ckpt/../../w.ckpt"
    r = fetch_file([url], sha256=sha, size=size)
    assert sha_of(r.path) == sha
    new = set(tmp_path.rglob("*")) - before
    assert new and all(p.is_relative_to(yolohub_env) for p in new)
    assert not any("escaped" in p.name or p.name == "w.ckpt" for p in new)
    for bad in ("..", "../x", "/etc/passwd", "a/b", ""):
        with pytest.raises(CacheError):
            safe_join(yolohub_env, bad)


def test_size_cap_stops_a_runaway_body(http_server, big_file, yolohub_env, monkeypatch):
    src, sha, size = big_file
    url = serve_copy(http_server, src, "w.ckpt")
    monkeypatch.setenv("YOLOHUB_MAX_DOWNLOAD", str(4 * MiB))
    with pytest.raises(DownloadError, match="more than the 4.0 MiB cap"):
        fetch_file([url], sha256=sha)  # announced size over the cap: refused before the body
    http_server.no_length()
    with pytest.raises(DownloadError, match="exceeded 4.0 MiB"):
        fetch_file([url], sha256=sha)  # no Content-Length: stopped while streaming
    partial = CacheLayout(yolohub_env).partial_path(sha, "ckpt")
    assert not partial.exists() and blobs(yolohub_env) == []


def test_free_disk_is_checked_before_a_large_download(http_server, big_file, yolohub_env):
    src, sha, _ = big_file
    url = serve_copy(http_server, src, "w.ckpt")
    with pytest.raises(CacheError, match="not enough free space"):
        fetch_file([url], sha256=sha, size=1 << 50)
    assert http_server.gets() == []
    check_free_space(yolohub_env.parent, MiB)  # a small need passes


# --- concurrency -----------------------------------------------------------------------------------


def test_four_processes_at_once_make_one_transfer(http_server, big_file, yolohub_env):
    src, sha, size = big_file
    url = serve_copy(http_server, src, "w.ckpt")
    http_server.trickle(24 * MiB, after=4 * MiB)  # ~1 s: the others start while it runs
    script = textwrap.dedent(f"""
        from hub.assets.download import fetch_file
        r = fetch_file([{url!r}], sha256={sha!r}, size={size})
        print(r.path, r.sha256, r.from_cache)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = [p.communicate(timeout=60)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert {o[0] for o in outs} == {str(yolohub_env / "blobs" / "sha256" / sha[:2] / f"{sha}.ckpt")}
    assert {o[1] for o in outs} == {sha}
    assert sorted(o[2] for o in outs) == ["False", "True", "True", "True"]
    assert len(http_server.gets()) == 1 and http_server.bytes_sent() == size


def test_a_live_lock_holder_makes_waiters_time_out_naming_it(http_server, big_file, yolohub_env,
                                                             monkeypatch):
    src, sha, size = big_file
    url = serve_copy(http_server, src, "w.ckpt")
    monkeypatch.setenv("YOLOHUB_LOCK_TIMEOUT", "0.3")
    layout = CacheLayout(yolohub_env)
    layout.ensure()
    with download_lock(layout, sha, timeout=1, label="holder"):
        with pytest.raises(LockTimeoutError, match=f"pid {os.getpid()}"):
            fetch_file([url], sha256=sha, size=size)
    assert http_server.gets() == []


def test_settings_values_are_validated(monkeypatch):
    from hub.errors import InputDataError

    monkeypatch.setenv("YOLOHUB_READ_TIMEOUT", "soon")
    with pytest.raises(InputDataError, match="YOLOHUB_READ_TIMEOUT"):
        get_settings()


def test_retry_budget_resets_whenever_bytes_arrive(http_server, big_file, monkeypatch):
    src, sha, size = big_file
    url = serve_copy(http_server, src, "w.ckpt")
    monkeypatch.setenv("YOLOHUB_RETRIES", "1")
    for _ in range(4):  # four drops, each after progress: more failures than the budget of 1
        http_server.drop_after(2 * MiB)
    r = fetch_file([url], sha256=sha, size=size)
    assert sha_of(r.path) == sha and len(http_server.gets()) == 5


def test_disk_write_failure_is_a_cache_error_and_the_partial_stays_resumable(
    http_server, big_file, yolohub_env
):
    src, sha, size = big_file
    url = serve_copy(http_server, src, "w.ckpt")
    # a child whose files may not grow past 8 MiB: its writes fail like a full disk
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from hub.errors import CacheError
        from hub.assets.download import fetch_file
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({8 * MiB}, {8 * MiB}))
        try:
            fetch_file([{url!r}], sha256={sha!r}, size={size})
        except CacheError as exc:
            print("CacheError", exc)
            sys.exit(0)
        sys.exit(1)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "cannot write" in out.stdout and "free space" in out.stdout
    left = CacheLayout(yolohub_env).partial_path(sha, "ckpt").stat().st_size
    assert 0 < left <= 8 * MiB
    r = fetch_file([url], sha256=sha, size=size)  # resumes; the hash still matches
    assert sha_of(r.path) == sha and r.resumed_from == left


@pytest.mark.parametrize("env, tty, shown", [("0", True, False), ("1", False, True),
                                             ("auto", False, False), ("auto", True, True)])
def test_progress_bars_follow_yolohub_progress_and_the_tty(monkeypatch, env, tty, shown):
    from hub.progress import show_progress

    monkeypatch.setenv("YOLOHUB_PROGRESS", env)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    assert show_progress(get_settings(), None) is shown
    assert show_progress(get_settings(), False) is False


def test_a_failing_first_link_does_not_throw_away_another_links_partial(http_server, big_file,
                                                                         monkeypatch):
    from httpserver import Fault

    src, sha, size = big_file
    links = [http_server.url_for("gone.ckpt"), serve_copy(http_server, src, "w.ckpt")]
    monkeypatch.setenv("YOLOHUB_RETRIES", "0")
    http_server.add(Fault("none"))  # GET 1: the 404 of gone.ckpt
    http_server.drop_after(3 * MiB)  # GET 2: w.ckpt breaks after 3 MiB
    with pytest.raises(DownloadError, match="could not download from any of 2 links"):
        fetch_file(links, sha256=sha, size=size)
    r = fetch_file(links, sha256=sha, size=size)
    assert sha_of(r.path) == sha and r.resumed_from == 3 * MiB
    assert http_server.gets()[-1].range == f"bytes={3 * MiB}-"
