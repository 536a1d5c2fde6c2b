"""Evaluate a network on a split: inference (in one process, or sharded over msrun ranks), then
COCO scoring once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from yolomodels.eval.coco import (
    CocoEvalResult,
    CocoSplit,
    category_mapping,
    evaluate_results,
    save_results,
    to_coco_results,
)
from yolomodels.eval.runner import InferenceRun, InferenceSettings, run_inference

__all__ = ["NetworkEvaluation", "evaluate_network"]


@dataclass(frozen=True, eq=False)
class NetworkEvaluation:
    result: CocoEvalResult | None  # None on the ranks other than 0 of an msrun job
    inference: InferenceRun
    detections_path: Path | None



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
    workers: int | None = None,
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
        run = run_inference(net, split, settings=settings, progress=progress, workers=workers)
    records = to_coco_results(run.detections, cat_ids)
    saved = save_results(records, detections_path) if detections_path is not None else None
    result = evaluate_results(split.gt, records, image_ids=split.image_ids)
    return NetworkEvaluation(result=result, inference=run, detections_path=saved)
