"""Model cards: markdown with YAML front-matter, parsed into typed, validated objects.

A card file looks like MindSpore Hub's public cards: an optional title line, a front-matter block
between two ``---`` lines, then the markdown body.  Parsing keeps line numbers so that every
problem is reported as ``file:line: field: expected ..., found ...`` and all problems of a card
are reported at once.

Quirks of MindSpore Hub cards that parse here: a title line before the front-matter, links in
``<angle brackets>``, 8-hex sha256 prefixes (even all-digit ones YAML would read as integers),
versions and dates YAML would type as float and date (``2.5``, ``2025-03-10``) and dataset ids in
any case (``COCO2017``).  Every property the schema types as a string keeps its text as written.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from hub.assets.integrity import write_atomic  # noqa: F401 (re-exported: hub.cards.card.write_atomic)
from hub.cards import schema as _schema
from hub.cards.mshub import parse_evaluation
from hub.errors import CardValidationError, Finding

MAX_CARD_BYTES = 1 << 20
# Bounds on the front-matter, checked while parsing so that no card costs more than milliseconds
# and a few MB: nesting depth, YAML events (nodes as written) and values after alias expansion.
MAX_DEPTH = 32
MAX_NODES = 20_000
FORMAT = "yolohub/1"
_FENCE = re.compile(r"^---[ \t]*$")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"

COCO80_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip


# --- typed card -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Asset:
    """One downloadable file of a card: one released version of the weights."""

    file_format: str
    links: tuple[str, ...]
    sha256: str
    size: int | None
    version: str
    claimed: float | None = None
    hardware: str | None = None
    metric: str | None = None  # what ``claimed`` measures when the card has no eval-protocol
    input_shape: tuple[int, ...] | None = None
    """(batch, 3, height, width) of an exported graph (mindir, onnx); None for checkpoints."""

    @property
    def weak(self) -> bool:
        """True when the card only carries a prefix of the sha256 (legacy MindSpore Hub cards)."""
        return len(self.sha256) < 64


@dataclass(frozen=True)
class Architecture:
    name: str
    args: Mapping[str, Any]
    head_params: tuple[str, ...] = ()
    param_count: int | None = None


@dataclass(frozen=True)
class EvalProtocol:
    dataset: str
    metric: str
    split: str = "val"
    img_size: int = 640
    conf_threshold: float = 0.001
    iou_threshold: float = 0.65
    max_detections: int = 300
    multi_label: bool = True
    batch_size: int = 16
    tolerance: float = 0.5


@dataclass(frozen=True)
class Card:
    name: str
    version: str
    path: Path | None
    source: str
    assets: tuple[Asset, ...]
    architecture: Architecture | None
    eval_protocol: EvalProtocol | None
    recipe: Mapping[str, Any] | None
    class_names: tuple[str, ...] | None
    dataset: str | None
    front_matter: Mapping[str, Any]
    body: str
    title: str = ""

    @property
    def is_yolohub(self) -> bool:
        return self.front_matter.get("format") == FORMAT

    def editable_front_matter(self) -> dict[str, Any]:
        """A deep copy of the front-matter to change and write back with ``update_card``."""
        return copy.deepcopy(dict(self.front_matter))


@dataclass(frozen=True)
class Release:
    """A card together with one of its assets: what ``name@version`` resolves to."""

    card: Card
    asset: Asset

    @property
    def id(self) -> str:
        return f"{self.card.name}@{self.asset.version}"

    @property
    def formats(self) -> tuple[str, ...]:
        """The file formats this card ships for this version (the checkpoint's first)."""
        return tuple(a.file_format.lower() for a in self.card.assets
                     if a.version == self.asset.version)

    def with_format(self, file_format: str) -> Release:
        """This version's asset of another format (``onnx``, ``mindir``); LookupError if none."""
        from hub.errors import CardNotFoundError

        fmt = str(file_format).strip().lower()
        for a in self.card.assets:
            if a.version == self.asset.version and a.file_format.lower() == fmt:
                return Release(self.card, a)
        raise CardNotFoundError(
            f"{self.id} has no {fmt} asset (it ships {', '.join(self.formats)}); "
            f"`yolohub export {self.id} --format {fmt} --publish` adds one"
        )


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Parsed:
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


def _split(text: str, file: str) -> tuple[str, str, int, str]:
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
    if node.tag == _STR_TAG or (key in _schema.string_keys() and node.tag != _NULL_TAG):
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


def _parse(text: str, file: str) -> _Parsed:
    title, fm_text, start, body = _split(text, file)
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
    return _Parsed(title, data, lines, start, body)


def asset_versions(data: Mapping) -> list[str]:
    """The version of each asset: its ``version``, else the card's ``model-version``.

    MindSpore Hub cards list one model in several formats (a ckpt and an mslite file) without
    versions; an unversioned asset whose format follows an earlier one of the same version is
    ``<version>-<format>`` (``1.0-mslite``), so every file stays addressable as name@version
    (two unversioned files of one format stay a duplicate, which the semantic checks report).
    """
    default = str(data.get("model-version", "1"))
    out: list[str] = []
    formats: dict[str, set] = {}
    for a in data.get("asset", []) or []:
        a = a if isinstance(a, Mapping) else {}
        version, fmt = str(a.get("version", default)), a.get("file-format")
        if "version" not in a and version in formats and fmt not in formats[version]:
            version = f"{version}-{fmt}"  # another format of the same model
        formats.setdefault(version, set()).add(fmt)
        out.append(version)
    return out


def _semantic_checks(data: dict, lines: dict, file: str) -> list[Finding]:
    """Rules one JSON Schema cannot say: cross-field agreement."""
    out = []
    listed = data.get("asset", []) or []
    seen: dict[tuple[str, str], int] = {}
    for i, version in enumerate(asset_versions(data)):
        # one version may ship several formats (a checkpoint and its exported graphs)
        asset = listed[i] if isinstance(listed[i], Mapping) else {}
        key = (version, str(asset.get("file-format", "")).lower())
        if key in seen:
            out.append(
                Finding(
                    file,
                    lines.get(("asset", i)),
                    f"asset[{i}].version",
                    f"expected each asset to have its own version (or another file-format), "
                    f"found {key[1]} version {version!r} again (also asset[{seen[key]}]); "
                    "give one of them a 'version:'",
                )
            )
        seen[key] = i
    names = data.get("class-names")
    nc = (data.get("architecture") or {}).get("args", {}).get("num_classes")
    if isinstance(names, list) and isinstance(nc, int) and len(names) != nc:
        out.append(
            Finding(
                file,
                lines.get(("class-names",)),
                "class-names",
                f"expected {nc} class names (architecture.args.num_classes), found {len(names)}",
            )
        )
    if names == "coco80" and isinstance(nc, int) and nc != 80:
        out.append(
            Finding(file, lines.get(("class-names",)), "class-names", f"'coco80' has 80 classes, but num_classes is {nc}")
        )
    return out


def parse_card(text: str, *, file: str = "<card>", source: str = "file", path: Path | None = None) -> Card:
    """Parse and validate card text into a ``Card``; raises ``CardValidationError`` with all findings."""
    parsed = _parse(text, file)
    findings = _schema.validate(parsed.data, file=file, lines=parsed.lines, start_line=parsed.start_line)
    findings += _semantic_checks(parsed.data, parsed.lines, file) if not findings else []
    if findings:
        raise CardValidationError(findings)
    return _build(parsed, path=path, source=source)


def load_card(path: str | os.PathLike, *, source: str = "file") -> Card:
    """Read, parse and validate one card file."""
    path = Path(path)
    return parse_card(read_card_text(path), file=str(path), source=source, path=path)


def _strip_link(link: str) -> str:
    return link[1:-1] if link.startswith("<") and link.endswith(">") else link


# MindSpore Hub's free-text claim of a detector: "mAP46.6", "AP50: 61.2", "mAP 45.5%".
_CLAIM = re.compile(
    r"\s*m?(AP(?:50|75|[sml])?)\s*[:=]?\s*([0-9]{1,3}(?:\.[0-9]+)?)\s*%?\s*", re.IGNORECASE
)


def free_text_claim(text: object) -> tuple[str, float] | None:
    """(metric, value) claimed by a free-text ``evaluation:``, else None.

    One detection metric is named as the schema names it (``mAP46.6`` claims AP 46.6); any other
    text claims its first named metric under that name (``top1acc76.85 | top5acc93.24`` claims
    top1acc 76.85, not the 1 of "top1").
    """
    if not isinstance(text, str):
        return None
    m = _CLAIM.fullmatch(text)
    if m is not None and float(m.group(2)) <= 100:
        return "AP" + m.group(1)[2:].lower(), float(m.group(2))  # APs/APm/APl as in the schema
    return next(iter(parse_evaluation(text).items()), None)


def _build(parsed: _Parsed, *, path: Path | None, source: str) -> Card:
    d = parsed.data
    version = str(d.get("model-version", "1"))
    free = free_text_claim(d.get("evaluation"))
    assets = []
    versions = asset_versions(d)
    for i, a in enumerate(d.get("asset", [])):  # MindSpore Hub cards may list no asset
        claimed = a.get("claimed")
        metric = None
        if claimed is None and i == 0 and free is not None:
            metric, claimed = free
        assets.append(
            Asset(
                file_format=a["file-format"],
                links=tuple(_strip_link(x) for x in [a["asset-link"], *a.get("mirrors", [])]),
                sha256=a["asset-sha256"].lower(),
                size=a.get("size"),
                version=versions[i],
                claimed=float(claimed) if claimed is not None else None,
                hardware=a.get("hardware"),
                metric=metric,
                input_shape=tuple(a["input-shape"]) if a.get("input-shape") else None,
            )
        )
    arch = None
    if "architecture" in d:
        a = d["architecture"]
        arch = Architecture(
            name=a["name"],
            args=dict(a.get("args", {})),
            head_params=tuple(a.get("head-params", ())),
            param_count=a.get("param-count"),
        )
    proto = None
    if "eval-protocol" in d:
        p = d["eval-protocol"]
        proto = EvalProtocol(**{k.replace("-", "_"): v for k, v in p.items()})
        proto = replace(proto, dataset=proto.dataset.lower())
    names = d.get("class-names")
    class_names = COCO80_NAMES if names == "coco80" else (tuple(names) if names else None)
    dataset = d.get("train-dataset")
    return Card(
        name=d["model-name"],
        version=version,
        path=path,
        source=source,
        assets=tuple(assets),
        architecture=arch,
        eval_protocol=proto,
        recipe=d.get("recipe"),
        class_names=class_names,
        dataset=dataset.lower() if dataset else None,
        front_matter=d,
        body=parsed.body,
        title=parsed.title,
    )


# --- writing ----------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar(_STR_TAG, value, style=style)


_Dumper.add_representer(str, _str_presenter)


def render_card(front_matter: Mapping[str, Any], body: str = "", *, title: str = "") -> str:
    """Card text for a front-matter mapping and a markdown body (key order is kept)."""
    fm = yaml.dump(
        dict(front_matter), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100
    )
    head = title if not title or title.endswith("\n") else title + "\n"
    return f"{head}---\n{fm}---\n{body}"


def update_card(path: str | os.PathLike, changes: Mapping[str, Any]) -> Card:
    """Set top-level front-matter fields of a card file, keeping its title and body verbatim.

    The result is validated before the file is replaced, so a bad change never reaches disk.
    """
    path = Path(path)
    text = read_card_text(path)
    parsed = _parse(text, str(path))
    data = dict(parsed.data)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    new_text = render_card(data, parsed.body, title=parsed.title)
    card = parse_card(new_text, file=str(path), path=path)
    write_atomic(path, new_text)
    return card
