"""Cards to verified files: hub.download / hub.verify / hub.rehash over a loopback server."""

from __future__ import annotations

import os

import pytest
from httpserver import install_socket_guard, serve_copy, write_asset_card

import hub
from hub.cards.card import load_card
from hub.cards.catalog import Registry
from hub.errors import CardNotFoundError, InputDataError, OfflineModeError

MiB = 1 << 20
BUILTIN = [rel.id for rel in Registry.scan().visible()]


@pytest.fixture
def served(http_server, big_file, tmp_path):
    """A card directory with `big` (full hash, size) and `legacy` (8-digit prefix, no size)."""
    src, sha, size = big_file
    url = serve_copy(http_server, src, "big.ckpt")
    cards = tmp_path / "cards"
    write_asset_card(cards, "big", url, sha, size=size)
    write_asset_card(cards, "legacy", serve_copy(http_server, src, "legacy.ckpt"), sha[:8])
    return cards, sha, size


def flip_byte_keeping_stat(path, offset=4321):
    """Corrupt one byte in place, then restore the mtime: same size, inode and mtime_ns."""
    st = path.stat()
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_download_by_name_then_offline_from_cache_without_sockets(served, http_server, monkeypatch):
    cards, sha, size = served
    path = hub.download("big", cards_dirs=[cards])
    assert path.name == f"{sha}.ckpt" and path.stat().st_size == size
    guard = install_socket_guard(monkeypatch)
    monkeypatch.setenv("YOLOHUB_OFFLINE", "1")
    assert hub.download("big@1.0", cards_dirs=[cards]) == path
    assert hub.download("big", cards_dirs=[cards], offline=True) == path
    assert guard.attempts == [] and len(http_server.gets()) == 1


def test_offline_argument_overrides_the_environment(served, http_server, monkeypatch):
    cards, _, _ = served
    guard = install_socket_guard(monkeypatch)
    with pytest.raises(OfflineModeError, match="big@1.0 is not in the cache"):
        hub.download("big", cards_dirs=[cards], offline=True)
    assert guard.attempts == [] and http_server.gets() == []


@pytest.mark.parametrize("spec", BUILTIN)
def test_builtin_releases_offline_are_a_clear_error_and_verify_reports_them_missing(
    spec, socket_guard
):
    with pytest.raises(OfflineModeError) as err:
        hub.download(spec, offline=True)
    assert spec in str(err.value) and "yolohub download" in str(err.value)
    assert err.value.exit_code == 6
    (result,) = hub.verify([spec])
    assert result.status == "missing" and not result.ok and result.weak
    assert f"yolohub download {spec}" in result.detail
    assert socket_guard.attempts == []


def test_unknown_name_is_a_lookup_error():
    with pytest.raises(CardNotFoundError, match="did you mean yolov3_darknet53"):
        hub.download("yolov3_darknet5")


def test_verify_record_fast_path_versus_deep_rehash(served):
    cards, sha, size = served
    path = hub.download("big", cards_dirs=[cards])
    (fast,) = hub.verify(["big"], cards_dirs=[cards])
    assert fast.ok and fast.method == "record" and fast.actual == sha and not fast.weak

    flip_byte_keeping_stat(path)
    (fast,) = hub.verify(["big"], cards_dirs=[cards])
    assert fast.ok and fast.method == "record"  # one stat: the change is invisible to it
    (deep,) = hub.verify(["big"], deep=True, cards_dirs=[cards])
    assert deep.status == "mismatch" and deep.method == "hash"
    assert deep.expected == sha and deep.actual != sha
    assert sha in deep.describe() and deep.actual in deep.describe()
    # the record is gone: the next cheap check re-hashes and the next download replaces the file
    (again,) = hub.verify(["big"], cards_dirs=[cards])
    assert again.status == "mismatch" and again.method == "hash"
    assert hub.download("big", cards_dirs=[cards]) == path
    (fixed,) = hub.verify(["big"], deep=True, cards_dirs=[cards])
    assert fixed.ok


