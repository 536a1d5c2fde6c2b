"""Cards to verified files: ``download``, ``verify`` and ``rehash`` (the public asset API).

This module joins the card catalog (which card, which asset) to the download job
(:mod:`hub.assets.download`) and the cache records (:mod:`hub.assets.records`).  It opens no
connection itself; with offline mode on (``YOLOHUB_OFFLINE=1`` or ``offline=True``)
nothing below it does either.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hub.assets import records
from hub.assets.cache_layout import CacheLayout, file_extension
from hub.assets.integrity import VerifyResult, is_weak, normalize_sha256, verify_file
from hub.errors import CacheError, HubError, InputDataError
from hub.settings import Settings, get_settings

if TYPE_CHECKING:  # cards and transfers are imported when used: `verify --all` needs neither
    from hub.assets.download import DownloadResult
    from hub.cards.card import Card, Release
    from hub.cards.catalog import CardsArg

log = logging.getLogger(__name__)


def _settings(offline: bool | None) -> Settings:
    return get_settings().with_(offline=offline)


def _resolve(spec: str | Release, cards_dirs) -> Release:
    from hub.cards.catalog import resolve  # a Release passes through without a scan

    return resolve(spec, cards_dirs=cards_dirs)


def fetch_release(
    release: Release,
    *,
    force: bool = False,
    offline: bool | None = None,
    progress: bool | None = None,
) -> DownloadResult:
    """Bring ``release``'s asset into the cache (or find it there) and return where it is.

    ``force`` re-downloads even when a verified copy is cached; ``offline`` overrides
    ``YOLOHUB_OFFLINE``.  Raises the :mod:`hub.errors` transfer/integrity classes.
    """
    from hub.assets.download import fetch_file

    asset = release.asset
    card = release.card
    info = {"card": str(card.path) if card.path else None, "source": card.source}
    try:
        return fetch_file(
            asset.links,
            sha256=asset.sha256,
            size=asset.size,
            file_format=asset.file_format,
            label=release.id,
            owner=release.id,
            owner_info=info,
            settings=_settings(offline),
            progress=progress,
            force=force,
        )
    except HubError:
        raise
    except OSError as exc:  # filesystem trouble below the cache root
        raise CacheError(
            f"{release.id}: cache I/O failed: {exc}; check permissions and free space of "
            "YOLOHUB_HOME"
        ) from exc


def download(
    spec: str | Release,
    *,
    cards_dirs: CardsArg = (),
    force: bool = False,
    offline: bool | None = None,
    progress: bool | None = None,
    format: str | None = None,
) -> Path:
    """Path of the verified checkpoint of ``spec`` (``name`` or ``name@version``).

    ``format`` (``onnx``, ``mindir``) fetches that version's exported graph instead.  A second
    call is answered from the cache after one ``stat`` (no network).
    """
    release = _resolve(spec, cards_dirs)
    if format is not None:
        release = release.with_format(format)
    return fetch_release(release, force=force, offline=offline, progress=progress).path


# --- verify ----------------------------------------------------------------------------------


def _check(
    layout: CacheLayout,
    path: Path,
    sha: str,
    expected: str,
    *,
    size: int | None,
    deep: bool,
    label: str,
) -> VerifyResult:
    """Verify one blob named ``sha`` against ``expected``; keep its record in step."""
    record = records.load_record(layout, sha)
    if record is not None and record.sha256 != sha:
        record = None
    result, new_record = verify_file(
        path, expected, expected_size=size, record=record, deep=deep, label=label
    )
    # A blob's name is its full digest: a weak (prefix) card must not hide a changed file.
    if result.ok and result.actual is not None and result.actual != sha:
        result = dataclasses.replace(
            result,
            status="mismatch",
            detail=f"expected sha256 {sha} (the file's name in the cache), found {result.actual}",
        )
    if result.ok and new_record is not None:
        try:
            records.store_record(layout, new_record)
        except OSError as exc:  # read-only shared cache: the verdict still stands
            log.debug("cannot store the verification record: %s", exc)
    elif result.status == "mismatch":
        # no longer trusted: the next download re-hashes it and quarantines it
        try:
            records.drop_record(layout, sha)
        except OSError:
            pass
    return result


def _verify_release(
    release: Release, layout: CacheLayout, *, deep: bool
) -> VerifyResult:
    asset = release.asset
    declared = normalize_sha256(asset.sha256, what="asset sha256")
    ext = file_extension(asset.file_format)
    found = records.locate(layout, declared, ext)
    if found is None or not found[0].exists():
        partial = layout.partial_path(declared, ext)
        detail = "not downloaded yet; run `yolohub download " + release.id + "`"
        if partial.exists():
            detail = (
                f"only a partial transfer ({partial.stat().st_size} bytes) is cached; run "
                f"`yolohub download {release.id}` to finish it"
            )
        return VerifyResult(None, declared, None, "missing", "stat",
                            expected_size=asset.size, label=release.id, detail=detail)
    path, sha = found
    return _check(layout, path, sha, declared, size=asset.size, deep=deep, label=release.id)


def _verify_cached_blobs(layout: CacheLayout, *, deep: bool) -> list[VerifyResult]:
    """Every blob in the cache, against its own name (and its cards' declared hashes)."""
    results = []
    known = list(records.iter_asset_records(layout))
    for sha, path in records.iter_blobs(layout):
        recs = [r for r in known if r.sha256 == sha]
        owners = sorted({o for r in recs for o in r.owners})
        declared = [r.declared for r in recs]
        # Report a blob as weak when every card that uses it only pins a prefix.
        expected = sha if not declared or sha in declared else declared[0]
        size = recs[0].size if recs else None
        label = ", ".join(owners) if owners else f"{sha[:16]} (unreferenced)"
        results.append(_check(layout, path, sha, expected, size=size, deep=deep, label=label))
    return results


def verify(
    specs: Sequence[str | Release] = (),
    *,
    all: bool = False,  # noqa: A002 (the CLI flag is --all)
    deep: bool = False,
    cards_dirs: CardsArg = (),
) -> list[VerifyResult]:
    """Re-check cached assets; never downloads.

    Named ``specs`` are checked against their cards (a spec that is not cached is reported as
    ``missing``).  ``all`` (or no specs) checks every file in the cache.  Without ``deep`` a file
    whose size/mtime/inode still match its verification record is not re-read (one ``stat``);
    ``deep`` re-hashes everything.  A mismatching file loses its record, so the next download
    re-hashes and replaces it.
    """
    layout = CacheLayout.from_settings(get_settings())
    results: list[VerifyResult] = []
    if any(isinstance(s, str) for s in specs):
        from hub.cards.catalog import open_catalog

        cards_dirs = open_catalog(cards_dirs)  # scanned once for all the names
    for spec in specs:
        results.append(_verify_release(_resolve(spec, cards_dirs), layout, deep=deep))
    if all or not specs:
        seen = {str(r.path) for r in results if r.path is not None}
        results.extend(
            r for r in _verify_cached_blobs(layout, deep=deep) if str(r.path) not in seen
        )
    return results


# --- rehash ----------------------------------------------------------------------------------


def rehash(
    spec: str | Release,
    *,
    cards_dirs: CardsArg = (),
    offline: bool | None = None,
    progress: bool | None = None,
) -> Card:
    """Write the full sha256 (and size) of a verified download into a card that pins a prefix.

    Legacy MindSpore Hub cards carry 8-digit sha256 prefixes.  This downloads (or finds in the
    cache) the file the prefix accepts, then edits the card file in place: ``asset-sha256``
    becomes the full digest and ``size`` the byte count.  A card that already pins a full digest
    is returned unchanged.
    """
    from hub.cards.write import edit_card

    release = _resolve(spec, cards_dirs)
    card, asset = release.card, release.asset
    if not is_weak(asset.sha256):
        log.info("%s already pins a full sha256; nothing to do", release.id)
        return card
    if card.path is None:
        raise InputDataError(f"{release.id}: the card has no file to write the full hash into")
    if card.source == "remote":
        raise InputDataError(
            f"{release.id}: its card comes from a registry URL; run 'yolohub rehash' where the "
            "registry's files are, then 'yolohub index' there"
        )
    if not os.access(card.path, os.W_OK):
        raise InputDataError(
            f"{release.id}: cannot write {card.path}; copy the card into a directory you own and "
            "pass it with --cards DIR (or YOLOHUB_CARDS)"
        )
    result = fetch_release(release, offline=offline, progress=progress)

    def pin_full_hash(current: Card) -> dict:
        for i, a in enumerate(current.assets):
            if a.version == asset.version and a.sha256 == asset.sha256:
                full = dataclasses.replace(a, sha256=result.sha256, size=result.size)
                return {"assets": (*current.assets[:i], full, *current.assets[i + 1:])}
        raise InputDataError(
            f"{card.path} changed since it was read: no asset with version {asset.version!r} "
            f"and sha256 {asset.sha256}; run the command again"
        )

    new_card = edit_card(card.path, pin_full_hash)
    _adopt_full_hash(release, result)
    from hub.cards.index import reindex_containing

    reindex_containing(card.path)  # a registry's index follows the card
    log.debug("%s: %s now pins sha256 %s (%d bytes)", release.id, card.path, result.sha256,
             result.size)
    return new_card


def _adopt_full_hash(release: Release, result: DownloadResult) -> None:
    """Move the cache's ownership record of ``release`` from the prefix to the full digest."""
    layout = CacheLayout.from_settings(get_settings())
    ext = file_extension(release.asset.file_format)
    try:
        old = records.read_asset_record(layout, result.declared)
        info = dict(old.owners.get(release.id, {})) if old else {}
        records.write_asset_record(layout, declared=result.sha256, sha256=result.sha256, ext=ext,
                                  size=result.size, owner=release.id, owner_info=info)
        if old is not None:
            records.drop_owner(layout, old, release.id)
    except OSError as exc:  # a read-only cache: the card is updated, the records lag behind
        log.debug("cannot update the cache records after rehash: %s", exc)
