"""Publish a checkpoint: copy it into an asset store and write a schema-valid card pointing at it.

The store is a plain directory (``<store>/<name>/<version>/<name>-<version>-<sha8>.<ext>``) that
any static HTTP server can serve; ``base_url`` is where that server exposes the store, and the
card's ``asset-link`` is ``base_url`` + the file's path inside the store (a ``file://`` URL when no
base URL is given).  The card goes to ``<registry>/<name>/<version>.md`` and pins the full
sha256 and byte size.  Nothing is written until the bytes are hashed, the card validates and
(``check_load``) the checkpoint loads strictly into the architecture; the copy and the card each
appear with one rename.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, is_dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hub.assets.integrity import CHUNK_SIZE, write_atomic
from hub.cards.card import Card, load_card, parse_card, render_card
from hub.errors import (
    ArchitectureNotFoundError,
    BindingError,
    CardValidationError,
    CheckpointError,
    CheckpointMismatchError,
    PublishConflictError,
    PublishError,
    UnsafeURLError,
)

log = logging.getLogger(__name__)

_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")  # used with fullmatch
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+\-]{0,63}")
_ARCH_ARGS = ("num_classes", "img_size", "depth_multiple", "width_multiple")
_FORMATS = ("ckpt", "mindir", "air", "onnx", "om")


@dataclass(frozen=True)
class PublishResult:
    """What ``publish`` wrote: the card, the stored file, its digest/size and its link."""

    card_path: Path
    asset_path: Path
    sha256: str
    size: int
    url: str
    card: Card
    load_report: Any = None  # yolomodels LoadReport when the strict load check ran
    replaced: bool = False  # True when --force replaced an earlier card of this name@version


def publish(
    checkpoint: str | os.PathLike,
    *,
    name: str,
    arch: str,
    registry: str | os.PathLike,
    store: str | os.PathLike,
    version: str = "1.0",
    base_url: str | None = None,
    arch_args: Mapping[str, Any] | None = None,
    class_names: Sequence[str] | str | None = None,
    eval_protocol: Mapping[str, Any] | Any | None = None,
    claimed: float | None = None,
    recipe: Mapping[str, Any] | None = None,
    summary: str | None = None,
    author: str | None = None,
    license: str | None = None,  # noqa: A002 - the card field's name
    force: bool = False,
    check_load: bool = True,
) -> PublishResult:
    """Copy ``checkpoint`` into ``store`` and write a card for it into ``registry``.

    The store is append-only: a file once written there is never deleted or overwritten (the
    same bytes published again reuse their file; ``gc_store`` removes files no card references).
    Refuses (``PublishConflictError``) when ``registry`` already has ``name@version`` (a card
    file there that does not validate counts) unless ``force``, which replaces only that card.
    With ``check_load`` the checkpoint must load strictly into ``arch`` built with ``arch_args``
    (skipped with a warning only while ``yolomodels.checkpoint`` does not exist).
    """
    src = Path(checkpoint)
    registry = Path(registry)
    store = Path(store)
    version = str(version)
    _check_identity(src, name, version, arch)
    people = _people(author=author, license=license)
    _check_claim(claimed)
    file_format = src.suffix.lstrip(".").lower() or "ckpt"
    if file_format not in _FORMATS:
        raise PublishError(
            f"{src}: expected a checkpoint file ending in one of "
            f"{', '.join('.' + f for f in _FORMATS)}, found {src.suffix or 'no suffix'!r}"
        )
    args = _arch_args(arch, arch_args, class_names)
    names = _class_names(class_names, args.get("num_classes"))
    protocol = _protocol(eval_protocol, names, args)
    if base_url is not None:
        _check_base_url(base_url)

    from filelock import FileLock

    registry.mkdir(parents=True, exist_ok=True)
    store.mkdir(parents=True, exist_ok=True)
    with FileLock(str(registry / ".publish.lock")):
        existing = _existing(registry, name, version)
        card_path = registry / name / f"{version}.md"
        if existing is not None:
            path, valid = existing
            if not force:
                what = "already publishes" if valid else "already exists for"
                fix = "" if valid else f" (it does not validate: `yolohub validate {path}`)"
                raise PublishConflictError(
                    f"{path} {what} {name}@{version}{fix}; choose another --version, or pass "
                    "--force (force=True) to replace that card"
                )
            if valid and len(load_card(path).assets) > 1:
                raise PublishConflictError(
                    f"{path} holds {name}@{version} together with other versions; --force "
                    "only replaces single-version cards, so edit that card by hand"
                )
            card_path = path
        rel_dir = Path(name) / version
        made = _missing_dirs(store, rel_dir)
        tmp = None
        try:
            tmp, sha, size = _copy_hashing(src, store / rel_dir, file_format)
            asset_rel = _asset_name(store, rel_dir, name, version, sha, file_format)
            asset_path = store / asset_rel
            url = _link(asset_rel, asset_path, base_url)
            front = _front_matter(
                name=name, version=version, arch=arch, args=args, names=names,
                protocol=protocol, sha=sha, size=size, url=url, file_format=file_format,
                claimed=claimed, recipe=recipe, summary=summary, people=people,
            )
            text = render_card(front, _body(name, version, arch, args, sha, size, src.name),
                               title=f"# {name}")
            try:
                parse_card(text, file=str(card_path))
            except CardValidationError as exc:
                raise PublishError(f"the card for {name}@{version} would not validate: {exc}") from exc
            report = _check_load(tmp, arch, args) if check_load else None
            # the store lock keeps `yolohub store gc` from seeing the file before its card
            with FileLock(str(store / STORE_LOCK)):
                _place(tmp, asset_path, sha)
                card_path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(card_path, text)
        except BaseException:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            for d in reversed(made):  # only directories this call created, and only if empty
                try:
                    d.rmdir()
                except OSError:
                    break
            raise
    card = load_card(card_path)
    _reindex(registry)
    log.debug("published %s@%s: %s -> %s (sha256 %s, %d bytes)", name, version, card_path, url,
             sha, size)
    return PublishResult(card_path, asset_path, sha, size, url, card, report, existing is not None)


def _reindex(registry: Path) -> None:
    """Bring the registry's index.json and HTML catalog up to date with the new card."""
    from hub.cards.index import write_index
    from hub.errors import HubError

    try:
        write_index(registry)
    except (HubError, OSError) as exc:  # the card is published; say how to finish the index
        log.warning("published, but the registry index was not updated (%s); run "
                    "'yolohub index %s'", exc, registry)


