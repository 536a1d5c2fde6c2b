"""Air-gapped bundles: ``yolohub pack`` on a connected machine, ``yolohub unpack`` on one without.

A bundle is a plain tar file::

    manifest.json                      format, releases, and every member's sha256 and size
    cards/<name>/<card file>.md        each card, byte for byte
    assets/<sha256>.<ext>              each checkpoint, named by its full sha256

``unpack`` reads the manifest first, refuses anything that is not a regular file at a plain
relative path listed in the manifest (absolute paths, ``..``, links, devices, duplicates), hashes
every member while extracting it into a private temporary directory and compares it with the
manifest, parses every card and matches its assets against the files.  Only when all of that
holds do the checkpoints enter the cache (through the normal verified path) and the cards go to
``$YOLOHUB_HOME/cards/`` — a card source of its own, so ``hub.load(NAME)`` then works offline
without ``--cards``.  A bundle that fails any check installs nothing.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hub.cards.catalog import CardsArg
from hub.errors import ChecksumMismatchError, RegistryError

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "yolohub-bundle/1"
_MEMBER = re.compile(r"^(cards/[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.+\-]*\.md|"
                     r"assets/[0-9a-f]{64}\.[a-z0-9]{1,8})$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class PackResult:
    path: Path
    releases: tuple[str, ...]
    files: int
    bytes: int


@dataclass(frozen=True)
class UnpackResult:
    releases: tuple[str, ...]
    cards: tuple[Path, ...]
    assets: tuple[Path, ...]
    bytes: int


def _sha_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack(
    specs: Sequence[str],
    *,
    out: str | os.PathLike,
    cards_dirs: CardsArg = (),
    offline: bool | None = None,
    progress: bool | None = None,
) -> PackResult:
    """Write the cards of ``specs`` (``name`` or ``name@version``) and their verified
    checkpoints (downloaded first when not cached) into the tar file ``out``."""
    from hub.assets.cache_layout import file_extension
    from hub.assets.files import fetch_release
    from hub.assets.integrity import sha256_file
    from hub.cards.card import read_card_text
    from hub.cards.catalog import open_catalog

    if not specs:
        raise RegistryError("expected at least one model to pack (NAME or NAME@VERSION)")
    reg = open_catalog(cards_dirs)
    out = Path(out)
    cards: dict[str, bytes] = {}
    assets: dict[str, Path] = {}
    releases = []
    for spec in specs:
        rel = reg.resolve(spec)
        card_path = rel.card.path
        if card_path is None:
            raise RegistryError(f"{rel.id}: its card has no file to pack")
        raw = read_card_text(card_path).encode("utf-8")
        member = f"cards/{rel.card.name}/{card_path.name}"
        if member in cards and cards[member] != raw:
            raise RegistryError(f"two different cards would both be packed as {member}")
        cards[member] = raw
        result = fetch_release(rel, offline=offline, progress=progress)
        full = result.sha256 if len(result.sha256) == 64 else sha256_file(result.path)
        assets[f"assets/{full}.{file_extension(rel.asset.file_format)}"] = result.path
        releases.append({"id": rel.id, "card": member, "asset": f"assets/{full}."
                         f"{file_extension(rel.asset.file_format)}"})
    files = [{"path": m, "sha256": _sha_bytes(b), "size": len(b), "kind": "card"}
             for m, b in sorted(cards.items())]
    for m, p in sorted(assets.items()):
        files.append({"path": m, "sha256": m.split("/")[1].split(".")[0],
                      "size": p.stat().st_size, "kind": "asset"})
    from hub import __version__

    manifest = {
        "format": BUNDLE_FORMAT,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "generator": f"yolohub {__version__}",
        "releases": releases,
        "files": files,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    total = 0
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            data = json.dumps(manifest, indent=1).encode()
            _add_bytes(tar, "manifest.json", data)
            for m, b in sorted(cards.items()):
                _add_bytes(tar, m, b)
            for m, p in sorted(assets.items()):
                info = tarfile.TarInfo(m)
                info.size = p.stat().st_size
                info.mode = 0o644
                info.mtime = int(p.stat().st_mtime)
                with open(p, "rb") as f:
                    tar.addfile(info, f)
                total += info.size
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return PackResult(out, tuple(r["id"] for r in releases), len(files), out.stat().st_size)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = int(_dt.datetime.now().timestamp())
    tar.addfile(info, io.BytesIO(data))


def _bad(bundle: Path, what: str) -> RegistryError:
    return RegistryError(f"{bundle}: {what}; nothing was installed")


def _check_manifest(bundle: Path, data: object) -> dict:
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        raise _bad(bundle, f"not a yolohub bundle (expected a manifest of format {BUNDLE_FORMAT!r})")
    files = data.get("files")
    releases = data.get("releases")
    if not isinstance(files, list) or not isinstance(releases, list):
        raise _bad(bundle, "its manifest lacks the 'files' and 'releases' lists")
    seen = set()
    for f in files:
        if not (isinstance(f, dict) and isinstance(f.get("path"), str)
                and isinstance(f.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", f["sha256"])
                and isinstance(f.get("size"), int) and f["size"] >= 0):
            raise _bad(bundle, f"its manifest has a malformed file entry {str(f)[:120]}")
        if not _MEMBER.match(f["path"]):
            raise _bad(bundle, f"its manifest names {f['path']!r}, which is not a card or asset "
                               "path a bundle may hold (paths must stay inside the bundle)")
        if f["path"] in seen:
            raise _bad(bundle, f"its manifest lists {f['path']!r} twice")
        seen.add(f["path"])
    for r in releases:
        if not (isinstance(r, dict) and r.get("card") in seen and r.get("asset") in seen
                and isinstance(r.get("id"), str)):
            raise _bad(bundle, f"its manifest has a release entry that names no packed file: "
                               f"{str(r)[:120]}")
    return data


def unpack(bundle: str | os.PathLike, *, progress: bool | None = None) -> UnpackResult:
    """Verify every member of ``bundle``, then install its checkpoints into the cache and its
    cards under ``$YOLOHUB_HOME/cards``.  Works with no network (and in offline mode)."""
    from hub.assets.download import fetch_file
    from hub.assets.integrity import digest_matches
    from hub.cards.card import load_card
    from hub.cards.catalog import installed_cards_dir
    from hub.fileio import write_atomic
    from hub.settings import get_settings

    bundle = Path(bundle)
    settings = get_settings()
    if not bundle.is_file():
        raise RegistryError(f"{bundle}: no such bundle file")
    settings.home.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".unpack-", dir=settings.home))
    try:
        try:
            tar = tarfile.open(bundle, "r:*")
        except (tarfile.TarError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise _bad(bundle, f"not a readable tar file ({first})") from None
        with tar:
            manifest = None
            expected: dict[str, dict] = {}
            got: set[str] = set()
            total = 0
            while True:
                try:
                    member = tar.next()
                except tarfile.TarError as exc:
                    raise _bad(bundle, "the tar file is damaged "
                                       f"({str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r})") from None
                if member is None:
                    break
                name = member.name
                if manifest is None:
                    if name != "manifest.json" or not member.isfile() or member.size > (16 << 20):
                        raise _bad(bundle, "its first member must be manifest.json")
                    try:
                        data = json.loads(tar.extractfile(member).read())
                    except ValueError:
                        raise _bad(bundle, "its manifest.json is not JSON") from None
                    manifest = _check_manifest(bundle, data)
                    expected = {f["path"]: f for f in manifest["files"]}
                    continue
                if not member.isfile():
                    raise _bad(bundle, f"member {name!r} is not a regular file (links, "
                                       "directories and devices are refused)")
                if name not in expected or not _MEMBER.match(name):
                    raise _bad(bundle, f"member {name!r} is not listed in the manifest (or "
                                       "escapes the bundle's directory)")
                if name in got:
                    raise _bad(bundle, f"member {name!r} appears twice")
                want = expected[name]
                dest = work.joinpath(*name.split("/"))
                dest.parent.mkdir(parents=True, exist_ok=True)
                h = hashlib.sha256()
                n = 0
                src = tar.extractfile(member)
                with open(dest, "wb") as out:
                    while True:
                        chunk = src.read(_CHUNK)
                        if not chunk:
                            break
                        h.update(chunk)
                        n += len(chunk)
                        out.write(chunk)
                if h.hexdigest() != want["sha256"] or n != want["size"]:
                    raise ChecksumMismatchError(
                        f"{bundle}: member {name} is corrupted: expected sha256 {want['sha256']} "
                        f"({want['size']} bytes), found {h.hexdigest()} ({n} bytes); nothing "
                        "was installed — copy the bundle again",
                        expected=want["sha256"], actual=h.hexdigest(), size=n,
                        expected_size=want["size"], path=str(bundle),
                    )
                got.add(name)
                total += n
            if manifest is None:
                raise _bad(bundle, "it is empty")
            missing = sorted(set(expected) - got)
            if missing:
                raise _bad(bundle, f"the manifest lists {len(missing)} file(s) the bundle lacks: "
                                   f"{', '.join(missing[:3])}")
        # every card parses, and each release's asset is the file the card pins
        plans = []
        for r in manifest["releases"]:
            card = load_card(work.joinpath(*r["card"].split("/")))
            version = r["id"].partition("@")[2]
            asset = next((a for a in card.assets if a.version == version), None)
            full = r["asset"].split("/")[1].split(".")[0]
            if asset is None or not digest_matches(asset.sha256, full):
                raise _bad(bundle, f"release {r['id']}: its card does not pin the packed file "
                                   f"{r['asset']}")
            plans.append((r, card, asset))
        installed_assets = []
        for r, _card, asset in plans:
            src = work.joinpath(*r["asset"].split("/"))
            res = fetch_file(
                [src.resolve().as_uri()], sha256=asset.sha256, size=asset.size,
                file_format=asset.file_format, label=r["id"], owner=r["id"],
                owner_info={"card": None, "source": "bundle"}, settings=settings,
                progress=progress,
            )
            installed_assets.append(res.path)
        root = installed_cards_dir()
        cards_out = []
        for r in manifest["releases"]:
            target = root.joinpath(*r["card"].split("/")[1:])
            text = (work.joinpath(*r["card"].split("/"))).read_bytes().decode("utf-8")
            write_atomic(target, text)
            if target not in cards_out:
                cards_out.append(target)
        return UnpackResult(tuple(r["id"] for r in manifest["releases"]), tuple(cards_out),
                            tuple(installed_assets), total)
    finally:
        shutil.rmtree(work, ignore_errors=True)
