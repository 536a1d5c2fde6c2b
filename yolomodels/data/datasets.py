"""Reading detection datasets (COCO JSON and MindYOLO's YOLO-txt layout) into one checked form.

Every image and box is checked once, before training: missing or unreadable images, empty boxes,
boxes outside the image and unknown classes are counted in a :class:`DatasetReport`, skipped and
announced with one :class:`DatasetWarning`, so nothing of that kind can fail halfway through an
epoch.  Files that cannot be parsed at all (the annotation JSON, the list file) raise
:class:`~yolomodels.errors.DatasetError`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from yolomodels.errors import DatasetError, ImageReadError
from yolomodels.images import open_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# A box may overshoot the image border by this many pixels (rounding in annotation tools).
_BORDER_TOLERANCE_PX = 1.0


class DatasetWarning(UserWarning):
    """Some images or boxes of a dataset were skipped; the message says how many and why."""


@dataclass(frozen=True)
class Record:
    """One usable image: where it is, its size and its boxes."""

    path: Path
    width: int
    height: int
    labels: np.ndarray  # (n, 5) float32 [class, cx, cy, w, h], normalised to the image
    image_id: int


@dataclass
class DatasetReport:
    """What the checks found; ``skipped`` images and boxes never reach the loader."""

    layout: str
    source: str
    images_listed: int = 0
    images_used: int = 0
    boxes_used: int = 0
    missing_images: list[str] = field(default_factory=list)
    corrupt_images: list[str] = field(default_factory=list)
    empty_boxes: int = 0
    out_of_range_boxes: int = 0
    unknown_class_boxes: int = 0
    malformed_lines: int = 0
    crowd_boxes: int = 0

    @property
    def problems(self) -> int:
        """Number of skipped images plus skipped boxes (crowd boxes are not problems)."""
        return (
            len(self.missing_images)
            + len(self.corrupt_images)
            + self.empty_boxes
            + self.out_of_range_boxes
            + self.unknown_class_boxes
            + self.malformed_lines
        )

    def summary(self) -> str:
        """One paragraph for logs and warnings."""
        parts = [
            f"{self.images_used}/{self.images_listed} images and {self.boxes_used} boxes usable "
            f"in {self.source} ({self.layout} layout)"
        ]

        def some(items: list[str]) -> str:
            head = ", ".join(items[:3])
            return head + (f", ... ({len(items) - 3} more)" if len(items) > 3 else "")

        if self.missing_images:
            parts.append(f"{len(self.missing_images)} missing image(s): {some(self.missing_images)}")
        if self.corrupt_images:
            parts.append(
                f"{len(self.corrupt_images)} unreadable image(s): {some(self.corrupt_images)}"
            )
        for count, what in (
            (self.empty_boxes, "empty box(es) (width or height <= 0)"),
            (self.out_of_range_boxes, "box(es) outside the image"),
            (self.unknown_class_boxes, "box(es) with an unknown class"),
            (self.malformed_lines, "label line(s) that do not parse"),
        ):
            if count:
                parts.append(f"{count} {what}")
        return "; ".join(parts)


@dataclass(frozen=True)
class DetectionDataset:
    """A checked dataset: usable records, class names and (for COCO) the category ids."""

    root: Path
    layout: str  # "coco" or "yolo"
    split: str
    records: tuple[Record, ...]
    class_names: tuple[str, ...]
    category_ids: tuple[int, ...]  # class index -> dataset category id
    report: DatasetReport

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.records)


def load_dataset(
    root: str | Path,
    *,
    split: str = "train",
    layout: str = "auto",
    check_images: bool = True,
    class_names: Sequence[str] | None = None,
) -> DetectionDataset:
    """Read and check the ``split`` of the dataset at ``root`` (a directory, or a YOLO list file).

    ``split`` is matched as a prefix: ``"train"`` finds ``instances_train2017.json`` or
    ``train2017.txt``.  ``layout`` forces ``"coco"`` or ``"yolo"``; ``"auto"`` prefers COCO JSON.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(
            f"dataset {root} does not exist; expected a directory with annotations/instances_"
            f"{split}*.json (COCO layout) or {split}*.txt list files (YOLO layout)"
        )
    if layout not in ("auto", "coco", "yolo"):
        raise DatasetError(f"dataset layout {layout!r} is unknown; expected auto, coco or yolo")
    if root.is_file():
        if root.suffix == ".json":
            ds = _load_coco(root, root.parent.parent, check_images)
        else:
            ds = _load_yolo(root, root.parent, check_images, class_names)
    else:
        ann = _find_one(root / "annotations", f"instances_{split}", ".json")
        lst = _find_one(root, split, ".txt")
        if layout in ("auto", "coco") and ann is not None:
            ds = _load_coco(ann, root, check_images)
        elif layout in ("auto", "yolo") and lst is not None:
            ds = _load_yolo(lst, root, check_images, class_names)
        else:
            raise DatasetError(
                f"no {split!r} split found in {root}: expected annotations/instances_{split}*.json "
                f"(COCO layout) or {split}*.txt (YOLO layout); found "
                f"{sorted(p.name for p in root.iterdir())[:10]}"
            )
    if class_names is not None and ds.layout == "coco" and len(class_names) != ds.num_classes:
        raise DatasetError(
            f"{len(class_names)} class names were given but the dataset has {ds.num_classes} "
            "categories; pass matching names or none"
        )
    if not ds.records:
        raise DatasetError(
            f"no usable image in {ds.report.source}: {ds.report.summary()}; fix the paths or the files"
        )
    if ds.report.problems:
        warnings.warn(f"skipped some data: {ds.report.summary()}", DatasetWarning, stacklevel=2)
    return ds


