"""Detect objects in image files with a hub model: letterbox, network, NMS, boxes back, drawing.

A network from :func:`hub.load` carries its card's protocol in its record (``net.hub``), so
predicting on it never looks the card up again.

The pipeline is the evaluation one (``yolomodels.postprocess``), so what ``predict`` shows is what
``evaluate`` scores; only the default confidence threshold differs (a picture with the 300
lowest-confidence boxes of an mAP run is useless, so predict keeps scores >= 0.25 unless told).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hub.cards.catalog import CardsArg
from hub.errors import InputDataError
from hub.tasks.drawing import draw_detections

__all__ = ["DEFAULT_CONF", "Detection", "ImageDetections", "expand_images", "predict"]

log = logging.getLogger(__name__)

DEFAULT_CONF = 0.25
DEFAULT_IOU = 0.65
DEFAULT_MAX_DET = 300
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")


@dataclass(frozen=True)
class Detection:
    """One box in original-image pixels."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    score: float
    class_id: int
    class_name: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": [round(v, 2) for v in self.box],
            "score": round(self.score, 5),
            "class_id": self.class_id,
            "class": self.class_name,
        }


@dataclass(frozen=True)
class ImageDetections:
    """Everything found in one image, and where its annotated copy was written."""

    image: Path | None
    width: int
    height: int
    detections: tuple[Detection, ...] = field(default_factory=tuple)
    annotated: Path | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    """Seconds spent per stage: read, preprocess, forward, postprocess (NMS, boxes), write."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": str(self.image) if self.image else None,
            "width": self.width,
            "height": self.height,
            "annotated": str(self.annotated) if self.annotated else None,
            "detections": [d.to_dict() for d in self.detections],
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
        }


# --- inputs ---------------------------------------------------------------------------------------


def expand_images(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Image files named by ``inputs``; a directory contributes its image files, sorted.

    Raises :class:`InputDataError` naming every input that does not exist or holds no image.
    """
    files: list[Path] = []
    problems: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(
                c for c in p.iterdir() if c.is_file() and c.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                problems.append(
                    f"{p} is a directory without image files ({', '.join(IMAGE_SUFFIXES)})"
                )
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            problems.append(f"{p} does not exist")
    if problems:
        raise InputDataError("cannot predict: " + "; ".join(problems))
    if not files:
        raise InputDataError("no images given; pass image files or directories of images")
    return files


def read_image(path: Path) -> np.ndarray:
    """An image file as an (H, W, 3) uint8 RGB array, read by :mod:`yolomodels.images` exactly
    as evaluation reads it; its errors become :class:`InputDataError`."""
    from yolomodels.errors import ImageReadError
    from yolomodels.images import read_image as decode_file

    try:
        return decode_file(path)
    except ImageReadError as exc:
        raise InputDataError(str(exc)) from None


def probe_image(path: Path) -> None:
    """Raise :class:`InputDataError` unless ``path``'s header is that of an image
    :mod:`yolomodels.images` will decode (format known, size under the pixel limit)."""
    from yolomodels.errors import ImageReadError
    from yolomodels.images import image_size

    try:
        image_size(path)
    except ImageReadError as exc:
        raise InputDataError(str(exc)) from None


def _check_size(size) -> int:
    """``size`` under yolomodels' input-size rule; its error becomes :class:`InputDataError`."""
    from yolomodels.errors import ImageSizeError
    from yolomodels.sizes import check_img_size

    try:
        return check_img_size(size)
    except ImageSizeError as exc:
        raise InputDataError(str(exc)) from None


def _out_path(out: Path, source: Path | None, index: int, used: set[Path]) -> Path:
    stem = source.stem if source else f"image-{index}"
    suffix = ".jpg" if source and source.suffix.lower() in (".jpg", ".jpeg") else ".png"
    path = out / f"{stem}{suffix}"
    n = 1
    while path in used:
        path = out / f"{stem}-{n}{suffix}"
        n += 1
    used.add(path)
    return path


# --- the pipeline -------------------------------------------------------------------------------


def predict(
    spec_or_net,
    images: Sequence[str | os.PathLike | np.ndarray] | str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    conf: float | None = None,
    iou: float | None = None,
    max_det: int | None = None,
    img_size: int | None = None,
    cards_dirs: CardsArg = (),
    weights: str | os.PathLike | None = None,
    mode: str = "graph",
    offline: bool | None = None,
    progress: bool | None = None,
    backend: str | None = None,
    onnx: str | os.PathLike | None = None,
) -> list[ImageDetections]:
    """Detections for each image (file, directory of files, or RGB uint8 array).

    ``spec_or_net`` is a card name (loaded with :func:`hub.load`, or with the local ``weights``)
    or a network from :func:`hub.load`.  With ``out``, an annotated copy of every image is
    written there (JPEG for JPEG inputs, PNG otherwise).  ``iou`` and ``max_det`` default to
    the card's evaluation protocol, ``conf`` to 0.25.  ``backend`` is ``mindspore`` or
    ``onnxruntime`` (the card's exported ONNX graph, or the file ``onnx``); without it ONNX
    Runtime runs when an ONNX file is at hand (see :mod:`hub.tasks.deploy`), else MindSpore.
    Under ``msrun`` each rank detects (and writes) its shard of the images and every rank
    returns all the results, in order.
    """
    from hub.settings import get_settings
    from yolomodels.eval.distributed import init_ranks
    from yolomodels.postprocess import nms, preprocess, scale_boxes_back

    # first: msrun's scheduler runs this command too, and stops here
    parallel = init_ranks(root=get_settings().home / "ranks")
    if isinstance(images, (str, os.PathLike, np.ndarray)):
        images = [images]
    arrays = [im for im in images if isinstance(im, np.ndarray)]
    named = [im for im in images if not isinstance(im, np.ndarray)]
    paths = expand_images(named) if named or not arrays else []
    for path in paths:  # fail on an unreadable file before spending time on the network
        probe_image(path)
    conf = DEFAULT_CONF if conf is None else float(conf)
    for name, v in (("conf", conf), ("iou", iou)):
        if v is not None and not 0 <= v <= 1:
            raise InputDataError(f"{name} must lie in [0, 1], got {v}")

    if img_size is not None:
        _check_size(img_size)
    if isinstance(spec_or_net, str):
        from hub.cards.catalog import resolve

        spec_or_net = resolve(spec_or_net, cards_dirs=cards_dirs)  # the one card lookup
    net, protocol = _network(spec_or_net, weights=weights, mode=mode,
                             offline=offline, progress=progress, backend=backend, onnx=onnx,
                             img_size=img_size)
    iou = float(iou if iou is not None else getattr(protocol, "iou_threshold", DEFAULT_IOU))
    max_det = int(max_det or getattr(protocol, "max_detections", DEFAULT_MAX_DET))
    size = _check_size(img_size or getattr(net, "img_size", 0) or getattr(protocol, "img_size", 640))
    names = getattr(net, "class_names", None)

    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    used: set[Path] = set()
    sources: list[tuple[Path | None, np.ndarray | None]] = [(p, None) for p in paths] + [
        (None, a) for a in arrays
    ]
    # named from the whole list, so a rank of an msrun job writes what one process would
    targets = [_out_path(out_dir, p, i, used) if out_dir else None for i, (p, _) in
               enumerate(sources)]  # fmt: skip
    from mindspore import Tensor

    def detect(index: int) -> ImageDetections:
        path, array = sources[index]
        clock = _Clock()
        image = read_image(path) if path is not None else _check_array(array, index)
        clock.lap("read")
        x, meta = preprocess(image, size)
        clock.lap("preprocess")
        pred = net(Tensor(x[None])).asnumpy()[0]
        clock.lap("forward")
        det = nms(pred, conf=conf, iou=iou, multi_label=False, max_det=max_det)
        boxes = scale_boxes_back(det[:, :4], meta)
        detections = tuple(
            Detection(
                box=tuple(float(v) for v in box),
                score=float(d[4]),
                class_id=int(d[5]),
                class_name=_class_name(names, int(d[5])),
            )
            for box, d in zip(boxes, det)
        )
        clock.lap("postprocess")
        annotated = targets[index]
        if annotated is not None:
            draw_detections(image, detections).save(annotated)
        clock.lap("write")
        h, w = image.shape[:2]
        log.debug("%s: %d detections", path or f"array {index}", len(detections))
        return ImageDetections(path, w, h, detections, annotated, clock.laps)

    if not parallel.enabled:
        return [detect(i) for i in range(len(sources))]
    return _sharded(detect, len(sources), parallel)


def _sharded(detect, count: int, parallel) -> list[ImageDetections]:
    """``detect`` over this rank's shard of ``range(count)``; every rank returns all results."""
    import json

    from hub.errors import HubError
    from hub.settings import get_settings
    from hub.tasks.evaluate import hub_error
    from yolomodels.errors import DistributedError, YoloModelsError
    from yolomodels.eval.distributed import exchange, shard

    def work() -> bytes:
        mine = shard(range(count), parallel)
        return json.dumps([[i, _exact(detect(i))] for i in mine]).encode()

    settings = get_settings()
    try:
        payloads = exchange(work, parallel, root=settings.home / "ranks", name="predict",
                            expected=(HubError, YoloModelsError),
                            timeout=settings.gather_timeout)  # fmt: skip
    except DistributedError as exc:
        raise hub_error(exc) from None
    found = dict(item for p in payloads for item in json.loads(p))
    return [_unexact(found[i]) for i in range(count)]


def _exact(r: ImageDetections) -> dict[str, Any]:
    """``r`` as JSON-able values that read back to equal floats (unlike ``to_dict``)."""
    return {
        "image": str(r.image) if r.image else None, "width": r.width, "height": r.height,
        "annotated": str(r.annotated) if r.annotated else None, "timings": dict(r.timings),
        "detections": [[*d.box, d.score, d.class_id, d.class_name] for d in r.detections],
    }  # fmt: skip


def _unexact(d: dict[str, Any]) -> ImageDetections:
    dets = tuple(
        Detection(box=tuple(x[:4]), score=x[4], class_id=x[5], class_name=x[6])
        for x in d["detections"]
    )
    path = lambda v: Path(v) if v else None  # noqa: E731
    return ImageDetections(path(d["image"]), d["width"], d["height"], dets,
                           path(d["annotated"]), d["timings"])  # fmt: skip


class _Clock:
    """Named laps in seconds (read, preprocess, forward, postprocess, write)."""

    def __init__(self):
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self._t
        self._t = now


def _class_name(names, i: int) -> str:
    return names[i] if names and 0 <= i < len(names) else f"class{i}"


def _check_array(array: np.ndarray, index: int) -> np.ndarray:
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise InputDataError(
            f"image array {index} has dtype {array.dtype} and shape {array.shape}; expected an "
            "(H, W, 3) uint8 RGB array"
        )
    return array


def _network(spec_or_net, *, weights, mode, offline, progress, backend=None, onnx=None,
             img_size=None):
    """(network in eval mode, the card's eval protocol or None).

    A card's release is loaded here, once; a network from :func:`hub.load` brings its record
    (``net.hub``), so its card is not looked up again.
    """
    from hub.cards.card import Release
    from hub.tasks.record import record_of

    if isinstance(spec_or_net, Release):
        from hub.tasks.deploy import choose_backend, onnx_network
        from hub.tasks.load import bind, load

        release = spec_or_net
        protocol = release.card.eval_protocol
        size = int(img_size or bind(release.card).args.get("img_size")
                   or getattr(protocol, "img_size", 640))
        chosen = choose_backend(release, backend, img_size=size, onnx=onnx, weights=weights)
        if chosen == "onnxruntime":
            net = onnx_network(release, img_size=size if onnx is None else img_size, onnx=onnx,
                               weights=weights, offline=offline, progress=progress)
            return net, protocol
        net = load(release, weights=weights, mode=mode, offline=offline, progress=progress)
        return net, protocol
    if backend is not None or onnx is not None:
        raise InputDataError(
            "backend= and onnx= apply to a card name, not to an already built network"
        )
    if weights is not None:
        raise InputDataError("weights= applies to a card name, not to an already built network")
    net = spec_or_net
    if not callable(net):
        raise InputDataError(
            f"predict expects a card name or a network from hub.load, got {type(net).__name__}"
        )
    net.set_train(False)
    record = record_of(net)  # None for a network built without hub: default thresholds
    return net, record.protocol if record is not None else None