STORE_LOCK = ".yolohub-store.lock"


def _missing_dirs(store: Path, rel_dir: Path) -> list[Path]:
    """The directories of ``store / rel_dir`` that do not exist yet, outermost first."""
    out, d = [], store / rel_dir
    while d != store and not d.exists():
        out.append(d)
        d = d.parent
    return out[::-1]


def _asset_name(store: Path, rel_dir: Path, name: str, version: str, sha: str, ext: str) -> Path:
    """The store path for these bytes: ``<name>-<version>-<sha8>.<ext>``, or the full sha256
    when another file already holds the 8-digit name (never a name that holds other bytes)."""
    from hub.assets.integrity import sha256_file

    for digits in (8, 64):
        rel = rel_dir / f"{name}-{version}-{sha[:digits]}.{ext}"
        path = store / rel
        if not path.exists() or (path.is_file() and sha256_file(path) == sha):
            return rel
    raise PublishError(f"{store / rel_dir} holds other files under the names of sha256 {sha}; "
                       "the store looks tampered with, choose another --store")


def _place(tmp: Path, target: Path, sha: str) -> None:
    """Move ``tmp`` to ``target`` without ever replacing a file already there.

    A hard link fails if ``target`` exists, so a concurrent publisher's file (or an earlier
    publish of the same bytes) survives; identical bytes are simply reused.
    """
    from hub.assets.integrity import sha256_file

    try:
        os.link(tmp, target)
    except FileExistsError:
        if sha256_file(target) != sha:
            raise PublishError(f"{target} appeared meanwhile with other bytes; publish again") from None
    except OSError:  # a file system without hard links
        if target.exists():
            if sha256_file(target) != sha:
                raise PublishError(f"{target} appeared meanwhile with other bytes; publish "
                                   "again") from None
        else:
            os.replace(tmp, target)
    tmp.unlink(missing_ok=True)


# --- checks ------------------------------------------------------------------------------------


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _check_claim(claimed) -> None:
    import math

    if claimed is None:
        return
    try:
        value = float(claimed)
    except (TypeError, ValueError):
        raise PublishError(f"claimed must be a number in [0, 100], found {claimed!r}") from None
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise PublishError(f"claimed must be a finite number in [0, 100] (percent), found {claimed}")


def _people(*, author: str | None, license: str | None) -> dict[str, str]:  # noqa: A002
    """The card's ``author`` / ``license`` fields: one line of text each, only when given."""
    out = {}
    for key, value in (("author", author), ("license", license)):
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip() or _CONTROL.search(value):
            raise PublishError(f"--{key} {value!r}: expected one line of text")
        out[key] = value.strip()
    return out


