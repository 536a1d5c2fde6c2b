"""Reading card text: the title / front-matter / body split and bounded YAML.

A card file is an optional title line, a front-matter block between two ``---`` lines, then the
markdown body.  The front-matter is read with line numbers kept for every path, so that every
problem is reported as ``file:line: field: expected ..., found ...``, and under bounds that keep
any card to milliseconds and a few MB: file size, nesting depth, values after alias expansion, no
recursive aliases, finite numbers.  Properties the schema types as strings keep their text as
written (``2.5``, ``2025-03-10``, an all-digit sha256 prefix), which YAML alone would turn into
numbers and dates.  What the data means is :mod:`hub.cards.card`'s business.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hub.cards import schema as _schema
from hub.errors import CardValidationError, Finding

MAX_CARD_BYTES = 1 << 20
# Bounds on the front-matter, checked while parsing so that no card costs more than milliseconds
# and a few MB: nesting depth, YAML events (nodes as written) and values after alias expansion.
MAX_DEPTH = 32
MAX_NODES = 20_000
_FENCE = re.compile(r"^---[ \t]*$")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"


@dataclass(frozen=True)
class FrontMatter:
    """A card split and read: its title, front-matter data (with the line of every path), body."""

    title: str
    data: Any
    lines: dict[tuple, int]
    start_line: int
    body: str


def read_card_text(path: str | os.PathLike) -> str:
    """The text of a card file, refusing huge files and bytes that are not UTF-8."""
    path = Path(path)
    file = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_CARD_BYTES:
            raise CardValidationError(
                [
                    Finding(
                        file,
                        None,
                        "",
                        f"expected a card of at most {MAX_CARD_BYTES} bytes, found {size} bytes; "
                        "is this really a model card?",
                    )
                ]
            )
        raw = path.read_bytes()
    except OSError as exc:
        finding = Finding(file, None, "", f"cannot read file: {exc.strerror}")
        raise CardValidationError([finding]) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CardValidationError(
            [
                Finding(
                    file,
                    line,
                    "",
                    f"expected UTF-8 text, found byte 0x{raw[exc.start]:02x} at offset {exc.start}; "
                    "re-save the card as UTF-8",
                )
            ]
        ) from None


def split_card(text: str, file: str) -> tuple[str, str, int, str]:
    """(title, front-matter text, line of its first key, body)."""
    lines = text.splitlines(keepends=True)
    if not text.strip():
        raise CardValidationError(
            [Finding(file, 1, "", "expected a card (front-matter between '---' lines), found an empty file")]
        )
    opening = None
    for i, line in enumerate(lines):
        if _FENCE.match(line.rstrip("\r\n")):
            opening = i
            break
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            raise CardValidationError(
                [
                    Finding(
                        file,
                        i + 1,
                        "",
                        f"expected a '---' line opening the front-matter (only a '# title' may come "
                        f"before it), found {stripped[:60]!r}",
                    )
                ]
            )
    if opening is None:
        raise CardValidationError(
            [Finding(file, 1, "", "expected front-matter between two '---' lines, found no '---' line")]
        )
    for j in range(opening + 1, len(lines)):
        if _FENCE.match(lines[j].rstrip("\r\n")):
            title = "".join(lines[:opening])
            return title, "".join(lines[opening + 1 : j]), opening + 2, "".join(lines[j + 1 :])
    raise CardValidationError(
        [
            Finding(
                file,
                opening + 1,
                "",
                "expected a closing '---' line for the front-matter opened here, found end of file",
            )
        ]
    )


class _Unbounded(Exception):
    """The front-matter exceeds a parsing bound; carries the finding that says which."""

    def __init__(self, finding: Finding):
        self.finding = finding
        super().__init__(finding.message)


def _to_python(node: yaml.Node, path: tuple, ctx: _Ctx, key: str | None = None) -> Any:
    """Convert a composed YAML node, recording the (absolute) line of every path.

    Aliases share nodes, so the composed graph can be tiny while its expansion is huge or
    infinite: ``ctx.budget`` counts values as they are expanded, and a node met again while it is
    still being converted is a recursive alias.
    """
    line = node.start_mark.line + ctx.offset
    ctx.budget -= 1
    if ctx.budget < 0:
        raise _Unbounded(Finding(
            ctx.file, line, _fmt(path),
            f"expected at most {MAX_NODES} values, found more once YAML aliases (*name) are "
            "expanded; write the values out instead of repeating aliases",
        ))
    ctx.lines[path] = line
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        if len(path) >= MAX_DEPTH:
            raise _Unbounded(_too_deep(ctx.file, line))
        if id(node) in ctx.active:
            raise _Unbounded(Finding(
                ctx.file, line, _fmt(path),
                "expected plain values, found a recursive YAML alias (an anchor that contains "
                "itself); remove the alias",
            ))
        ctx.active.add(id(node))
        try:
            return _collection_to_python(node, path, ctx, key)
        finally:
            ctx.active.discard(id(node))
    # Scalars: keep the written text where the schema wants a string.
    if node.tag == STR_TAG or (key in _schema.string_keys() and node.tag != _NULL_TAG):
        return node.value
    value = yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    if isinstance(value, float) and not math.isfinite(value):
        ctx.findings.append(Finding(
            ctx.file, line, _fmt(path), f"expected a finite number, found {node.value!r}"
        ))
    return value


def _collection_to_python(node: yaml.Node, path: tuple, ctx: _Ctx, key: str | None) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for knode, vnode in node.value:
            line = knode.start_mark.line + ctx.offset
            if not isinstance(knode, yaml.ScalarNode):
                ctx.findings.append(Finding(ctx.file, line, _fmt(path), "expected a plain key"))
                continue
            k = knode.value
            if k in out:
                first = ctx.lines[path + (k,)]
                ctx.findings.append(
                    Finding(
                        ctx.file,
                        line,
                        _fmt(path + (k,)),
                        f"duplicate key {k!r} (first on line {first}); keep one",
                    )
                )
                continue
            out[k] = _to_python(vnode, path + (k,), ctx, key=k)
            ctx.lines[path + (k,)] = line
        return out
    return [_to_python(n, path + (i,), ctx, key=key) for i, n in enumerate(node.value)]


@dataclass
class _Ctx:
    file: str
    offset: int
    lines: dict[tuple, int]
    findings: list[Finding]
    budget: int = MAX_NODES
    active: set[int] = field(default_factory=set)


def _too_deep(file: str, line: int) -> Finding:
    return Finding(file, line, "", f"expected front-matter nested at most {MAX_DEPTH} levels "
                   "deep, found deeper nesting; is this really a model card?")


# Below this size the composed node graph is small whatever the text holds, and the converter's
# own depth and value checks suffice; above it the event stream is checked before composing.
_SHAPE_CHECK_BYTES = 64 << 10


def _check_shape(fm_text: str, file: str, start: int) -> None:
    """Refuse front-matter nested deeper than MAX_DEPTH or with more than MAX_NODES nodes.

    Runs over libyaml's event stream, which needs no memory beyond the current event, before
    anything is composed; a YAML syntax error is left for ``compose`` to report.
    """
    if len(fm_text) < _SHAPE_CHECK_BYTES:
        return
    depth = nodes = 0
    try:
        for event in yaml.parse(fm_text, Loader=_Loader):
            if isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
                nodes += 1
            elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                nodes += 1
                depth += 1
                if depth > MAX_DEPTH:
                    raise CardValidationError([_too_deep(file, start + event.start_mark.line)])
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            if nodes > MAX_NODES:
                raise CardValidationError([Finding(
                    file, start + event.start_mark.line, "",
                    f"expected front-matter of at most {MAX_NODES} values, found more; is this "
                    "really a model card?",
                )])
    except yaml.YAMLError:
        return


def _fmt(path: tuple) -> str:
    return _schema._field(path)


# MindSpore Hub writes "evaluation: -" for "no result", which YAML reads as a list marker
_EVAL_DASH = re.compile(r"^(evaluation:[ \t]*)-[ \t]*$", re.MULTILINE)


def _compose(text: str, file: str, start: int, what: str) -> yaml.Node | None:
    """The YAML node graph of ``text`` (lines counted from ``start``), within the shape bounds."""
    _check_shape(text, file, start)
    try:
        return yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = start + mark.line if mark is not None else start
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CardValidationError(
            [Finding(file, line, "", f"invalid YAML in {what}: {problem}; check indentation and quoting")]
        ) from None


def _convert(node: yaml.Node, file: str, start: int) -> tuple[Any, dict[tuple, int]]:
    ctx = _Ctx(file, start, {}, [])
    try:
        data = _to_python(node, (), ctx)
    except _Unbounded as exc:
        raise CardValidationError([exc.finding]) from None
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        raise CardValidationError([Finding(file, start, "", f"unreadable YAML value: {exc}")]) from None
    if ctx.findings:
        raise CardValidationError(ctx.findings)
    return data, ctx.lines


def load_yaml(text: str, *, file: str = "<yaml>") -> Any:
    """Plain data from YAML text (a recipe, an option value) under the card parser's bounds:
    nesting depth, values after alias expansion, no recursive aliases, finite numbers.

    Raises ``CardValidationError`` with the findings.
    """
    node = _compose(text, file, 1, "YAML")
    return None if node is None else _convert(node, file, 1)[0]


def parse_front_matter(text: str, file: str) -> FrontMatter:
    """Card text split and its front-matter read (not yet checked against the schema)."""
    title, fm_text, start, body = split_card(text, file)
    fm_text = _EVAL_DASH.sub(r'\1"-"', fm_text)
    node = _compose(fm_text, file, start, "front-matter")
    if node is None:
        raise CardValidationError(
            [Finding(file, start - 1, "", "expected front-matter fields, found an empty block")]
        )
    if not isinstance(node, yaml.MappingNode):
        raise CardValidationError(
            [Finding(file, start + node.start_mark.line, "", "expected front-matter of 'key: value' lines, found a "
                     + ("list" if isinstance(node, yaml.SequenceNode) else "single value"))]
        )
    data, lines = _convert(node, file, start)
    return FrontMatter(title, data, lines, start, body)
