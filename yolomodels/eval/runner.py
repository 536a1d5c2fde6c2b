"""Inference over a dataset split under an evaluation protocol, then COCO scoring.

Per image (fact sheet §5): eval preprocessing (resize by the longer side, square letterbox),
batched forward of the network in eval mode, class-aware NMS, boxes back to original pixels.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from yolomodels import images
from yolomodels.errors import DatasetError
from yolomodels.eval.coco import (
    CocoEvalResult,
    CocoSplit,
    category_mapping,
    evaluate_results,
    save_results,
    to_coco_results,
)


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
        if self.img_size < 32 or self.img_size % 32:
            raise DatasetError(f"img_size must be a multiple of 32 (>= 32), got {self.img_size}")
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


@dataclass(frozen=True, eq=False)
class NetworkEvaluation:
    result: CocoEvalResult | None  # None on the ranks other than 0 of an msrun job
    inference: InferenceRun
    detections_path: Path | None


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
) -> InferenceRun:
    """Detect objects in every image of ``split`` (or only in ``image_ids``) with ``net``
    (switched to eval mode)."""
    import mindspore as ms

    from yolomodels.postprocess import nms, preprocess, scale_boxes_back

    net.set_train(False)
    ids = list(split.image_ids if image_ids is None else image_ids)
    # the batch shape of a run over the whole split, so a subset's numbers are bit-identical
    bs = max(1, min(settings.batch_size, len(split.image_ids)))
    detections: dict[int, np.ndarray] = {}
    start_time = time.perf_counter()
    with tqdm(total=len(ids), unit="img", desc="eval", disable=not progress, leave=False) as bar:
        for start in range(0, len(ids), bs):
            chunk = ids[start : start + bs]
            inputs, metas = [], []
            for image_id in chunk:
                image = read_image(split.image_path(image_id))
                x, meta = preprocess(image, settings.img_size)
                inputs.append(x)
                metas.append((meta, image.shape[:2]))
            batch = np.stack(inputs).astype(np.float32)
            if len(chunk) < bs:
                # pad the last batch to the compiled shape instead of compiling a second graph
                pad = np.zeros((bs - len(chunk), *batch.shape[1:]), dtype=np.float32)
                batch = np.concatenate([batch, pad])
            out = net(ms.Tensor(batch))
            if isinstance(out, (tuple, list)):
                out = out[0]
            out = out.asnumpy()
            for j, image_id in enumerate(chunk):
                det = nms(
                    out[j],
                    conf=settings.conf_threshold,
                    iou=settings.iou_threshold,
                    multi_label=settings.multi_label,
                    max_det=settings.max_detections,
                )
                meta, shape = metas[j]
                det = np.array(det, dtype=np.float32).reshape(-1, 6)
                det[:, :4] = scale_boxes_back(det[:, :4], meta, shape)
                detections[image_id] = det
            bar.update(len(chunk))
    return InferenceRun(detections=detections, seconds=time.perf_counter() - start_time)


def evaluate_network(
    net,
    split: CocoSplit,
    *,
    settings: InferenceSettings,
    detections_path: str | os.PathLike | None = None,
    progress: bool = False,
    parallel=None,
    exchange_dir: str | os.PathLike | None = None,
    gather_timeout: float | None = None,
) -> NetworkEvaluation:
    """Run inference over every image of ``split`` and score it with COCOeval.

    Class indices map to the dataset's category ids (COCO: 80 -> 91); the detections are saved
    to ``detections_path`` (if given) so COCOeval can be re-run without inference.  With an
    enabled ``parallel`` (``yolomodels.eval.distributed.init_ranks()`` under msrun) each rank
    runs its shard and rank 0 alone saves and scores the gathered detections; the ranks
    exchange them through files under ``exchange_dir`` (a directory they all see).
    """
    cat_ids = category_mapping(split.gt, int(net.num_classes))
    if parallel is not None and parallel.enabled:
        from yolomodels.eval.distributed import GATHER_TIMEOUT, run_inference_sharded

        run = run_inference_sharded(
            net, split, settings=settings, parallel=parallel, progress=progress,
            root=exchange_dir, timeout=gather_timeout or GATHER_TIMEOUT,
        )  # fmt: skip
        if not parallel.is_main:
            return NetworkEvaluation(result=None, inference=run, detections_path=None)
    else:
        run = run_inference(net, split, settings=settings, progress=progress)
    records = to_coco_results(run.detections, cat_ids)
    saved = save_results(records, detections_path) if detections_path is not None else None
    result = evaluate_results(split.gt, records, image_ids=split.image_ids)
    return NetworkEvaluation(result=result, inference=run, detections_path=saved)
