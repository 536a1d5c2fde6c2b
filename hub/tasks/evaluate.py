"""Evaluate a card's network under the card's protocol and check the card's claim.

``evaluate("name", data=DIR)`` resolves the card once, loads the verified checkpoint (or the
caller's ``weights=``, loaded strictly into the card's architecture) through :func:`hub.load`,
whose record gives the weights file and sha256 for the report, runs COCO bbox evaluation
(``yolomodels.eval``) with the protocol the card declares, and puts the measured value beside
the claimed one.  The report is
written as JSON, markdown and a precision-recall PNG; the detections JSON next to it lets
COCOeval be re-run without inference.  ``update_card=True`` records the result in the card, for
cards the user owns.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hub import __version__
from hub.cards.card import Card, EvalProtocol, Release
from hub.cards.catalog import CardsArg, resolve
from hub.errors import CheckpointMismatchError, HubError, InputDataError, PublishError
from hub.settings import get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class EvalReport:
    """What one evaluation measured, against what the card claims, and where the files went."""

    release: str  # name@version
    card_path: Path | None
    weights: str  # checkpoint path (given, or the verified file in the cache)
    weights_sha256: str | None  # None when saved detections were re-scored
    data: Path
    split: str
    annotations: Path
    protocol: EvalProtocol
    metrics: Any  # yolomodels.eval.coco.CocoMetrics
    claim: Any  # yolomodels.eval.report.ClaimCheck
    per_class: tuple[tuple[int, str, float | None, float | None], ...]
    num_images: int
    num_detections: int
    inference_seconds: float
    out_dir: Path
    report_json: Path
    report_markdown: Path
    plot: Path
    detections: Path
    date: str
    yolohub_version: str
    card_updated: bool = False

    @property
    def holds(self) -> bool | None:
        """True/False when the card claims a value; None when it claims nothing."""
        return self.claim.holds

    @property
    def measured(self) -> float:
        return self.claim.measured

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.release,
            "card": str(self.card_path) if self.card_path else None,
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            "data": str(self.data),
            "split": self.split,
            "annotations": str(self.annotations),
            "protocol": _protocol_dict(self.protocol),
            "claim": self.claim.to_dict(),
            "metrics": {k: _round(v) for k, v in self.metrics.as_percent().items()},
            "per_class": [
                {"category_id": c, "name": n, "AP": _round(ap), "AP50": _round(ap50)}
                for c, n, ap, ap50 in self.per_class
            ],
            "num_images": self.num_images,
            "num_detections": self.num_detections,
            "inference_seconds": round(self.inference_seconds, 3),
            "files": {
                "out_dir": str(self.out_dir),
                "report_json": str(self.report_json),
                "report_markdown": str(self.report_markdown),
                "plot": str(self.plot),
                "detections": str(self.detections),
            },
            "date": self.date,
            "yolohub_version": self.yolohub_version,
            "card_updated": self.card_updated,
        }


def evaluate(
    name: str,
    *,
    data: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    update_card: bool = False,
    cards_dirs: CardsArg = (),
    split: str | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
    mode: str = "graph",
    detections: str | os.PathLike | None = None,
    backend: str | None = None,
    onnx: str | os.PathLike | None = None,
) -> EvalReport | None:
    """Evaluate card ``name`` (or ``name@version``) on the dataset in ``data``.

    The card's ``eval-protocol`` supplies image size, thresholds, max detections, the metric and
    the tolerance; ``split`` and ``batch_size`` override the split and batch (the batch does not
    change the numbers).  ``detections`` re-scores a saved detections JSON (from an earlier
    run's report directory) without loading a network or running inference.
    ``backend="onnxruntime"`` (or an ``onnx`` file) runs the card's exported ONNX graph in ONNX
    Runtime instead of the MindSpore network.  Returns the report; whether the claim holds is
    ``report.holds``.  Under ``msrun`` each rank infers its shard of the images and rank 0
    scores them all: it alone writes files and returns the report, the others return None.
    """
    from yolomodels.errors import YoloModelsError
    from yolomodels.eval.coco import evaluate_results, load_results, open_split
    from yolomodels.eval.distributed import init_ranks
    from yolomodels.eval.report import check_claim, write_report
    from yolomodels.eval.scoring import evaluate_network

    # first: msrun's scheduler runs this command too, and stops here
    parallel = init_ranks(root=get_settings().home / "ranks")
    if detections is not None and (weights is not None or update_card):
        raise InputDataError(
            "detections= re-scores saved detections, which do not say which weights made them; "
            "it cannot be combined with weights= (--weights) or update_card (--update-card)"
        )
    release = resolve(name, cards_dirs=cards_dirs)
    card = release.card
    if update_card:
        _check_owned(card)  # refuse before spending minutes on inference
    protocol = _protocol(card)
    if split:
        protocol = replace(protocol, split=split)
    if batch_size:
        protocol = replace(protocol, batch_size=int(batch_size))
    settings = get_settings()
    out_dir = Path(out) if out is not None else _default_out(settings.home, release, protocol)
    try:
        # re-scoring saved detections reads no image
        split_data = open_split(data, protocol.split, check_images=detections is None)
        inference = inference_settings(protocol)
        _check_classes(card, split_data)
    except YoloModelsError as exc:
        raise InputDataError(str(exc)) from exc

    if detections is not None:
        if not parallel.is_main:
            return None  # re-scoring is rank 0's job alone
        det_path = Path(detections)
        try:
            result = evaluate_results(
                split_data.gt, load_results(det_path), image_ids=split_data.image_ids
            )
        except YoloModelsError as exc:
            raise InputDataError(f"{exc}; pass the detections.json of a run on this split") from exc
        weights_label, sha, seconds = f"saved detections {det_path.resolve()}", None, 0.0
    else:
        from hub.progress import show_progress
        from hub.tasks.deploy import check_backend

        bar = show_progress(settings, progress)  # decided before loading: no way back after
        if check_backend(backend) == "onnxruntime" or onnx is not None:
            net, weights_label, sha = _onnx_network(
                release, weights, onnx=onnx, backend=backend, img_size=protocol.img_size,
                progress=progress,
            )
        else:
            net, weights_label, sha = _network(release, weights, mode=mode, progress=progress)
        try:
            run = evaluate_network(
                net,
                split_data,
                settings=inference,
                detections_path=out_dir / "detections.json",
                progress=bar and parallel.is_main,
                parallel=parallel,
                exchange_dir=settings.home / "ranks",
                gather_timeout=settings.gather_timeout,
            )
        except YoloModelsError as exc:
            raise hub_error(exc) from exc
        if run.result is None:
            return None  # another rank than 0 of an msrun job: rank 0 reports
        result, det_path, seconds = run.result, run.detections_path, run.inference.seconds

    claim = check_claim(
        result.metrics,
        protocol.metric,
        claimed=release.asset.claimed,
        tolerance=protocol.tolerance,
    )
    date = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    context = {
        "model": release.id,
        "card": str(card.path) if card.path else None,
        "weights": weights_label,
        "weights_sha256": sha,
        "data": str(Path(data).resolve()),
        "split": protocol.split,
        "annotations": str(split_data.annotations),
        "protocol": _protocol_dict(protocol),
        "inference_seconds": round(seconds, 3),
        "date": date,
        "yolohub_version": __version__,
    }
    files = write_report(
        result,
        out_dir,
        title=f"{release.id} on {Path(data).name}/{protocol.split}",
        context=context,
        claim=claim,
    )
    report = EvalReport(
        release=release.id,
        card_path=card.path,
        weights=weights_label,
        weights_sha256=sha,
        data=Path(data),
        split=protocol.split,
        annotations=split_data.annotations,
        protocol=protocol,
        metrics=result.metrics,
        claim=claim,
        per_class=tuple(result.per_class_ap()),
        num_images=result.num_images,
        num_detections=result.num_detections,
        inference_seconds=seconds,
        out_dir=out_dir,
        report_json=files.json,
        report_markdown=files.markdown,
        plot=files.plot,
        detections=det_path,
        date=date,
        yolohub_version=__version__,
    )
    if update_card:
        record_result(card, report, version=release.asset.version)
        report = replace(report, card_updated=True)
    return report


def hub_error(exc: Exception) -> HubError:
    """The hub error for a yolomodels one met while running on images: bad input (exit 9), or
    a lost image worker or a distributed run that lost or broke a rank for another reason."""
    from yolomodels.errors import DistributedError, WorkerError

    if isinstance(exc, WorkerError) or (isinstance(exc, DistributedError) and not exc.input_error):
        return HubError(str(exc))
    return InputDataError(str(exc))


def inference_settings(protocol: EvalProtocol):
    """The runner settings a card's eval-protocol stands for (image size, thresholds, batch)."""
    from yolomodels.eval.runner import InferenceSettings

    return InferenceSettings(
        img_size=protocol.img_size,
        conf_threshold=protocol.conf_threshold,
        iou_threshold=protocol.iou_threshold,
        max_detections=protocol.max_detections,
        multi_label=protocol.multi_label,
        batch_size=protocol.batch_size,
    )


def record_result(card: Card, report: EvalReport, *, version: str) -> Card:
    """Append the measured result to the card's ``eval-results`` (user-owned cards only)."""
    from hub.cards.card import EvalResult
    from hub.cards.write import edit_card, protocol_fields

    _check_owned(card)
    proto = report.protocol
    kept = ("img_size", "conf_threshold", "iou_threshold", "max_detections", "multi_label")
    settings = protocol_fields({a: getattr(proto, a) for a in kept})
    result = EvalResult(
        metric=proto.metric,
        value=round(report.measured, 4),
        version=version,
        dataset=proto.dataset,
        split=report.split,
        date=report.date,
        yolohub_version=report.yolohub_version,
        weights_sha256=report.weights_sha256,
        settings={"data": str(Path(report.data).resolve()), **settings, "images": report.num_images},
        metrics={k: round(v, 4) for k, v in report.metrics.as_percent().items() if v is not None},
    )
    updated = edit_card(card.path, lambda now: {"eval_results": (*now.eval_results, result)})
    _publish_plot(card.path, report)
    from hub.cards.index import reindex_containing

    reindex_containing(card.path)  # a registry's index and catalog follow the card
    return updated


def _publish_plot(card_path: Path, report: EvalReport) -> None:
    """Put the precision-recall plot beside the card (``<card>.pr.png``), where the registry's
    HTML catalog shows it with the card's eval results."""
    import shutil

    plot = Path(report.plot)
    if plot.is_file():
        try:
            shutil.copyfile(plot, Path(card_path).with_name(Path(card_path).stem + ".pr.png"))
        except OSError as exc:
            log.warning("could not copy the precision-recall plot beside %s: %s", card_path, exc)


def _check_owned(card: Card) -> None:
    if card.source == "builtin" or card.path is None:
        raise PublishError(
            f"card {card.name!r} is built into yolohub and cannot be updated; copy it into a "
            "directory of yours and pass that directory with --cards DIR (or cards_dirs=) to "
            "record results in your copy"
        )
    if not os.access(card.path, os.W_OK) or not os.access(card.path.parent, os.W_OK):
        raise PublishError(
            f"card file {card.path} is not writable; cannot record the evaluation result in it"
        )


def _check_classes(card: Card, split) -> None:
    """Refuse a dataset whose categories are not the card's classes (the numbers would be
    meaningless); warn when only some names differ."""
    from yolomodels.eval.coco import category_mapping, class_name_mismatches

    names = card.class_names
    nc = (card.architecture.args.get("num_classes") if card.architecture else None) or (
        len(names) if names else None
    )
    if nc is None:
        return
    cat_ids = category_mapping(split.gt, int(nc))  # DatasetError when the counts cannot match
    if not names:
        return
    bad = class_name_mismatches(split.gt, cat_ids, names)
    compared = sum(1 for c in cat_ids if c in split.gt.cats)
    if bad and len(bad) == compared:
        shown = ", ".join(f"{k}: {a!r} vs {b!r}" for k, a, b in bad[:4])
        raise InputDataError(
            f"the dataset's categories are not the classes of card {card.name!r} (class: card "
            f"vs dataset — {shown}{', ...' if len(bad) > 4 else ''}); evaluate on a dataset "
            "labelled with the card's class-names"
        )
    if bad:
        log.warning(
            "%s: %d of %d class names differ from the dataset's categories (first: %r vs %r)",
            card.name,
            len(bad),
            compared,
            bad[0][1],
            bad[0][2],
        )


def _protocol(card: Card) -> EvalProtocol:
    if card.eval_protocol is None:
        raise InputDataError(
            f"card {card.name!r} has no eval-protocol, so there is nothing to evaluate against; "
            "add an eval-protocol block (dataset, split, metric, img-size, thresholds, tolerance)"
        )
    return card.eval_protocol


def _network(release: Release, weights, *, mode: str, progress: bool | None):
    """The card's network in eval mode, with the card's verified weights or the caller's.

    Returns ``(net, weights label, full sha256 of the weights file)``, read from the network's
    load record.
    """
    from hub.tasks.load import load

    try:
        net = load(release, mode=mode, progress=progress, weights=weights)
    except CheckpointMismatchError as exc:
        if weights is None:
            raise
        raise CheckpointMismatchError(
            f"{weights} does not fit the network of card {release.id}: "
            f"{exc.report.describe()}; check that the checkpoint was trained for this card",
            exc.report,
        ) from None
    file = net.hub.weights
    return net, str(file.path.resolve() if file.origin == "local" else file.path), file.sha256


def _onnx_network(release: Release, weights, *, onnx, backend, img_size: int, progress):
    """The card's ONNX graph in ONNX Runtime: ``(net, label, sha256 of the ONNX file)``."""
    from hub.tasks.deploy import choose_backend, onnx_network

    choose_backend(release, backend, img_size=img_size, onnx=onnx, weights=weights)
    net = onnx_network(release, img_size=img_size, onnx=onnx, weights=weights,
                       progress=progress)
    file = net.hub.weights
    return net, f"{file.path.resolve()} (ONNX Runtime)", file.sha256


def _default_out(home: Path, release: Release, protocol: EvalProtocol) -> Path:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe = re.sub(r"[^A-Za-z0-9_.@-]", "_", release.id)
    return home / "eval" / safe / f"{protocol.split}-{stamp}"


def _protocol_dict(p: EvalProtocol) -> dict[str, Any]:
    return {
        "dataset": p.dataset,
        "split": p.split,
        "metric": p.metric,
        "img_size": p.img_size,
        "conf_threshold": p.conf_threshold,
        "iou_threshold": p.iou_threshold,
        "max_detections": p.max_detections,
        "multi_label": p.multi_label,
        "batch_size": p.batch_size,
        "tolerance": p.tolerance,
    }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)
