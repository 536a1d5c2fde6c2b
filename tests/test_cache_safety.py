"""Cache cleanup next to live downloads, with real processes: nothing a download returned is lost.

``cache prune`` / ``cache rm`` and ``download`` share the blob lock; listing and pruning tolerate
files that vanish while they look; quarantined bytes are readable by their owner only.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from httpserver import make_random_file

from hub.assets import cache, cleanup
from hub.assets.cache_layout import CacheLayout
from hub.assets.download import fetch_file
from hub.assets.locks import blob_lock, download_lock
from hub.assets.records import drop_owner, read_asset_record, write_asset_record
from hub.errors import ChecksumMismatchError
from hub.fileio import read_json_dict

MiB = 1 << 20


def _child(script: str, env_home: Path) -> subprocess.Popen:
    env = {**os.environ, "YOLOHUB_HOME": str(env_home), "YOLOHUB_PROGRESS": "0"}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def _prune_in_another_process(home: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "hub", "cache", "prune", "--json"],
        env={**os.environ, "YOLOHUB_HOME": str(home), "YOLOHUB_PROGRESS": "0"},
        capture_output=True, text=True, timeout=60, check=True,
    )
    return json.loads(out.stdout)


# A downloader whose bookkeeping after the rename into blobs/ is slowed down (a busy disk), so
# that the other process runs exactly while the download is between "file in place" and
# "returned"; the download must still return a path that exists.
SLOW_FINISH = """
    import os, sys, time
    from pathlib import Path
    import hub.assets.records as c
    from hub.assets.download import fetch_file
    slow = c.{hook}
    def slowly(*a, **k):
        Path(os.environ["YOLOHUB_HOME"], "in-window").touch()
        time.sleep(1.5)
        return slow(*a, **k)
    c.{hook} = slowly
    r = fetch_file([{url!r}], sha256={sha!r}, owner="w@1")
    time.sleep(0.2)
    print(r.path, r.path.exists(), r.from_cache)
"""


def test_prune_during_a_download_never_deletes_the_file_it_returns(tmp_path, yolohub_env):
    src = tmp_path / "w.ckpt"
    sha, _ = make_random_file(src, 2 * MiB)
    proc = _child(SLOW_FINISH.format(hook="store_record", url=src.as_uri(), sha=sha), yolohub_env)
    _wait_for(yolohub_env / "in-window", proc)
    pruned = _prune_in_another_process(yolohub_env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    path, exists, from_cache = out.split()
    assert exists == "True" and from_cache == "False", (out, pruned)
    assert path not in pruned["removed"] and any("in use" in k for k in pruned["kept"])
    assert Path(path).is_file() and cache.listing().blobs[0].owners == ("w@1",)


def test_prune_during_a_cache_hit_never_deletes_the_file_it_returns(tmp_path, yolohub_env):
    src = tmp_path / "w.ckpt"
    sha, _ = make_random_file(src, 2 * MiB)
    first = fetch_file([src.as_uri()], sha256=sha, owner="w@1")
    for rec in (yolohub_env / "assets").glob("*.json"):
        rec.unlink()  # the blob is in the cache but nobody is recorded as using it
    # a card pinning only a prefix finds the unowned blob and registers itself as its user
    proc = _child(SLOW_FINISH.format(hook="write_asset_record", url=src.as_uri(), sha=sha[:8]),
                  yolohub_env)
    _wait_for(yolohub_env / "in-window", proc)
    pruned = _prune_in_another_process(yolohub_env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    path, exists, from_cache = out.split()
    assert path == str(first.path) and exists == "True" and from_cache == "True", (out, pruned)
    # once the download let go, the blob is owned: a second prune keeps it too
    assert _prune_in_another_process(yolohub_env)["removed"] == []
    assert first.path.is_file()


def test_prune_keeps_a_blob_whose_lock_is_held_and_deletes_it_afterwards(tmp_path, yolohub_env):
    src = tmp_path / "w.ckpt"
    sha, _ = make_random_file(src, MiB)
    r = fetch_file([src.as_uri()], sha256=sha)
    for rec in (yolohub_env / "assets").glob("*.json"):
        rec.unlink()
    layout = CacheLayout(yolohub_env)
    with blob_lock(layout, sha, timeout=1, label="test"):
        kept = _prune_in_another_process(yolohub_env)
        assert r.path.is_file() and kept["removed"] == []
        assert kept["kept"] == [f"{sha[:12]}: in use by a download"]
    gone = _prune_in_another_process(yolohub_env)
    assert str(r.path) in gone["removed"] and not r.path.exists()



def test_prune_keeps_a_partial_while_its_download_lock_is_held_and_removes_it_afterwards(
        yolohub_env):
    layout = CacheLayout(yolohub_env)
    layout.ensure()
    sha = "ab" * 32
    partial = layout.partial_path(sha, "ckpt")
    partial.write_bytes(b"x" * 1000)
    with download_lock(layout, sha, timeout=1, label="test"):
        kept = _prune_in_another_process(yolohub_env)
        assert partial.exists() and kept["removed"] == []
        assert kept["kept"] == [f"{partial.name}: a download is in progress"]
    gone = _prune_in_another_process(yolohub_env)
    assert gone["removed"] == [str(partial)] and gone["freed"] == 1000 and not partial.exists()


def test_dropping_an_owner_rewrites_the_record_and_deletes_it_once_nobody_is_left(yolohub_env):
    layout = CacheLayout(yolohub_env)
    sha = "cd" * 32
    for owner in ("a@1", "b@1", "c@1"):
        write_asset_record(layout, declared=sha[:8], sha256=sha, ext="ckpt", size=5,
                           owner=owner, owner_info={"card": owner})
    rec = read_asset_record(layout, sha[:8])
    rest = drop_owner(layout, rec, "a@1")
    assert rest is not None and sorted(rest.owners) == ["b@1", "c@1"]
    assert read_asset_record(layout, sha[:8]) == rest and rest.owners["b@1"] == {"card": "b@1"}
    assert drop_owner(layout, rest, "x@1") == rest  # not an owner: nothing changes
    assert drop_owner(layout, drop_owner(layout, rest, "b@1"), "c@1") is None
    assert read_asset_record(layout, sha[:8]) is None
    assert not layout.asset_record_path(sha[:8]).exists()
    write_asset_record(layout, declared=sha, sha256=sha, ext="ckpt", size=5, owner="a@1")
    write_asset_record(layout, declared=sha, sha256=sha, ext="ckpt", size=5, owner="b@1")
    assert drop_owner(layout, read_asset_record(layout, sha), None) is None  # None: every claim
    assert not layout.asset_record_path(sha).exists()


def test_small_json_side_files_read_as_a_dict_or_nothing(tmp_path):
    f = tmp_path / "state.json"
    assert read_json_dict(f) == {}  # absent
    for text in ("[1, 2]", "{not json", "", '"text"'):
        f.write_text(text)
        assert read_json_dict(f) == {}, text
    f.write_text('{"url": "https://h/x", "total": 3}')
    assert read_json_dict(f) == {"url": "https://h/x", "total": 3}


CHURN = """
    import os, sys, time
    from pathlib import Path
    part = Path(sys.argv[1])
    part.mkdir(parents=True, exist_ok=True)
    qdir = Path(sys.argv[2])
    qdir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + float(sys.argv[3])
    i = 0
    while time.monotonic() < deadline:
        names = [part / f"{i % 256:02x}{n:062x}.ckpt.partial" for n in range(40)]
        names.append(part / f"odd-{i}.ckpt.partial")  # a name yolohub never writes
        names += [qdir / f"q{i}-{n}.ckpt" for n in range(10)]
        for p in names:
            p.write_bytes(b"x")
        for p in names:
            p.unlink(missing_ok=True)  # prune may have been first
        i += 1