def _find_one(directory: Path, prefix: str, suffix: str) -> Path | None:
    exact = directory / f"{prefix}{suffix}"
    if exact.is_file():
        return exact
    if not directory.is_dir():
        return None
    found = sorted(p for p in directory.glob(f"{prefix}*{suffix}") if p.is_file())
    return found[0] if found else None


def _image_size(path: Path, report: DatasetReport, check: bool) -> tuple[int, int] | None:
    """(width, height) of a readable image, else record why it is unusable and return None."""
    if not path.is_file():
        report.missing_images.append(str(path))
        return None
    try:
        with open_image(path) as im:  # refuses oversized images from the header
            size = im.size
            if check:
                im.verify()
        if check:
            # verify() does not decode pixels; a truncated JPEG only fails on load.
            with open_image(path) as im:
                im.load()
    except ImageReadError:  # unreadable, corrupt or over the pixel limit
        report.corrupt_images.append(str(path))
        return None
    return size


def _load_coco(ann_path: Path, root: Path, check: bool) -> DetectionDataset:
    try:
        data = json.loads(ann_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(
            f"annotations {ann_path} do not parse as JSON ({exc}); expected a COCO instances file"
        ) from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise DatasetError(
            f"annotations {ann_path} are not a COCO instances file: expected a JSON object with "
            "lists 'images', 'annotations' and 'categories'"
        )
    split = ann_path.stem[len("instances_") :] if ann_path.stem.startswith("instances_") else ""
    candidates = [root / "images" / split, root / split] if split else []
    candidates += [root / "images", root]
    image_dir = next((d for d in candidates if d.is_dir()), root)
    try:
        cats = sorted(data["categories"], key=lambda c: int(c["id"]))
        category_ids = tuple(int(c["id"]) for c in cats)
        names = tuple(str(c.get("name", c["id"])) for c in cats)
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"categories in {ann_path} lack an integer 'id' ({exc!r})") from None
    cat_index = {cid: i for i, cid in enumerate(category_ids)}
    report = DatasetReport(layout="coco", source=str(ann_path))
    by_image: dict[int, list[dict]] = {}
    for a in data["annotations"]:
        if isinstance(a, dict) and "image_id" in a:
            by_image.setdefault(a["image_id"], []).append(a)
        else:
            report.malformed_lines += 1
    records = []
    for im in data["images"]:
        report.images_listed += 1
        try:
            image_id, file_name = int(im["id"]), str(im["file_name"])
        except (KeyError, TypeError, ValueError):
            report.malformed_lines += 1
            continue
        path = image_dir / file_name
        if Path(file_name).is_absolute() or ".." in Path(file_name).parts:
            report.malformed_lines += 1  # never read files outside the dataset
            continue
        size = _image_size(path, report, check)
        if size is None:
            continue
        w, h = size
        rows = []
        for a in by_image.get(image_id, []):
            if a.get("iscrowd", 0):
                report.crowd_boxes += 1
                continue
            try:
                x, y, bw, bh = (float(v) for v in a["bbox"])
                cls = cat_index.get(int(a["category_id"]))
            except (KeyError, TypeError, ValueError):
                report.malformed_lines += 1
                continue
            if not all(np.isfinite((x, y, bw, bh))):
                report.malformed_lines += 1
                continue
            if cls is None:
                report.unknown_class_boxes += 1
            elif not (bw > 0 and bh > 0):
                report.empty_boxes += 1
            elif (
                x < -_BORDER_TOLERANCE_PX
                or y < -_BORDER_TOLERANCE_PX
                or x + bw > w + _BORDER_TOLERANCE_PX
                or y + bh > h + _BORDER_TOLERANCE_PX
            ):
                report.out_of_range_boxes += 1
            else:
                x1, y1 = max(x, 0.0), max(y, 0.0)
                x2, y2 = min(x + bw, w), min(y + bh, h)
                rows.append([cls, (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h])
        records.append(_record(path, w, h, rows, image_id))
        report.boxes_used += len(rows)
    report.images_used = len(records)
    return DetectionDataset(
        root=root,
        layout="coco",
        split=split,
        records=tuple(records),
        class_names=names,
        category_ids=category_ids,
        report=report,
    )


def _record(path: Path, w: int, h: int, rows: list, image_id: int) -> Record:
    labels = np.asarray(rows, np.float32).reshape(-1, 5)
    return Record(path=path, width=int(w), height=int(h), labels=labels, image_id=image_id)


def _names_from_yaml(directory: Path) -> list[str] | None:
    for candidate in (directory / "dataset.yaml", directory / "data.yaml"):
        if candidate.is_file():
            try:
                meta = yaml.safe_load(candidate.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as exc:
                raise DatasetError(f"{candidate} does not parse as YAML ({exc})") from None
            names = meta.get("names") if isinstance(meta, dict) else None
            if isinstance(names, dict):
                names = [names[k] for k in sorted(names)]
            if isinstance(names, list) and names:
                return [str(n) for n in names]
    return None


def label_path_for(image_path: Path) -> Path:
    """MindYOLO's rule: the last ``/images/`` becomes ``/labels/`` and the suffix ``.txt``."""
    parts = list(image_path.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _load_yolo(
    list_path: Path, root: Path, check: bool, class_names: Sequence[str] | None
) -> DetectionDataset:
    try:
        lines = list_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"list file {list_path} cannot be read ({exc})") from None
    names = list(class_names) if class_names is not None else _names_from_yaml(list_path.parent)
    report = DatasetReport(layout="yolo", source=str(list_path))
    parsed: list[tuple[Path, int, int, list]] = []
    max_cls = -1
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        report.images_listed += 1
        p = Path(line)
        path = p if p.is_absolute() else list_path.parent / p
        size = _image_size(path, report, check)
        if size is None:
            continue
        rows = _read_label_file(label_path_for(path), report, len(names) if names else None)
        for r in rows:
            max_cls = max(max_cls, int(r[0]))
        parsed.append((path, size[0], size[1], rows))
    if names is None:
        names = [f"class{i}" for i in range(max_cls + 1)]
    records = []
    for n, (path, w, h, rows) in enumerate(parsed):
        stem = path.stem
        image_id = int(stem) if stem.isdigit() else n
        records.append(_record(path, w, h, rows, image_id))
        report.boxes_used += len(rows)
    report.images_used = len(records)
    return DetectionDataset(
        root=root,
        layout="yolo",
        split=list_path.stem,
        records=tuple(records),
        class_names=tuple(names),
        category_ids=tuple(range(len(names))),
        report=report,
    )


def _read_label_file(path: Path, report: DatasetReport, nc: int | None) -> list[list[float]]:
    """Rows [cls, cx, cy, w, h] of one label file; polygons become their bounding boxes."""
    if not path.is_file():
        return []  # a missing label file means an image without objects
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        report.malformed_lines += 1
        return []
    values = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            values.append([float(v) for v in line.split()])
        except ValueError:
            report.malformed_lines += 1
    polygon = any(len(v) > 6 for v in values)
    rows, seen = [], set()
    for v in values:
        if polygon and len(v) >= 7 and len(v) % 2 == 1:
            xs, ys = np.asarray(v[1::2]), np.asarray(v[2::2])
            x1, x2, y1, y2 = xs.min(), xs.max(), ys.min(), ys.max()
            cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
            coords = list(xs) + list(ys)
        elif not polygon and len(v) == 5:
            cx, cy, w, h = v[1:]
            coords = [cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2]
        else:
            report.malformed_lines += 1
            continue
        cls = v[0]
        if cls != int(cls) or cls < 0 or (nc is not None and cls >= nc):
            report.unknown_class_boxes += 1
        elif not (w > 0 and h > 0):
            report.empty_boxes += 1
        elif min(coords) < -1e-6 or max(coords) > 1 + 1e-6:
            report.out_of_range_boxes += 1
        else:
            key = (int(cls), round(cx, 6), round(cy, 6), round(w, 6), round(h, 6))
            if key not in seen:
                seen.add(key)
                rows.append([int(cls), cx, cy, w, h])
    return rows