def test_verify_notices_a_changed_mtime_without_deep(served):
    cards, sha, _ = served
    path = hub.download("big", cards_dirs=[cards])
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.write(b"\0")
    (r,) = hub.verify(["big"], cards_dirs=[cards])
    assert r.status == "mismatch" and r.method == "hash"


def test_verify_all_checks_every_cached_file_by_record(http_server, tmp_path):
    from httpserver import make_random_file

    cards = tmp_path / "cards"
    for i in range(3):
        sha, size = make_random_file(http_server.root / f"m{i}.ckpt", 2 * MiB)
        write_asset_card(cards, f"m{i}", http_server.url_for(f"m{i}.ckpt"), sha, size=size)
        hub.download(f"m{i}", cards_dirs=[cards])
    results = hub.verify(all=True)
    assert sorted(r.label for r in results) == ["m0@1.0", "m1@1.0", "m2@1.0"]
    assert all(r.ok and r.method == "record" for r in results)
    assert all(r.ok and r.method == "hash" for r in hub.verify(all=True, deep=True))


def test_weak_prefix_card_is_reported_weak_everywhere(served):
    cards, sha, _ = served
    path = hub.download("legacy", cards_dirs=[cards])
    (r,) = hub.verify(["legacy"], cards_dirs=[cards])
    assert r.ok and r.weak and "weak" in r.describe()
    (a,) = hub.verify(all=True)
    assert a.ok and a.weak and a.path == path
    assert hub.info("legacy", cards_dirs=[cards]).summary.weak_hash


def test_deep_verify_of_a_weak_card_detects_a_corrupted_byte(served):
    cards, sha, _ = served
    path = hub.download("legacy", cards_dirs=[cards])
    flip_byte_keeping_stat(path, offset=20 * MiB)
    (r,) = hub.verify(["legacy"], deep=True, cards_dirs=[cards])
    assert r.status == "mismatch" and r.weak
    assert sha[:8] in r.detail and r.actual in r.detail and r.actual != sha


def test_rehash_writes_full_hash_and_size_into_a_prefix_card(served):
    cards, sha, size = served
    card_path = cards / "legacy.md"
    body = load_card(card_path).body
    card = hub.rehash("legacy", cards_dirs=[cards])
    assert card.assets[0].sha256 == sha and card.assets[0].size == size
    reread = load_card(card_path)
    assert reread.assets[0].sha256 == sha and not reread.assets[0].weak
    assert reread.body == body
    (r,) = hub.verify(["legacy"], cards_dirs=[cards])
    assert r.ok and not r.weak
    assert hub.rehash("legacy", cards_dirs=[cards]).assets == reread.assets  # idempotent


def test_rehash_refuses_a_card_that_changed_since_it_was_read(served):
    """The full hash goes into the card as the file holds it now, never over someone's edit."""
    cards, sha, _ = served
    card_path = cards / "legacy.md"
    release = Registry.scan([cards]).resolve("legacy")
    edited = card_path.read_text().replace(sha[:8], sha[:10])
    card_path.write_text(edited)
    with pytest.raises(InputDataError, match="changed since it was read"):
        hub.rehash(release)
    assert card_path.read_text() == edited


def test_rehash_from_the_cache_works_offline(served, monkeypatch):
    cards, sha, _ = served
    hub.download("legacy", cards_dirs=[cards])
    guard = install_socket_guard(monkeypatch)
    assert hub.rehash("legacy", cards_dirs=[cards], offline=True).assets[0].sha256 == sha
    assert guard.attempts == []


def test_public_functions_stay_callable_after_their_modules_are_imported():
    import importlib

    for module in ("hub.assets.download", "hub.assets.files", "hub.assets.publish", "hub.assets.cache",
                   "hub.assets.cleanup", "hub.assets.locks", "hub.assets.records", "hub.assets.http"):
        importlib.import_module(module)
    for name in ("download", "verify", "rehash", "publish"):
        assert callable(getattr(hub, name)), name
    assert hub.verify(all=True) == []  # empty cache: nothing to check
