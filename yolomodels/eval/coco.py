"""COCO bbox evaluation with pycocotools, as MindYOLO's ``test.py`` runs it (fact sheet §5.3-5.4).

pycocotools prints progress and the summary table to stdout; every call here captures it so that
machine-readable output of the caller stays clean (the summary text is kept on the result).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from yolomodels.data.coco import COCO80_TO_91
from yolomodels.errors import DatasetError
from yolomodels.eval.checks import annotation_problems, image_problems, refuse

COCO80_TO_COCO91 = COCO80_TO_91  # class index of an 80-class network -> COCO category id


@dataclass(frozen=True)
class CocoMetrics:
    """``COCOeval.stats`` by name, as fractions in [0, 1]; -1 where the split has no such boxes."""

    AP: float
    AP50: float
    AP75: float
    APs: float
    APm: float
    APl: float
    AR1: float
    AR10: float
    AR100: float
    ARs: float
    ARm: float
    ARl: float

    @classmethod
    def from_stats(cls, stats: Sequence[float]) -> CocoMetrics:
        return cls(*(float(s) for s in stats))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def percent(self, name: str) -> float | None:
        """One metric in percent (the unit cards claim in), ``None`` when COCOeval gave -1."""
        if name not in self.names():
            raise KeyError(f"unknown metric {name!r}; expected one of {', '.join(self.names())}")
        value = getattr(self, name)
        return None if value < 0 else 100.0 * value

    def as_percent(self) -> dict[str, float | None]:
        return {n: self.percent(n) for n in self.names()}


@dataclass(frozen=True, eq=False)
class CocoEvalResult:
    """Metrics plus the arrays a precision-recall plot and per-class numbers need."""

    metrics: CocoMetrics
    precision: np.ndarray  # (T iou thresholds, R recall points, K classes, A areas, M maxDets)
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray
    category_ids: tuple[int, ...]
    category_names: tuple[str, ...]
    num_images: int
    num_detections: int
    summary: str  # COCOeval.summarize() text

    def per_class_ap(self) -> list[tuple[int, str, float | None, float | None]]:
        """``(category id, name, AP, AP50)`` in percent for each category (area all, 100 dets)."""
        rows = []
        for k, (cid, name) in enumerate(zip(self.category_ids, self.category_names)):
            p = self.precision[:, :, k, 0, -1]
            ap = float(p[p > -1].mean()) * 100 if (p > -1).any() else None
            p50 = self.precision[0, :, k, 0, -1]
            ap50 = float(p50[p50 > -1].mean()) * 100 if (p50 > -1).any() else None
            rows.append((cid, name, ap, ap50))
        return rows


@dataclass(frozen=True)
class CocoSplit:
    """One split of a COCO-format dataset: its ground truth and where its images are."""

    annotations: Path
    image_dir: Path
    gt: COCO
    image_ids: tuple[int, ...]  # every image of the split (COCOeval's params.imgIds)

    def image_path(self, image_id: int) -> Path:
        return self.image_dir / self.gt.imgs[image_id]["file_name"]

    @property
    def category_ids(self) -> tuple[int, ...]:
        return tuple(sorted(self.gt.getCatIds()))

    @property
    def category_names(self) -> tuple[str, ...]:
        return tuple(self.gt.cats[c]["name"] for c in self.category_ids)


def load_ground_truth(annotations: str | os.PathLike) -> COCO:
    """Read a COCO annotation file quietly; a clear DatasetError if it cannot be used."""
    path = Path(annotations)
    if not path.is_file():
        raise DatasetError(f"annotation file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"annotation file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise DatasetError(
            f"annotation file {path} is not COCO json: expected an object with lists "
            "'images', 'annotations' and 'categories'"
        )
    problems = annotation_problems(data)  # every entry, before pycocotools sees any
    if problems:
        raise refuse(path, problems, "the annotations")
    for a in data["annotations"]:
        # COCOeval reads both; many hand-made datasets leave them out
        a.setdefault("area", float(a["bbox"][2]) * float(a["bbox"][3]))
        a.setdefault("iscrowd", 0)
    gt = COCO()
    gt.dataset = data
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
    except (KeyError, TypeError) as exc:
        raise DatasetError(f"annotation file {path} has a malformed entry: missing {exc}") from None
    return gt


def open_split(data_dir: str | os.PathLike, split: str, *, check_images: bool = True) -> CocoSplit:
    """Find ``split`` of a dataset directory in MindYOLO's or COCO's layout.

    Annotations: ``annotations/instances_<split>.json`` (``val`` also finds ``val2017``).
    Images: ``images/<split>/`` (MindYOLO) or ``<split>/`` (COCO).  Every annotation entry is
    checked, and with ``check_images`` every image file too (present, inside the image
    directory, a readable header within the pixel limit), before anything runs on them.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DatasetError(f"dataset directory {root} does not exist")
    names = [split] + ([f"{split}2017"] if split in ("train", "val", "test") else [])
    for name in names:
        ann = root / "annotations" / f"instances_{name}.json"
        if ann.is_file():
            break
    else:
        found = sorted(p.name for p in (root / "annotations").glob("instances_*.json"))
        raise DatasetError(
            f"no annotations for split {split!r} in {root}: expected "
            f"annotations/instances_{names[-1]}.json; found {found or 'none'}. "
            "Pass the split the dataset has (or write one with `yolohub make-dataset`)."
        )
    for image_dir in (root / "images" / name, root / name, root / "images"):
        if image_dir.is_dir():
            break
    else:
        raise DatasetError(
            f"no image directory for split {name!r} in {root}: expected images/{name}/ or {name}/"
        )
    gt = load_ground_truth(ann)
    image_ids = tuple(sorted(gt.getImgIds()))
    if not image_ids:
        raise DatasetError(f"{ann} lists no images")
    problems = image_problems(gt.dataset["images"], image_dir) if check_images else []
    if problems:
        raise refuse(ann, problems, f"the images it lists (in {image_dir})")
    return CocoSplit(annotations=ann, image_dir=image_dir, gt=gt, image_ids=image_ids)


