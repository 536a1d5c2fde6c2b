"""Inference over a dataset split under an evaluation protocol (scored by
:mod:`yolomodels.eval.scoring`).

Per image (fact sheet §5): eval preprocessing (resize by the longer side, square letterbox),
batched forward of the network in eval mode, class-aware NMS, boxes back to original pixels;
:mod:`yolomodels.eval.pipeline` runs these stages side by side.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from yolomodels import images
from yolomodels.errors import DatasetError
from yolomodels.eval.coco import (
    CocoSplit,
)
from yolomodels.sizes import img_size_problem


@dataclass(frozen=True)
class InferenceSettings:
    """The protocol values inference needs (MindYOLO's test.py defaults)."""

    img_size: int = 640
    conf_threshold: float = 0.001
    iou_threshold: float = 0.65
    max_detections: int = 300
    multi_label: bool = True
    batch_size: int = 16

    def __post_init__(self):
        problem = img_size_problem(self.img_size)
        if problem:
            raise DatasetError(problem)
        if not 0 <= self.conf_threshold <= 1 or not 0 < self.iou_threshold <= 1:
            raise DatasetError(
                f"thresholds must lie in [0, 1]: conf {self.conf_threshold}, iou {self.iou_threshold}"
            )
        if self.max_detections < 1 or self.batch_size < 1:
            raise DatasetError(
                f"max_detections and batch_size must be >= 1, got {self.max_detections} and "
                f"{self.batch_size}"
            )


@dataclass(frozen=True, eq=False)
class InferenceRun:
    """Detections per image id, ``(K, 6)`` float32 ``[x1, y1, x2, y2, score, cls]`` in original
    pixels (float32 as MindYOLO holds them: its COCO records are rounded from these values)."""

    detections: dict[int, np.ndarray]
    seconds: float

    @property
    def num_images(self) -> int:
        return len(self.detections)

    @property
    def images_per_second(self) -> float:
        return self.num_images / self.seconds if self.seconds > 0 else float("inf")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB, decoded as MindYOLO decodes it (OpenCV, EXIF
    orientation applied); ImageReadError if it is missing or not an image."""
    return images.read_image(path)


def run_inference(
    net,
    split: CocoSplit,
    *,
    settings: InferenceSettings,
    progress: bool = False,
    image_ids: Sequence[int] | None = None,
    workers: int | None = None,
) -> InferenceRun:
    """Detect objects in the images of ``split`` with ``net`` (switched to eval mode).

    ``image_ids`` picks the images to run, in that order (default: every image of the split).
    Reading and letterboxing run in ``workers`` processes (None: half the cores; 0: none, the
    plain loop) and NMS beside the network; the detections do not depend on either.
    """
    from yolomodels.eval.pipeline import PipelineOptions, infer

    ids = select_images(split, image_ids)
    # the batch shape of a run over the whole split, so a subset's numbers are bit-identical
    # (an msrun rank runs a subset)
    batch = max(1, min(settings.batch_size, len(split.image_ids)))
    items = [(image_id, split.image_path(image_id)) for image_id in ids]
    start_time = time.perf_counter()
    detections = infer(net, items, settings=settings, options=PipelineOptions(workers=workers),
                       progress=progress, batch=batch)
    return InferenceRun(detections=detections, seconds=time.perf_counter() - start_time)


def select_images(split: CocoSplit, image_ids: Sequence[int] | None) -> list[int]:
    """The ids to run: all of the split's, or ``image_ids`` checked against it (no repeats)."""
    if image_ids is None:
        return list(split.image_ids)
    ids = [int(i) for i in image_ids]
    known = set(split.image_ids)
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise DatasetError(
            f"image ids {unknown[:5]}{'...' if len(unknown) > 5 else ''} are not in "
            f"{split.annotations}; pass ids of the split's images"
        )
    if len(set(ids)) != len(ids):
        twice = sorted(i for i, n in Counter(ids).items() if n > 1)[:5]
        raise DatasetError(f"image ids {twice} are listed more than once; pass each id once")
    return ids
