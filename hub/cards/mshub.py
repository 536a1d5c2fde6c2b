"""MindSpore Hub compatibility: its free-text evaluations and its ``publisher/version/name`` uids.

MindSpore Hub cards state results as free text (``evaluation: top1acc76.85 | top5acc93.24``,
``mAP46.6``, ``acc31.3``).  :func:`parse_evaluation` turns that into named metrics instead of
taking the first digit it meets (``top1`` is not a score of 1).  MindSpore Hub loads cards by a uid
``<publisher>/<mindspore-version>/<card file name>`` (``mindspore/2.5/yolov3_darknet53_coco2017``);
:func:`uid_parts` recognises that form so the registry can resolve it.
"""

from __future__ import annotations

import re

_PIECE_SPLIT = re.compile(r"\s*[|,;]\s*")
_PIECE = re.compile(
    r"^(?P<name>[A-Za-z][A-Za-z0-9@_.\-]*?(?:\s+[A-Za-z][A-Za-z0-9@_.\-]*?)*?)\s*[:=]?\s*"
    r"(?P<value>[0-9]+(?:\.[0-9]+)?)\s*%?$"
)


def parse_evaluation(text: object) -> dict[str, float]:
    """Named metrics in a free-text evaluation, in the order written; {} when there are none.

    >>> parse_evaluation("top1acc76.85 | top5acc93.24")
    {'top1acc': 76.85, 'top5acc': 93.24}
    >>> parse_evaluation("mAP46.6")
    {'mAP': 46.6}
    """
    if not isinstance(text, str):
        return {}
    out: dict[str, float] = {}
    for piece in _PIECE_SPLIT.split(text.strip()):
        m = _PIECE.match(piece)
        if m:
            out.setdefault(m.group("name"), float(m.group("value")))
    return out


_UID = re.compile(r"^([A-Za-z0-9_.\-]+)/(?:([A-Za-z]+)/)?([0-9][A-Za-z0-9_.+\-]*)/([A-Za-z0-9][A-Za-z0-9_.\-]*)$")


def uid_parts(spec: str) -> tuple[str, str, str] | None:
    """(publisher, mindspore-version, name) of a MindSpore Hub uid, else None.

    Both ``mindspore/1.9/resnet50_imagenet2012`` and the older ``mindspore/ascend/0.2/name``
    (with a device segment, which is ignored) are recognised.
    """
    m = _UID.match(spec.strip())
    if not m:
        return None
    return m.group(1), m.group(3), m.group(4)