def _check_identity(src: Path, name: str, version: str, arch: str) -> None:
    if not src.is_file():
        what = "is a directory" if src.is_dir() else "does not exist"
        raise PublishError(f"checkpoint {src} {what}; pass the path of a checkpoint file")
    if src.stat().st_size == 0:
        raise PublishError(f"checkpoint {src} is empty (0 bytes); nothing to publish")
    if not _safe(_IDENT, name):
        raise PublishError(
            f"model name {name!r} is not usable: expected letters, digits, '_', '.' or '-' "
            "(starting with a letter or digit, no '..', at most 128 characters)"
        )
    if not _safe(_VERSION, version):
        raise PublishError(
            f"version {version!r} is not usable: expected something like 1.0, 2.5 or 910v2 "
            "(letters, digits, '_', '.', '+', '-'; no '..')"
        )
    if not _safe(_IDENT, arch):
        raise PublishError(f"architecture {arch!r} is not a registered architecture name")


def _safe(pattern: re.Pattern, text) -> bool:
    """``text`` is wholly made of the pattern's safe characters (no final newline) and no '..'."""
    return isinstance(text, str) and pattern.fullmatch(text) is not None and ".." not in text


def _arch_spec(arch: str):
    """The yolomodels spec of ``arch``, or None when yolomodels cannot be imported."""
    try:
        from yolomodels.errors import UnknownArchitectureError
        from yolomodels.registry import get_arch
    except ImportError:
        return None
    try:
        return get_arch(arch)
    except UnknownArchitectureError as exc:
        raise ArchitectureNotFoundError(str(exc)) from None


