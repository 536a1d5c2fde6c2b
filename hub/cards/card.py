"""The card format: the typed card (Card, Asset, Architecture, EvalProtocol, Release) and parsing.

A card is markdown with YAML front-matter, as MindSpore Hub's public cards are.
:mod:`hub.cards.frontmatter` splits the text and reads the YAML under bounds, keeping line
numbers; :mod:`hub.cards.schema` checks the data against ``schema/model-card.schema.json``; this
module adds the checks one JSON Schema cannot say (fields that must agree) and builds the typed
card.  All problems of a card are reported at once, each as ``file:line: field: ...``.
:mod:`hub.cards.write` is the way back, from a card (or changes to one) to text.

Quirks of MindSpore Hub cards that parse here: a title line before the front-matter, links in
``<angle brackets>``, 8-hex sha256 prefixes (even all-digit ones YAML would read as integers),
versions and dates YAML would type as float and date (``2.5``, ``2025-03-10``), dataset ids in
any case (``COCO2017``), free-text results (``evaluation: mAP46.6``) and assets without versions.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hub.cards import schema as _schema
from hub.cards.frontmatter import (  # noqa: F401 (the bounds, load_yaml, read_card_text: re-exported)
    MAX_CARD_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    load_yaml,
    parse_front_matter,
    read_card_text,
    split_card,
)
from hub.cards.mshub import parse_evaluation
from hub.errors import CardValidationError, Finding

FORMAT = "yolohub/1"

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


def field_key(attribute: str) -> str:
    """The front-matter key of a dataclass attribute inside a section (``img_size``: ``img-size``)."""
    return attribute.replace("_", "-")


def attribute(key: str) -> str:
    """The dataclass attribute of a front-matter key inside a section (``img-size``: ``img_size``)."""
    return str(key).replace("-", "_")


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
    source_sha256: str | None = None
    """sha256 of the checkpoint an exported graph was made from."""

    @property
    def weak(self) -> bool:
        """True when the card only carries a prefix of the sha256 (legacy MindSpore Hub cards)."""
        return len(self.sha256) < 64


@dataclass(frozen=True)
class Architecture:
    """The network a card's weights load into: a registered architecture and its arguments."""

    name: str
    args: Mapping[str, Any]
    head_params: tuple[str, ...] = ()
    param_count: int | None = None


@dataclass(frozen=True)
class EvalProtocol:
    """How a card's claim is measured: dataset, split, metric and the inference settings."""

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
class EvalResult:
    """One measured result a card records (``eval-results``, added by ``eval --update-card``)."""

    metric: str
    value: float
    version: str | None = None
    dataset: str | None = None
    split: str | None = None
    date: str | None = None
    yolohub_version: str | None = None
    weights_sha256: str | None = None
    settings: Mapping[str, Any] | None = None  # data, img-size, thresholds, images, as written
    metrics: Mapping[str, float] | None = None


@dataclass(frozen=True)
class Card:
    """A parsed, validated card: its typed fields, and the front-matter and body as written.

    The typed fields are read from ``front_matter``; to change a card, change the typed fields
    and write it with :mod:`hub.cards.write`, which keeps every other field as it was.
    """

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
    eval_results: tuple[EvalResult, ...] = ()

    @property
    def is_yolohub(self) -> bool:
        return self.front_matter.get("format") == FORMAT

    @property
    def summary(self) -> str | None:
        return self.front_matter.get("summary")

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(str(t) for t in self.front_matter.get("tags") or ())

    @property
    def stated_metrics(self) -> dict[str, float]:
        """The named results of a MindSpore Hub card's free-text ``evaluation`` ({} if none)."""
        return parse_evaluation(self.front_matter.get("evaluation"))

    @property
    def metric(self) -> str | None:
        """The metric the card's claims are in: its eval-protocol's, else the first one its
        free-text ``evaluation`` names."""
        if self.eval_protocol is not None:
            return self.eval_protocol.metric
        return next(iter(self.stated_metrics), None)

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


# --- reading ---------------------------------------------------------------------------------


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
    parsed = parse_front_matter(text, file)
    findings = _schema.validate(parsed.data, file=file, lines=parsed.lines, start_line=parsed.start_line)
    findings += _semantic_checks(parsed.data, parsed.lines, file) if not findings else []
    if findings:
        raise CardValidationError(findings)
    return build_card(parsed.data, body=parsed.body, title=parsed.title, path=path, source=source)


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


def build_card(d: Mapping[str, Any], *, body: str = "", title: str = "", path: Path | None = None,
               source: str = "file") -> Card:
    """The typed card of schema-valid front-matter ``d`` (``parse_card`` checks it first)."""
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
                source_sha256=a.get("source-sha256"),
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
        proto = eval_protocol(d["eval-protocol"])
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
        body=body,
        title=title,
        eval_results=tuple(
            EvalResult(**{attribute(k): v for k, v in r.items()}) for r in d.get("eval-results") or ()
        ),
    )


def eval_protocol(fields: Mapping[str, Any]) -> EvalProtocol:
    """The EvalProtocol of an ``eval-protocol`` mapping (dataset ids compare in lower case)."""
    proto = EvalProtocol(**{attribute(k): v for k, v in fields.items()})
    return replace(proto, dataset=proto.dataset.lower())


def is_card_name(path: Path) -> bool:
    """Whether a ``.md`` file in a cards directory is a card: not a README, not the Chinese
    twin (``*_cn.md``) of a card that exists."""
    name = path.name
    if name.lower() == "readme.md":
        return False
    if name.endswith("_cn.md") and path.with_name(name[: -len("_cn.md")] + ".md").exists():
        return False
    return True
