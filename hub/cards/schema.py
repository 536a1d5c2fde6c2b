"""The card JSON Schema: loading it once, and turning its errors into readable findings.

``schema/model-card.schema.json`` is the single source of truth for what a card may contain; this
module only adds presentation: the line each error is on, what was expected (from the schema's
``x-expected`` hints), what was found, and "did you mean" for unknown keys and enum values.  It
also compiles schemas for :mod:`hub.cards.index` (the registry index has its own), and tells the
front-matter reader which properties are strings (:func:`string_keys`) and the writer the order
of the top-level fields.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from hub._paths import schema_path
from hub.errors import Finding


@functools.lru_cache(maxsize=1)
def schema() -> dict:
    with open(schema_path(), encoding="utf-8") as f:
        return json.load(f)


def reference_validator(document: dict):
    """A jsonschema validator of ``document``: ``pattern`` with ECMA-262's meaning (as JSON
    Schema says) and local ``$ref``s inlined.  Also used for the registry index schema."""
    from jsonschema import Draft202012Validator, ValidationError
    from jsonschema.validators import extend

    def pattern(validator, patrn, instance, _schema):
        if validator.is_type(instance, "string") and not _ecma_regex(patrn).search(instance):
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    Draft202012Validator.check_schema(document)
    return extend(Draft202012Validator, {"pattern": pattern})(_inline_refs(document))


def fast_validator(document: dict):
    """``document`` compiled by ``jsonschema_rs`` (Rust, ~30x faster), or None without it.

    Used only to say "valid" quickly (:func:`fast_is_valid`); any doubt goes to the reference
    validator, which also produces the readable findings.
    """
    try:
        import jsonschema_rs
    except ImportError:  # optional speed-up
        return None
    return jsonschema_rs.validator_for(document)


@functools.lru_cache(maxsize=1)
def _validator():
    return reference_validator(schema())


@functools.lru_cache(maxsize=1)
def _fast_validator():
    return fast_validator(schema())


@functools.cache
def _ecma_regex(pattern: str) -> re.Pattern:
    r"""``pattern`` (ECMA-262, as JSON Schema says) compiled with ECMA's meaning of ``$``.

    In ECMA-262 ``$`` is the end of the input; Python's ``$`` also matches before a final
    newline, which would let ``"abc\n"`` pass ``^[a-z]+$``.  Every ``$`` outside a character
    class becomes ``\Z``.
    """
    out, i, in_class = [], 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        out.append("\\Z" if ch == "$" and not in_class else ch)
        i += 1
    return re.compile("".join(out))


def _inline_refs(root: dict) -> dict:
    """The schema with every local ``$ref`` replaced by its definition (ours has no cycles).

    Validation is the same; it just skips reference lookups, which dominate bulk validation.
    """

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(x) for x in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node and node["$ref"].startswith("#/$defs/"):
            target = walk(root["$defs"][node["$ref"].rsplit("/", 1)[-1]])
            return {**target, **{k: walk(v) for k, v in node.items() if k != "$ref"}}
        return {k: walk(v) for k, v in node.items() if k != "$defs"}

    return walk(root)


@functools.lru_cache(maxsize=1)
def string_keys() -> frozenset[str]:
    """Property names the schema types as strings (YAML must not turn them into numbers/dates)."""
    root = schema()
    found: set[str] = set()

    def deref(node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        return node

    def walk(node: Any) -> None:
        node = deref(node)
        if not isinstance(node, dict):
            return
        for key, sub in node.get("properties", {}).items():
            sub = deref(sub)
            if isinstance(sub, dict) and sub.get("type") == "string":
                found.add(key)
            walk(sub)
        for key in ("items", "then", "if"):
            if key in node:
                walk(node[key])
        for key in ("oneOf", "anyOf", "allOf"):
            for sub in node.get(key, ()):
                walk(sub)

    walk(root)
    for sub in root["$defs"].values():
        walk(sub)
    return frozenset(found)


def fast_is_valid(validator, data: Any) -> bool:
    """True only when ``validator`` (a jsonschema_rs validator or None) accepts ``data``."""
    if validator is None:
        return False
    try:
        return bool(validator.is_valid(data))
    except (ValueError, TypeError, OverflowError):  # e.g. a YAML date it has no type for
        return False


def validate(
    data: Any, *, file: str, lines: Mapping[tuple, int], start_line: int | None = None
) -> list[Finding]:
    """Every schema violation in ``data``, each located by ``lines`` (path -> line number)."""
    if fast_is_valid(_fast_validator(), data):
        return []
    errors = sorted(_validator().iter_errors(data), key=lambda e: [str(p) for p in e.path])
    findings: list[Finding] = []
    for err in errors:
        findings.extend(_describe(err, file=file, lines=lines, start_line=start_line))
    findings.sort(key=lambda f: (f.line or 0, f.field))
    return findings


def _line(lines: Mapping[tuple, int], path: Iterable, default: int | None) -> int | None:
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get((), default)


def _field(path: Iterable) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _found(value: Any) -> str:
    kind = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "list",
        dict: "mapping",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{kind} {shown}" if value is not None else "nothing (empty value)"


def _suggest(word: str, choices: Iterable[str]) -> str:
    choices = [str(c) for c in choices]
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(str(word).lower(), list(lowered), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(lowered[c]) for c in close)}?" if close else ""


def _describe(err, *, file: str, lines, start_line) -> list[Finding]:
    path = tuple(err.absolute_path)
    line = _line(lines, path, start_line)
    hint = err.schema.get("x-expected") if isinstance(err.schema, dict) else None
    v, inst = err.validator, err.instance

    if v == "additionalProperties":
        allowed = list(err.schema.get("properties", {}))
        extra = [k for k in inst if k not in err.schema.get("properties", {})]
        return [
            Finding(
                file,
                _line(lines, (*path, k), line),
                _field((*path, k)),
                f"unknown field {k!r}{_suggest(k, allowed)}"
                + ("" if _suggest(k, allowed) else f" (allowed here: {', '.join(allowed)})"),
            )
            for k in extra
        ]
    if v == "required":
        missing = [k for k in err.validator_value if k not in inst]
        why = f" (required by format: {inst['format']})" if "format" in inst and path == () else ""
        return [
            Finding(file, line, _field((*path, k)), f"missing required field {k!r}{why}")
            for k in missing
        ]
    if v == "enum":
        allowed = ", ".join(repr(x) for x in err.validator_value)
        msg = f"expected one of {allowed}, found {_found(inst)}{_suggest(inst, err.validator_value)}"
    elif v == "type":
        msg = f"expected {err.validator_value}, found {_found(inst)}"
    elif v in ("pattern", "anyOf") and isinstance(err.schema, dict) and err.schema.get("x-choices"):
        choices = err.schema["x-choices"]
        word = str(inst).split("-")[0].split("/")[0] if isinstance(inst, str) else inst
        msg = f"expected {hint}, found {_found(inst)}{_suggest(word, choices)}"
    elif v in ("pattern", "oneOf", "anyOf") and hint:
        msg = f"expected {hint}, found {_found(inst)}"
    elif v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[v]
        msg = f"expected a number {op} {err.validator_value}, found {_found(inst)}"
    elif v == "multipleOf":
        msg = f"expected a multiple of {err.validator_value}, found {_found(inst)}"
    elif v in ("minItems", "minLength"):
        msg = f"expected at least {err.validator_value} item(s)/character(s), found {_found(inst)}"
    else:
        msg = f"{err.message}" + (f" (expected {hint})" if hint else "")
    return [Finding(file, line, _field(path), msg)]