def _arch_args(arch: str, given: Mapping[str, Any] | None, class_names) -> dict[str, Any]:
    """The card's architecture args: the builder's defaults overlaid with ``given``."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(_ARCH_ARGS))
    if unknown:
        raise PublishError(
            f"unknown architecture argument(s) {', '.join(unknown)}; cards accept "
            f"{', '.join(_ARCH_ARGS)}"
        )
    spec = _arch_spec(arch)
    args: dict[str, Any] = {}
    if spec is not None:
        args.update({k: v for k, v in spec.defaults.items() if k in _ARCH_ARGS})
    args.update(given)
    if "num_classes" not in given and class_names not in (None, "coco80"):
        args["num_classes"] = len(class_names)
    if spec is not None:
        from yolomodels.errors import ArchitectureArgumentError

        try:
            spec.check_args(args)
        except ArchitectureArgumentError as exc:
            raise BindingError(str(exc)) from None
    return {k: args[k] for k in _ARCH_ARGS if k in args}


def _class_names(class_names, num_classes: int | None):
    if class_names is None:
        if num_classes in (None, 80):
            return "coco80"
        raise PublishError(
            f"the network has {num_classes} classes: give their names (class_names=[...], "
            "--class-names a,b,c or --class-names FILE with one name per line)"
        )
    if class_names == "coco80":
        names: Any = "coco80"
        count = 80
    else:
        names = [str(n).strip() for n in class_names]
        if not names or any(not n for n in names):
            raise PublishError("class names must be non-empty strings")
        count = len(names)
    if num_classes is not None and count != num_classes:
        raise PublishError(
            f"{count} class names given but the network has num_classes={num_classes}; "
            "make them agree"
        )
    return names


def _protocol(protocol, names, args) -> dict[str, Any]:
    """The card's eval-protocol fields, from a mapping or an EvalProtocol dataclass.

    Fields not given come from the network: its image size, COCO for the 80 COCO classes.
    """
    from hub.cards.write import protocol_fields

    defaults = protocol_fields({
        "dataset": "coco2017" if names == "coco80" else "unspecified",
        "split": "val2017" if names == "coco80" else "val",
        "metric": "AP",
        "img_size": int(args.get("img_size", 640)),
    })
    if protocol is None:
        return defaults
    if not (is_dataclass(protocol) or isinstance(protocol, Mapping)):
        raise PublishError(f"eval_protocol must be a mapping, found {type(protocol).__name__}")
    return {**defaults, **protocol_fields(protocol)}


def _check_base_url(base_url: str) -> None:
    from hub.assets.http import check_url

    try:
        check_url(base_url.rstrip("/") + "/")
    except UnsafeURLError as exc:
        raise PublishError(f"--base-url {base_url!r} cannot be used: {exc}") from None


def _link(rel: Path, path: Path, base_url: str | None) -> str:
    if base_url is None:
        return path.resolve().as_uri()
    return base_url.rstrip("/") + "/" + quote(rel.as_posix())


def _existing(registry: Path, name: str, version: str) -> tuple[Path, bool] | None:
    """(card file, valid?) already holding ``name@version`` in ``registry``, if any.

    ``<registry>/<name>/<version>.md`` counts whatever it holds: a card there that does not
    validate is still someone's file.
    """
    from hub.cards.catalog import card_files

    canonical = registry / name / f"{version}.md"
    for path in card_files(registry):
        try:
            card = load_card(path)
        except Exception:  # noqa: BLE001 - an unreadable card is no reason to fail here
            if path == canonical:
                return path, False
            continue
        if card.name == name and any(a.version == version for a in card.assets):
            return path, True
    if os.path.lexists(canonical):
        return canonical, False
    return None


# --- writing -------------------------------------------------------------------------------------


def _copy_hashing(src: Path, directory: Path, ext: str) -> tuple[Path, str, int]:
    """Copy ``src`` into a temporary file in ``directory``, hashing the bytes as they pass."""
    directory.mkdir(parents=True, exist_ok=True)
    need = src.stat().st_size
    free = shutil.disk_usage(directory).free
    if need > free:
        raise PublishError(
            f"not enough space in {directory}: the checkpoint needs {need} bytes, {free} are "
            "free; free some space or choose another --store"
        )
    fd, name = tempfile.mkstemp(prefix=".publish-", suffix=f".{ext}", dir=directory)
    tmp = Path(name)
    h = hashlib.sha256()
    n = 0
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
            while chunk := f.read(CHUNK_SIZE):
                h.update(chunk)
                out.write(chunk)
                n += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, h.hexdigest(), n


def _mindspore_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mindspore")
    except PackageNotFoundError:
        return None


def _front_matter(*, name, version, arch, args, names, protocol, sha, size, url, file_format,
                  claimed, recipe, summary, people) -> dict[str, Any]:
    from hub import __version__
    from hub.cards.card import FORMAT, Architecture, Asset
    from hub.cards.write import new_front_matter

    spec = _arch_spec(arch)
    asset = Asset(file_format=file_format, links=(url,), sha256=sha, size=size, version=version,
                  claimed=round(float(claimed), 4) if claimed is not None else None)
    ms_version = _mindspore_version()
    fm = new_front_matter(
        format=FORMAT,
        name=name,
        backbone_name=arch,
        module_type="cv",
        fine_tunable=True,
        version=version,
        dataset=protocol.get("dataset", "unspecified"),
        author=people.get("author"),
        update_time=_dt.date.today().isoformat(),
        used_for="inference",
        mindspore_version=ms_version.split("+")[0] if ms_version else None,
        assets=[asset],
        license=people.get("license"),
        summary=summary or f"{arch} checkpoint published with yolohub {__version__}.",
        architecture=Architecture(arch, dict(args), tuple(spec.head_params) if spec else ()),
        class_names=names,
        eval_protocol=protocol,
        recipe=_plain(dict(recipe)) if recipe else None,
    )
    return _plain(fm)


def _plain(obj):
    """``obj`` as YAML-safe plain data: tuples become lists, numpy scalars numbers, paths text."""
    import json

    def default(o):
        if hasattr(o, "item"):  # numpy scalar
            return o.item()
        if hasattr(o, "tolist"):  # numpy array
            return o.tolist()
        if isinstance(o, (set, frozenset)):
            return sorted(o)
        return str(o)

    return json.loads(json.dumps(obj, default=default))


def _body(name, version, arch, args, sha, size, source_name) -> str:
    arg_text = ", ".join(f"{k}={v}" for k, v in args.items()) or "defaults"
    return (
        f"\n{name} {version}: a `{arch}` network ({arg_text}).\n\n"
        f"Published with `yolohub publish` from `{source_name}`: {size} bytes, sha256 `{sha}`.\n\n"
        "```python\n"
        "import hub\n"
        f'net = hub.load("{name}@{version}", cards_dirs=["<this registry>"])\n'
        "```\n"
    )


# --- strict load -------------------------------------------------------------------------------


def _check_load(path: Path, arch: str, args: Mapping[str, Any]):
    """Prove the file loads strictly into ``arch``; return the LoadReport (None when skipped)."""
    try:
        from yolomodels.checkpoint import load_strict, read_checkpoint
    except ModuleNotFoundError as exc:
        if exc.name not in ("yolomodels", "yolomodels.checkpoint"):
            raise
        log.warning("yolomodels.checkpoint is not available: publishing without the strict "
                    "load check")
        return None
    from yolomodels.errors import YoloModelsError
    from yolomodels.registry import build

    try:
        params = read_checkpoint(path)
    except YoloModelsError as exc:
        raise CheckpointError(f"cannot publish: {exc}") from None
    try:
        net = build(arch, **args)
    except YoloModelsError as exc:
        raise BindingError(f"cannot build {arch} with {dict(args)}: {exc}") from None
    report = load_strict(net, params)
    if not report.ok:
        raise CheckpointMismatchError(
            f"the checkpoint does not load strictly into {arch} {dict(args)}: "
            f"{report.describe()}; pass the architecture arguments it was trained with "
            "(--num-classes, --img-size, --depth-multiple, --width-multiple)",
            report,
        )
    return report


__all__ = ["PublishResult", "publish"]
