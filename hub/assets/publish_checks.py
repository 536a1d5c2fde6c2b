"""What ``publish`` checks before it writes anything: names, people, claim, format, architecture args.

Every check raises :class:`~hub.errors.PublishError` (or :class:`~hub.errors.BindingError` for
arguments the architecture refuses) with what was expected and what was found, so a bad call
leaves no file behind.  :func:`existing_card` finds a card that already publishes
``name@version`` in a registry.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hub.cards.card import load_card
from hub.errors import ArchitectureNotFoundError, BindingError, PublishError

_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")  # used with fullmatch
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+\-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
FORMATS = ("ckpt", "mindir", "air", "onnx", "om")


def check_identity(src: Path, name: str, version: str, arch: str) -> None:
    """A non-empty checkpoint file, and a name, version and architecture safe to use in paths."""
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


def checkpoint_format(src: Path) -> str:
    """The card's ``file-format`` for ``src``: its suffix, which must be a checkpoint format."""
    file_format = src.suffix.lstrip(".").lower() or "ckpt"
    if file_format not in FORMATS:
        raise PublishError(
            f"{src}: expected a checkpoint file ending in one of "
            f"{', '.join('.' + f for f in FORMATS)}, found {src.suffix or 'no suffix'!r}"
        )
    return file_format


def check_people(*, author: str | None, license: str | None) -> dict[str, str]:  # noqa: A002
    """The card's ``author`` / ``license`` fields: one line of text each, only when given."""
    out = {}
    for key, value in (("author", author), ("license", license)):
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip() or _CONTROL.search(value):
            raise PublishError(f"--{key} {value!r}: expected one line of text")
        out[key] = value.strip()
    return out


def check_claim(claimed) -> None:
    """``claimed`` (percent) is absent or a finite number in [0, 100]."""
    if claimed is None:
        return
    try:
        value = float(claimed)
    except (TypeError, ValueError):
        raise PublishError(f"claimed must be a number in [0, 100], found {claimed!r}") from None
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise PublishError(f"claimed must be a finite number in [0, 100] (percent), found {claimed}")


def arch_spec(arch: str):
    """The yolomodels spec of ``arch``: its argument names, defaults and head parameters."""
    from yolomodels.errors import UnknownArchitectureError
    from yolomodels.registry import get_arch

    try:
        return get_arch(arch)
    except UnknownArchitectureError as exc:
        raise ArchitectureNotFoundError(str(exc)) from None


def card_arch_args(arch: str, given: Mapping[str, Any] | None, class_names) -> dict[str, Any]:
    """The card's architecture args: the builder's defaults overlaid with ``given``."""
    from yolomodels.errors import ArchitectureArgumentError

    given = dict(given or {})
    spec = arch_spec(arch)
    accepted = spec.arg_names
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise PublishError(
            f"unknown architecture argument(s) {', '.join(unknown)}; architecture {arch!r} "
            f"accepts {', '.join(accepted)}"
        )
    args: dict[str, Any] = {k: v for k, v in spec.defaults.items() if k in accepted}
    args.update(given)
    if "num_classes" not in given and class_names not in (None, "coco80"):
        args["num_classes"] = len(class_names)
    try:
        spec.check_args(args)
    except ArchitectureArgumentError as exc:
        raise BindingError(str(exc)) from None
    return {k: args[k] for k in accepted if k in args}


def existing_card(registry: Path, name: str, version: str) -> tuple[Path, bool] | None:
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
