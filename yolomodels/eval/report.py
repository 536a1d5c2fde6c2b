"""Evaluation reports: claimed vs measured with a verdict, as JSON, markdown and a PR plot (PNG)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yolomodels.eval.coco import CocoEvalResult, CocoMetrics

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NO_CLAIM = "no claim"


@dataclass(frozen=True)
class ClaimCheck:
    """A card's claimed value beside the measured one, in percent, with the card's tolerance."""

    metric: str
    measured: float
    claimed: float | None
    tolerance: float

    @property
    def delta(self) -> float | None:
        return None if self.claimed is None else self.measured - self.claimed

    @property
    def holds(self) -> bool | None:
        """True when |measured - claimed| <= tolerance; None when there is nothing to check."""
        if self.claimed is None:
            return None
        # a tiny epsilon so that e.g. 45.2 vs 45.5 with tolerance 0.3 holds despite float noise
        return abs(self.measured - self.claimed) <= self.tolerance + 1e-9

    @property
    def verdict(self) -> str:
        return {True: REPRODUCED, False: NOT_REPRODUCED, None: NO_CLAIM}[self.holds]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(delta=self.delta, holds=self.holds, verdict=self.verdict)
        return d


def check_claim(
    metrics: CocoMetrics, metric: str, *, claimed: float | None, tolerance: float
) -> ClaimCheck:
    """Compare ``metric`` of ``metrics`` (in percent) with a claimed value."""
    if tolerance < 0 or not math.isfinite(tolerance):
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance}")
    measured = metrics.percent(metric)
    # COCOeval gives -1 when the split has no boxes of that kind; that cannot back any claim
    return ClaimCheck(
        metric=metric,
        measured=-1.0 if measured is None else measured,
        claimed=claimed,
        tolerance=float(tolerance),
    )


@dataclass(frozen=True)
class ReportFiles:
    json: Path
    markdown: Path
    plot: Path


def report_dict(
    result: CocoEvalResult,
    *,
    title: str,
    context: Mapping[str, Any],
    claim: ClaimCheck | None,
) -> dict[str, Any]:
    """The JSON form of a report: context first, then claim, metrics and per-class AP."""
    return {
        "title": title,
        **context,
        "claim": claim.to_dict() if claim else None,
        "metrics": {k: _r(v) for k, v in result.metrics.as_percent().items()},
        "per_class": [
            {"category_id": cid, "name": name, "AP": _r(ap), "AP50": _r(ap50)}
            for cid, name, ap, ap50 in result.per_class_ap()
        ],
        "num_images": result.num_images,
        "num_detections": result.num_detections,
    }


def render_markdown(
    result: CocoEvalResult,
    *,
    title: str,
    context: Mapping[str, Any],
    claim: ClaimCheck | None,
    plot_name: str | None = None,
) -> str:
    """A human-readable report: verdict first, then metrics, per-class AP and the settings."""
    lines = [f"# {title}", ""]
    if claim is not None:
        if claim.claimed is None:
            lines += [
                f"**Verdict: {claim.verdict}** — the card claims no {claim.metric} value; "
                f"measured {claim.measured:.2f}.",
                "",
            ]
        else:
            lines += [
                f"**Verdict: {claim.verdict}**",
                "",
                "| metric | claimed | measured | delta | tolerance |",
                "|---|---:|---:|---:|---:|",
                f"| {claim.metric} | {claim.claimed:.2f} | {claim.measured:.2f} | "
                f"{claim.delta:+.2f} | ±{claim.tolerance:g} |",
                "",
            ]
    lines += [
        "## COCO bbox metrics (percent)",
        "",
        "| " + " | ".join(CocoMetrics.names()) + " |",
        "|" + "---:|" * len(CocoMetrics.names()),
    ]
    lines.append("| " + " | ".join(_fmt(v) for v in result.metrics.as_percent().values()) + " |")
    lines += ["", f"{result.num_images} images, {result.num_detections} detections.", ""]
    lines += ["## Per class", "", "| id | class | AP | AP50 |", "|---:|---|---:|---:|"]
    for cid, name, ap, ap50 in result.per_class_ap():
        lines.append(f"| {cid} | {name} | {_fmt(ap)} | {_fmt(ap50)} |")
    lines += ["", "## Settings", "", "| | |", "|---|---|"]
    for key, value in _flatten(context):
        lines.append(f"| {key} | {value} |")
    if plot_name:
        lines += ["", f"![precision-recall]({plot_name})"]
    lines += ["", "## COCOeval summary", "", "```", result.summary.rstrip(), "```", ""]
    return "\n".join(lines)


def plot_precision_recall(
    result: CocoEvalResult, path: str | os.PathLike, *, title: str, max_classes: int = 10
) -> Path:
    """PNG of precision vs recall (area all, 100 detections): averaged over classes at IoU
    0.5, 0.75 and 0.5:0.95, and per class at IoU 0.5 for the classes with the highest AP."""
    # a bare Figure renders through Agg without touching pyplot's global backend
    from matplotlib.figure import Figure

    path = Path(path)
    rec = result.recall_thresholds
    prec = result.precision[:, :, :, 0, -1]  # (T, R, K)
    fig = Figure(figsize=(11, 4.6), dpi=100)
    ax_all, ax_cls = fig.subplots(1, 2)
    for label, sel in (
        ("IoU 0.50", [_iou_index(result, 0.5)]),
        ("IoU 0.75", [_iou_index(result, 0.75)]),
        ("IoU 0.50:0.95", list(range(len(result.iou_thresholds)))),
    ):
        curve = _mean_valid(prec[sel], axis=(0, 2))
        ap = _mean_valid(prec[sel], axis=None)
        ax_all.plot(rec, curve, label=f"{label} (AP {ap * 100:.1f})" if ap >= 0 else label)
    i50 = _iou_index(result, 0.5)
    order = sorted(range(prec.shape[2]), key=lambda k: -_mean_valid(prec[i50, :, k], axis=None))[
        :max_classes
    ]
    for k in order:
        p = prec[i50, :, k]
        if (p > -1).any():
            ap = float(p[p > -1].mean()) * 100
            ax_cls.plot(
                rec, np.where(p > -1, p, np.nan), label=f"{result.category_names[k]} ({ap:.1f})"
            )
    for ax, sub in ((ax_all, "all classes"), (ax_cls, "per class, IoU 0.50")):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(sub)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(loc="lower left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def write_report(
    result: CocoEvalResult,
    out_dir: str | os.PathLike,
    *,
    title: str,
    context: Mapping[str, Any],
    claim: ClaimCheck | None,
    stem: str = "eval",
) -> ReportFiles:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>_pr.png`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot = plot_precision_recall(result, out / f"{stem}_pr.png", title=title)
    data = report_dict(result, title=title, context=context, claim=claim)
    data["files"] = {"plot": plot.name, "markdown": f"{stem}.md"}
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    md_path = out / f"{stem}.md"
    md_path.write_text(
        render_markdown(result, title=title, context=context, claim=claim, plot_name=plot.name)
    )
    return ReportFiles(json=json_path, markdown=md_path, plot=plot)


def _iou_index(result: CocoEvalResult, thr: float) -> int:
    return int(np.argmin(np.abs(result.iou_thresholds - thr)))


def _mean_valid(a: np.ndarray, axis) -> np.ndarray | float:
    """Mean over entries > -1 (COCOeval marks absent classes with -1); -1 where none are valid."""
    valid = a > -1
    if axis is None:
        return float(a[valid].mean()) if valid.any() else -1.0
    total = np.where(valid, a, 0.0).sum(axis=axis)
    count = valid.sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def _flatten(mapping: Mapping[str, Any], prefix: str = ""):
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value
