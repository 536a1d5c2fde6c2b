"""Writing cards: the one place that turns a card, or changes to one, back into card text.

:mod:`hub.cards.card` reads card text into typed fields; this module is the way back, and the
only code that spells front-matter keys on the write side.  Three uses:

* a new card (``hub.publish``): :func:`new_front_matter` from typed parts, keys in the schema's
  order;
* a changed card (``yolohub rehash``, ``eval --update-card``): :func:`edit_card` re-reads the
  file, applies typed changes and writes back only the fields that changed, so the title, the
  markdown body, unknown fields and the spelling of untouched values survive;
* plain top-level fields (:func:`update_card`), for callers that hold raw front-matter.

Every rewrite is validated before the file is replaced (atomically), so a bad change never
reaches disk.  ``parse_card(card_text(card)) == card`` holds for every card ``parse_card`` returns.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from hub.cards import schema as _schema
from hub.cards.card import (
    COCO80_NAMES,
    Architecture,
    Asset,
    Card,
    EvalProtocol,
    EvalResult,
    build_card,
    field_key,
    parse_card,
)
from hub.cards.frontmatter import STR_TAG, parse_front_matter, read_card_text
from hub.fileio import write_atomic

__all__ = [
    "architecture_fields",
    "asset_fields",
    "card_text",
    "edit_card",
    "eval_result_fields",
    "front_matter_of",
    "new_front_matter",
    "protocol_fields",
    "render_card",
    "update_card",
    "with_changes",
    "write_atomic",
]


# --- text ------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    pass


# Characters YAML reads as line breaks that PyYAML (allow_unicode) writes raw into quoted and
# block scalars, where reading folds them away; in double quotes it escapes them.
_UNICODE_BREAKS = frozenset("\x85\u2028\u2029")


def _str_presenter(dumper, value: str):
    if _UNICODE_BREAKS.intersection(value):
        style = '"'
    else:
        style = "|" if "\n" in value else None
    return dumper.represent_scalar(STR_TAG, value, style=style)


_Dumper.add_representer(str, _str_presenter)


def render_card(front_matter: Mapping[str, Any], body: str = "", *, title: str = "") -> str:
    """Card text for a front-matter mapping and a markdown body (key order is kept)."""
    fm = yaml.dump(
        dict(front_matter), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100
    )
    head = title if not title or title.endswith("\n") else title + "\n"
    return f"{head}---\n{fm}---\n{body}"


def card_text(card: Card) -> str:
    """The text of ``card``: its front-matter with its typed fields written over it, its body."""
    return render_card(front_matter_of(card), card.body, title=card.title)


# --- typed parts to front-matter fields ------------------------------------------------------


def _plain_fields(obj: Any, *, skip: Sequence[str] = ()) -> dict[str, Any]:
    """The set attributes of a dataclass under their keys, in field order (None is not written)."""
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.name in skip or value is None:
            continue
        out[field_key(f.name)] = list(value) if isinstance(value, tuple) else _plain(value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def asset_fields(asset: Asset) -> dict[str, Any]:
    """An ``asset`` entry: file-format, asset-link (and mirrors), asset-sha256, size, version,
    then whatever else the asset sets.  ``metric`` is not written: a card states it through its
    eval-protocol or its free-text ``evaluation``."""
    out: dict[str, Any] = {"file-format": asset.file_format, "asset-link": asset.links[0]}
    if len(asset.links) > 1:
        out["mirrors"] = list(asset.links[1:])
    out["asset-sha256"] = asset.sha256
    out.update(_plain_fields(asset, skip=("file_format", "links", "sha256", "metric")))
    if "input-shape" in out:
        out["input-shape"] = [int(v) for v in out["input-shape"]]
    return out


def architecture_fields(architecture: Architecture) -> dict[str, Any]:
    """An ``architecture`` section (no ``head-params`` when there are none)."""
    out = _plain_fields(architecture)
    if not architecture.head_params:
        out.pop("head-params", None)
    return out


def protocol_fields(protocol: EvalProtocol | Mapping[str, Any]) -> dict[str, Any]:
    """An ``eval-protocol`` section: every field of an EvalProtocol, or the fields a mapping
    gives (keys in either spelling, ``img_size`` or ``img-size``), in their order."""
    if is_dataclass(protocol):
        return _plain_fields(protocol)
    return {field_key(str(k)): _plain(v) for k, v in protocol.items()}


def eval_result_fields(result: EvalResult) -> dict[str, Any]:
    """One ``eval-results`` entry."""
    return _plain_fields(result)


def _class_names(names: Sequence[str] | str) -> str | list[str]:
    if names == "coco80" or (isinstance(names, tuple) and names == COCO80_NAMES):
        return "coco80"
    return list(names)


def _typed_fields(card: Card) -> dict[str, Any]:
    """The front-matter fields a card's typed attributes stand for (None: not in the card)."""
    return {
        "model-name": card.name,
        "model-version": card.version,
        "train-dataset": card.dataset,
        "asset": [asset_fields(a) for a in card.assets],
        "architecture": architecture_fields(card.architecture) if card.architecture else None,
        "class-names": _class_names(card.class_names) if card.class_names else None,
        "eval-protocol": protocol_fields(card.eval_protocol) if card.eval_protocol else None,
        "eval-results": [eval_result_fields(r) for r in card.eval_results] or None,
        "recipe": _plain(card.recipe) if card.recipe is not None else None,
    }


