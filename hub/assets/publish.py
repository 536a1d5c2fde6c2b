"""Publish a checkpoint: copy it into an asset store and write a schema-valid card pointing at it.

The store is a plain directory (``<store>/<name>/<version>/<name>-<version>-<sha8>.<ext>``) that
any static HTTP server can serve; ``base_url`` is where that server exposes the store, and the
card's ``asset-link`` is ``base_url`` + the file's path inside the store (a ``file://`` URL when no
base URL is given).  The card goes to ``<registry>/<name>/<version>.md`` and pins the full
sha256 and byte size.  Nothing is written until the bytes are hashed, the card validates and
(``check_load``) the checkpoint loads strictly into the architecture; the copy and the card each
appear with one rename.  The argument checks are :mod:`hub.assets.publish_checks`; copying into
and placing in the store is :mod:`hub.assets.store_write`; this module composes the card.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, is_dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hub.assets.publish_checks import arch_spec as _arch_spec  # the name _front_matter uses
from hub.assets.publish_checks import (
    card_arch_args,
    check_claim,
    check_identity,
    check_people,
    checkpoint_format,
    existing_card,
)
from hub.assets.store_write import (
    STORE_LOCK,
    asset_name,
    check_base_url,
    copy_hashing,
    missing_dirs,
    place,
)
from hub.cards.card import Card, load_card, parse_card
from hub.cards.write import render_card
from hub.errors import (
    CardValidationError,
    PublishConflictError,
    PublishError,
)
from hub.fileio import write_atomic

log = logging.getLogger(__name__)


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
    check_identity(src, name, version, arch)
    people = check_people(author=author, license=license)
    check_claim(claimed)
    file_format = checkpoint_format(src)
    args = card_arch_args(arch, arch_args, class_names)
    names = _class_names(class_names, args.get("num_classes"))
    protocol = _protocol(eval_protocol, names, args)
    if base_url is not None:
        check_base_url(base_url)

    from filelock import FileLock

    registry.mkdir(parents=True, exist_ok=True)
    store.mkdir(parents=True, exist_ok=True)
    with FileLock(str(registry / ".publish.lock")):
        existing = existing_card(registry, name, version)
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
        made = missing_dirs(store, rel_dir)
        tmp = None
        try:
            tmp, sha, size = copy_hashing(src, store / rel_dir, file_format)
            asset_rel = asset_name(store, rel_dir, name, version, sha, file_format)
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
                place(tmp, asset_path, sha)
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


def _link(rel: Path, path: Path, base_url: str | None) -> str:
    if base_url is None:
        return path.resolve().as_uri()
    return base_url.rstrip("/") + "/" + quote(rel.as_posix())


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
        architecture=Architecture(arch, dict(args), tuple(spec.head_params)),
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
    """Prove the file loads strictly into ``arch``; return the LoadReport (None when skipped).

    The check is :func:`hub.assets.weights.build_and_load`, the one strict load ``hub.load``
    uses too.
    """
    try:
        import yolomodels.checkpoint  # noqa: F401 (only probing that it is there)
    except ModuleNotFoundError as exc:
        if exc.name not in ("yolomodels", "yolomodels.checkpoint"):
            raise
        log.warning("yolomodels.checkpoint is not available: publishing without the strict "
                    "load check")
        return None
    from hub.assets.weights import build_and_load

    _, report = build_and_load(
        arch, args, path, context="cannot publish",
        read_hint="pass a checkpoint file saved by MindSpore or yolohub train",
        fit_hint=f"it was built as {arch} {dict(args)}; pass the architecture arguments it was "
        "trained with "
        "(--num-classes, --img-size, --depth-multiple, --width-multiple)",
    )
    return report


__all__ = ["PublishResult", "publish"]
