"""An up-front check of a COCO annotation file and its images, before any inference runs.

pycocotools trusts its input: a ``"bbox": "x"`` or an image entry without ``file_name`` fails
deep inside ``COCOeval`` after minutes of inference, with a ``TypeError`` traceback.  These
checks read every entry once and name each bad one (``annotations[3] (id 17): bbox: expected
[x, y, w, h] with 4 finite numbers, found 'x'``), so a dataset is either usable or refused in
one :class:`~yolomodels.errors.DatasetError` that lists what to fix.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from yolomodels.errors import DatasetError, ImageReadError

SHOWN = 5  # problems listed in the message; the rest are counted


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _brief(v) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _where(kind: str, i: int, entry) -> str:
    ident = entry.get("id") if isinstance(entry, dict) else None
    return f"{kind}[{i}]" + (f" (id {_brief(ident)})" if ident is not None else "")


def _unique_id(entry: dict, where: str, seen: set, problems: list[str]) -> None:
    """Check ``entry["id"]`` is an integer not used before in its list; remember it."""
    if not _int(entry.get("id")):
        problems.append(f"{where}: id: expected an integer, found {_brief(entry.get('id'))}")
    elif entry["id"] in seen:
        problems.append(f"{where}: id {entry['id']} appears twice")
    else:
        seen.add(entry["id"])


def annotation_problems(data: dict) -> list[str]:
    """Every problem of a parsed COCO instances file (empty when pycocotools can use it)."""
    problems: list[str] = []
    cat_ids: set = set()
    for i, c in enumerate(data["categories"]):
        where = _where("categories", i, c)
        if not isinstance(c, dict):
            problems.append(f"{where}: expected an object, found {_brief(c)}")
            continue
        _unique_id(c, where, cat_ids, problems)
        if not isinstance(c.get("name"), str) or not c["name"].strip():
            problems.append(f"{where}: name: expected a string, found {_brief(c.get('name'))}")
    image_ids: set = set()
    for i, im in enumerate(data["images"]):
        where = _where("images", i, im)
        if not isinstance(im, dict):
            problems.append(f"{where}: expected an object, found {_brief(im)}")
            continue
        _unique_id(im, where, image_ids, problems)
        name = im.get("file_name")
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{where}: file_name: expected a file name, found {_brief(name)}")
        elif "\x00" in name or os.path.isabs(name) or ".." in Path(name).parts:
            problems.append(
                f"{where}: file_name {_brief(name)} points outside the image directory; expected "
                "a path relative to it"
            )
        for key in ("width", "height"):
            if key in im and not (_int(im[key]) and im[key] > 0):
                problems.append(f"{where}: {key}: expected a positive integer, found "
                                f"{_brief(im[key])}")  # fmt: skip
    ann_ids: set = set()
    for i, a in enumerate(data["annotations"]):
        where = _where("annotations", i, a)
        if not isinstance(a, dict):
            problems.append(f"{where}: expected an object, found {_brief(a)}")
            continue
        if not _int(a.get("id")):
            problems.append(f"{where}: id: expected an integer, found {_brief(a.get('id'))}")
        elif a["id"] in ann_ids:
            problems.append(f"{where}: id {a['id']} appears twice")
        else:
            ann_ids.add(a["id"])
        if a.get("image_id") not in image_ids or not _int(a.get("image_id")):
            problems.append(f"{where}: image_id {_brief(a.get('image_id'))} is not the id of an "
                            "entry in images")  # fmt: skip
        if a.get("category_id") not in cat_ids or not _int(a.get("category_id")):
            problems.append(
                f"{where}: category_id {_brief(a.get('category_id'))} is not one of the "
                f"categories {sorted(cat_ids)[:10]}"
            )
        box = a.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and all(_number(v) for v in box)):
            problems.append(f"{where}: bbox: expected [x, y, w, h] with 4 finite numbers, found "
                            f"{_brief(box)}")  # fmt: skip
        elif not (box[2] > 0 and box[3] > 0):
            problems.append(f"{where}: bbox {box}: width and height must be positive")
        if "area" in a and not (_number(a["area"]) and a["area"] >= 0):
            problems.append(f"{where}: area: expected a number >= 0, found {_brief(a['area'])}")
        if "iscrowd" in a and a["iscrowd"] not in (0, 1):
            problems.append(f"{where}: iscrowd: expected 0 or 1, found {_brief(a['iscrowd'])}")
    return problems


def image_problems(images: list[dict], image_dir: Path) -> list[str]:
    """Image entries whose file is missing, outside ``image_dir``, unreadable or oversized.

    Reads headers only (no pixel decoding), so it costs milliseconds per thousand images.
    """
    from yolomodels.images import image_size

    problems = []
    root = os.path.realpath(image_dir)
    for i, im in enumerate(images):
        path = image_dir / im["file_name"]
        where = _where("images", i, im)
        if os.path.commonpath([root, os.path.realpath(path)]) != root:
            problems.append(f"{where}: {im['file_name']!r} resolves outside {image_dir}")
            continue
        if not path.is_file():
            problems.append(f"{where}: {path} does not exist")
            continue
        try:
            image_size(path)
        except ImageReadError as exc:
            problems.append(f"{where}: {exc}")
    return problems


def refuse(path: Path, problems: list[str], what: str) -> DatasetError:
    """One error (one line) naming the first :data:`SHOWN` problems and counting the rest."""
    more = len(problems) - SHOWN
    listed = "; ".join(problems[:SHOWN]) + (f"; ... and {more} more" if more > 0 else "")
    return DatasetError(
        f"{path}: {len(problems)} problem(s) in {what}, so nothing was evaluated: {listed}. "
        "Fix or remove these entries"
    )