def new_front_matter(
    *,
    name: str,
    version: str,
    assets: Sequence[Asset],
    architecture: Architecture | None = None,
    eval_protocol: EvalProtocol | Mapping[str, Any] | None = None,
    class_names: Sequence[str] | str | None = None,
    dataset: str | None = None,
    recipe: Mapping[str, Any] | None = None,
    **other: Any,
) -> dict[str, Any]:
    """The front-matter of a new card, keys in the schema's order.

    ``other`` are the untyped top-level fields by attribute name (``backbone_name="yolov3"``,
    ``update_time="2026-01-02"``); None values are left out.
    """
    fm: dict[str, Any] = {field_key(k): v for k, v in other.items() if v is not None}
    fm.update({
        "model-name": name,
        "model-version": version,
        "asset": [asset_fields(a) for a in assets],
    })
    if dataset is not None:
        fm["train-dataset"] = dataset
    if architecture is not None:
        fm["architecture"] = architecture_fields(architecture)
    if class_names is not None:
        fm["class-names"] = _class_names(class_names)
    if eval_protocol is not None:
        fm["eval-protocol"] = protocol_fields(eval_protocol)
    if recipe:
        fm["recipe"] = _plain(dict(recipe))
    order = {k: i for i, k in enumerate(_schema.schema()["properties"])}
    return dict(sorted(fm.items(), key=lambda kv: order.get(kv[0], len(order))))


# --- changed cards ---------------------------------------------------------------------------

_MISSING = object()


def _merge(written: Any, old: Any, new: Any) -> Any:
    """``written`` (as in the file) with only what differs between ``old`` and ``new`` (both
    spelled by this module) changed: other keys, their order and their spelling stay."""
    if old == new:
        return written
    if isinstance(written, Mapping) and isinstance(old, Mapping) and isinstance(new, Mapping):
        out = dict(written)
        for key in old.keys() - new.keys():
            out.pop(key, None)
        for key, value in new.items():
            before = old.get(key, _MISSING)
            if before != value:
                out[key] = _merge(out.get(key, _MISSING), before, value)
        return out
    if isinstance(written, list) and isinstance(old, list) and isinstance(new, list):
        out = [_merge(w, o, n) for w, o, n in zip(written, old, new)]
        return out + new[len(out):]
    return copy.deepcopy(new)


def front_matter_of(card: Card) -> dict[str, Any]:
    """``card.front_matter`` with every typed field that differs from it written over it.

    A card ``parse_card`` returned gives its front-matter unchanged; a card made with
    ``dataclasses.replace(card, assets=...)`` gives the front-matter those assets stand for.
    """
    data = copy.deepcopy(dict(card.front_matter))
    base = build_card(data, body=card.body, title=card.title, path=card.path, source=card.source)
    if base == card:
        return data
    old, new = _typed_fields(base), _typed_fields(card)
    for key, value in new.items():
        if old[key] == value:
            continue
        if value is None:
            data.pop(key, None)
        else:
            data[key] = _merge(data.get(key, _MISSING), old[key], value)
    return data


def with_changes(card: Card, **changes: Any) -> Card:
    """``card`` with typed fields changed (``assets=``, ``eval_protocol=``, ...), validated and
    with its front-matter in step; nothing is written."""
    text = card_text(replace(card, **changes))
    file = str(card.path) if card.path else "<card>"
    return parse_card(text, file=file, source=card.source, path=card.path)


def edit_card(path: str | os.PathLike, change: Callable[[Card], Mapping[str, Any]]) -> Card:
    """Apply typed changes to the card file at ``path``, keeping its title, body and every
    field the changes do not touch verbatim; return the new card.

    ``change`` gets the card as the file holds it now and returns the typed fields to replace
    (``{"assets": ...}``); it may raise to refuse.  The result is validated before the file is
    replaced, so a bad change never reaches disk.
    """
    path = Path(path)
    current = parse_card(read_card_text(path), file=str(path), path=path)
    new_text = card_text(replace(current, **change(current)))
    return _replace_file(path, new_text)


def update_card(path: str | os.PathLike, changes: Mapping[str, Any]) -> Card:
    """Set top-level front-matter fields of a card file (None removes one), keeping its title
    and body verbatim; validated before the file is replaced."""
    path = Path(path)
    parsed = parse_front_matter(read_card_text(path), str(path))
    data = dict(parsed.data)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return _replace_file(path, render_card(data, parsed.body, title=parsed.title))


def _replace_file(path: Path, text: str) -> Card:
    card = parse_card(text, file=str(path), path=path)
    write_atomic(path, text)
    return card