def category_mapping(gt: COCO, num_classes: int) -> tuple[int, ...]:
    """Category id for each class index of a network with ``num_classes`` outputs.

    A dataset with exactly ``num_classes`` categories maps index i to its i-th smallest id (for
    COCO's 80 categories that is the 80->91 table; for ids 0..K-1 it is the identity).  An
    80-class network on a COCO subset uses the 80->91 table.  Anything else cannot be scored.
    """
    ids = tuple(sorted(gt.getCatIds()))
    if len(ids) == num_classes:
        return ids
    if num_classes == 80 and set(ids) <= set(COCO80_TO_COCO91):
        return COCO80_TO_COCO91
    raise DatasetError(
        f"the network predicts {num_classes} classes but the dataset has {len(ids)} categories "
        f"(ids {list(ids)[:10]}{'...' if len(ids) > 10 else ''}); evaluate on a dataset with the "
        "network's classes"
    )


def class_name_mismatches(
    gt: COCO, category_ids: Sequence[int], class_names: Sequence[str]
) -> list[tuple[int, str, str]]:
    """``(class index, network's name, dataset's name)`` where the two disagree.

    Only categories present in ``gt`` are compared (a COCO subset is fine).  Names are compared
    case-insensitively, ignoring spaces, ``-`` and ``_``.
    """

    def norm(name: str) -> str:
        return "".join(ch for ch in str(name).lower() if ch not in " -_")

    out = []
    for k, (cid, name) in enumerate(zip(category_ids, class_names)):
        if cid in gt.cats and norm(gt.cats[cid]["name"]) != norm(name):
            out.append((k, str(name), str(gt.cats[cid]["name"])))
    return out