"""


def test_listing_and_prune_tolerate_partials_that_vanish_while_they_look(tmp_path, yolohub_env):
    layout = CacheLayout(yolohub_env)
    layout.ensure()
    churn = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHURN),
                              str(yolohub_env / "partial"), str(layout.quarantine_dir()), "4"])
    try:
        time.sleep(0.3)
        listings = prunes = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            cache.listing()  # a FileNotFoundError here was the bug
            listings += 1
            cleanup.prune()
            prunes += 1
    finally:
        churn.wait(timeout=30)
    assert churn.returncode == 0 and listings > 10 and prunes > 10


@pytest.mark.parametrize("mode", [0o600, 0o644])
def test_quarantined_files_are_readable_by_their_owner_only(tmp_path, yolohub_env, mode):
    src = tmp_path / "private.ckpt"
    sha, size = make_random_file(src, MiB)
    src.chmod(mode)
    with pytest.raises(ChecksumMismatchError) as err:
        fetch_file([src.as_uri()], sha256="0" * 64, size=size)
    q = Path(err.value.path)
    assert q.parent == yolohub_env / "quarantine" and q.read_bytes() == src.read_bytes()
    assert stat.S_IMODE(q.stat().st_mode) == 0o600
    meta = q.with_name(q.name + ".json")
    assert stat.S_IMODE(meta.stat().st_mode) == 0o600 and json.loads(meta.read_text())["actual"] == sha
    # a good file is no more private than any other cache file
    ok = fetch_file([src.as_uri()], sha256=sha, size=size)
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(ok.path.stat().st_mode) == 0o666 & ~umask


def test_a_damaged_cached_file_goes_to_quarantine_owner_only(tmp_path, yolohub_env):
    src = tmp_path / "w.ckpt"
    sha, size = make_random_file(src, MiB)
    path = fetch_file([src.as_uri()], sha256=sha, size=size).path
    path.chmod(0o644)
    with open(path, "r+b") as f:
        f.write(b"\0" * 16)
    again = fetch_file([src.as_uri()], sha256=sha, size=size, force=False)
    assert again.path == path
    (q,) = [p for p in (yolohub_env / "quarantine").iterdir() if not p.name.endswith(".json")]
    assert stat.S_IMODE(q.stat().st_mode) == 0o600
