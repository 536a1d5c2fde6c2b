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
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from hub import schema as _schema
from hub.errors import CardValidationError, Finding
from hub.integrity import write_atomic  # noqa: F401 (re-exported: hub.card.write_atomic)

MAX_CARD_BYTES = 1 << 20
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


def _to_python(node: yaml.Node, path: tuple, ctx: _Ctx, key: str | None = None) -> Any:
    """Convert a composed YAML node, recording the (absolute) line of every path."""
    ctx.lines[path] = node.start_mark.line + ctx.offset
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
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(n, path + (i,), ctx, key=key) for i, n in enumerate(node.value)]
    # Scalars: keep the written text where the schema wants a string.
    if node.tag == _STR_TAG or (key in _schema.string_keys() and node.tag != _NULL_TAG):
        return node.value
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


@dataclass
class _Ctx:
    file: str
    offset: int
    lines: dict[tuple, int]
    findings: list[Finding]


def _fmt(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def _parse(text: str, file: str) -> _Parsed:
    title, fm_text, start, body = _split(text, file)
    try:
        node = yaml.compose(fm_text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = start + mark.line if mark is not None else start
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CardValidationError(
            [Finding(file, line, "", f"invalid YAML in front-matter: {problem}; check indentation and quoting")]
        ) from None
    if node is None:
        raise CardValidationError(
            [Finding(file, start - 1, "", "expected front-matter fields, found an empty block")]
        )
    if not isinstance(node, yaml.MappingNode):
        raise CardValidationError(
            [Finding(file, start + node.start_mark.line, "", "expected front-matter of 'key: value' lines, found a "
                     + ("list" if isinstance(node, yaml.SequenceNode) else "single value"))]
        )
    ctx = _Ctx(file, start, {}, [])
    try:
        data = _to_python(node, (), ctx)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        raise CardValidationError([Finding(file, start, "", f"unreadable YAML value: {exc}")]) from None
    if ctx.findings:
        raise CardValidationError(ctx.findings)
    return _Parsed(title, data, ctx.lines, start, body)


def _semantic_checks(data: dict, lines: dict, file: str) -> list[Finding]:
    """Rules one JSON Schema cannot say: cross-field agreement."""
    out = []
    default_version = str(data.get("model-version", "1"))
    seen: dict[tuple[str, str], int] = {}
    for i, asset in enumerate(data.get("asset", [])):
        # one version may ship several formats (a checkpoint and its exported graphs)
        version = str(asset.get("version", default_version))
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


_CLAIM = re.compile(r"([0-9]+(?:\.[0-9]+)?)")


def _build(parsed: _Parsed, *, path: Path | None, source: str) -> Card:
    d = parsed.data
    version = str(d.get("model-version", "1"))
    free_claim = None
    if isinstance(d.get("evaluation"), str) and (m := _CLAIM.search(d["evaluation"])):
        free_claim = float(m.group(1))
    assets = []
    for i, a in enumerate(d["asset"]):
        claimed = a.get("claimed")
        if claimed is None and i == 0:
            claimed = free_claim
        assets.append(
            Asset(
                file_format=a["file-format"],
                links=tuple(_strip_link(x) for x in [a["asset-link"], *a.get("mirrors", [])]),
                sha256=a["asset-sha256"].lower(),
                size=a.get("size"),
                version=str(a.get("version", version)),
                claimed=float(claimed) if claimed is not None else None,
                hardware=a.get("hardware"),
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