def to_coco_results(
    detections: Mapping[int, np.ndarray], category_ids: Sequence[int]
) -> list[dict]:
    """COCO result records from per-image ``(K, 6)`` arrays ``[x1, y1, x2, y2, score, cls]``.

    As MindYOLO writes them: the box goes to ``[x, y, w, h]`` in float32 by way of its centre,
    then every value is rounded to 3 decimals, the float32 score to 5.
    """
    from yolomodels.postprocess import xyxy_to_coco

    records = []
    for image_id in sorted(detections):
        det = np.asarray(detections[image_id], dtype=np.float32).reshape(-1, 6)
        boxes = xyxy_to_coco(det[:, :4]).tolist()
        for box, score, cls in zip(boxes, det[:, 4].tolist(), det[:, 5].tolist()):
            records.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(category_ids[int(cls)]),
                    "bbox": [round(v, 3) for v in box],
                    "score": round(score, 5),
                }
            )
    return records


def save_results(records: list[dict], path: str | os.PathLike) -> Path:
    """Write result records as the JSON file ``COCO.loadRes`` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, separators=(",", ":")) + "\n")
    return path


def load_results(path: str | os.PathLike) -> list[dict]:
    """Read a detections JSON written by ``save_results`` (or any COCO results file)."""
    path = Path(path)
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read detections file {path}: {exc}") from None
    if not isinstance(records, list):
        raise DatasetError(f"detections file {path} must hold a JSON list of result records")
    return records


def evaluate_results(
    gt: COCO, records: Iterable[Mapping], *, image_ids: Sequence[int] | None = None
) -> CocoEvalResult:
    """Run COCOeval (bbox) over ``records`` against ``gt``; ``image_ids`` defaults to all images.

    An empty result list is valid and scores zero (an untrained network often finds nothing).
    """
    records = [dict(r) for r in records]
    image_ids = list(image_ids) if image_ids is not None else sorted(gt.getImgIds())
    known_imgs, known_cats = set(gt.getImgIds()), set(gt.getCatIds())
    for r in records:
        missing = {"image_id", "category_id", "bbox", "score"} - set(r)
        if missing:
            raise DatasetError(f"detection record {r} lacks {sorted(missing)}")
        if r["image_id"] not in known_imgs:
            raise DatasetError(f"detection for image_id {r['image_id']} not in the ground truth")
        if r["category_id"] not in known_cats:
            raise DatasetError(
                f"detection with category_id {r['category_id']} not in the ground truth "
                f"categories {sorted(known_cats)}"
            )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        dt = gt.loadRes(records) if records else _empty_results(gt)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.imgIds = image_ids
        ev.evaluate()
        ev.accumulate()
        summary = io.StringIO()
        with contextlib.redirect_stdout(summary):
            ev.summarize()
    cat_ids = tuple(ev.params.catIds)
    return CocoEvalResult(
        metrics=CocoMetrics.from_stats(ev.stats),
        precision=np.array(ev.eval["precision"]),
        iou_thresholds=np.array(ev.params.iouThrs),
        recall_thresholds=np.array(ev.params.recThrs),
        category_ids=cat_ids,
        category_names=tuple(gt.cats[c]["name"] for c in cat_ids),
        num_images=len(image_ids),
        num_detections=len(records),
        summary=summary.getvalue(),
    )


def evaluate_file(annotations: str | os.PathLike, detections: str | os.PathLike) -> CocoEvalResult:
    """Re-run COCOeval from saved files, without inference."""
    gt = load_ground_truth(annotations)
    return evaluate_results(gt, load_results(detections))


def _empty_results(gt: COCO) -> COCO:
    dt = COCO()
    dt.dataset = {
        "images": list(gt.dataset["images"]),
        "categories": list(gt.dataset["categories"]),
        "annotations": [],
    }
    dt.createIndex()
    return dt
