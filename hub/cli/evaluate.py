"""``yolohub eval``: reproduce a card's claimed metric; the exit code says whether it holds."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub.cli.common import add_cards_option, add_json_option, open_cards, print_json
from hub.errors import ClaimNotReproducedError


def register(sub) -> None:
    """Add ``eval`` to the yolohub parser."""
    p = sub.add_parser(
        "eval",
        help="COCO-evaluate a card's network and check the card's claim",
        description="Run COCO bbox evaluation (pycocotools) under the card's eval-protocol and "
        "compare the measured metric with the card's claim. Exit code 0 when the claim holds "
        "within the card's tolerance (or the card claims nothing), 1 when it does not.",
    )
    p.add_argument("name", metavar="NAME", help="card name or name@version")
    p.add_argument("--data", type=Path, required=True, metavar="DIR", help="dataset directory")
    p.add_argument("--weights", type=Path, metavar="CKPT", help="evaluate this checkpoint instead")
    p.add_argument("--out", type=Path, metavar="DIR", help="report directory")
    p.add_argument(
        "--detections",
        type=Path,
        metavar="JSON",
        help="re-score a saved detections.json instead of running the network",
    )
    p.add_argument("--split", metavar="NAME", help="dataset split (default: the card's)")
    p.add_argument("--batch-size", type=int, metavar="N", help="images per forward pass")
    p.add_argument(
        "--mode",
        choices=("graph", "pynative"),
        default="graph",
        help="MindSpore execution mode (graph compiles once and runs faster on many images)",
    )
    p.add_argument(
        "--update-card", action="store_true", help="record the result in the card (yours only)"
    )
    p.add_argument("--backend", metavar="NAME", default=None,
                   help="mindspore (default) or onnxruntime: the card's exported ONNX graph (its "
                   "onnx asset, else exported on the fly and cached)")
    p.add_argument("--onnx", metavar="FILE", type=Path,
                   help="evaluate this exported ONNX file in ONNX Runtime")
    add_cards_option(p)
    add_json_option(p)
    p.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    from hub.tasks.evaluate import evaluate

    report = evaluate(
        args.name,
        data=args.data,
        weights=args.weights,
        out=args.out,
        update_card=args.update_card,
        cards_dirs=open_cards(args),
        split=args.split,
        batch_size=args.batch_size,
        mode=args.mode,
        detections=args.detections,
        backend=args.backend,
        onnx=args.onnx,
    )
    if report is None:
        return 0  # a rank other than 0 under msrun: rank 0 prints and reports
    if args.json:
        print_json(report.to_dict())
    else:
        _print_summary(report)
    if report.holds is False:
        c = report.claim
        raise ClaimNotReproducedError(
            f"{report.release}: measured {c.metric} {c.measured:.2f}, claimed {c.claimed:.2f}, "
            f"differs by {c.delta:+.2f} (tolerance ±{c.tolerance:g}); "
            f"see {report.report_markdown}"
        )
    return 0


def _print_summary(report) -> None:
    c = report.claim
    m = report.metrics.as_percent()
    print(f"{report.release} on {report.data} ({report.split}, {report.num_images} images)")
    print("  " + "  ".join(f"{k} {_f(m[k])}" for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")))
    print("  " + "  ".join(f"{k} {_f(m[k])}" for k in ("AR1", "AR10", "AR100")))
    claimed = "none" if c.claimed is None else f"{c.claimed:.2f} ±{c.tolerance:g}"
    print(f"  {c.metric}: measured {c.measured:.2f}, claimed {claimed} -> {c.verdict}")
    print(f"  report: {report.report_markdown}")
    print(f"  json:   {report.report_json}")
    print(f"  plot:   {report.plot}")
    print(f"  detections: {report.detections}")
    if report.card_updated:
        print(f"  card updated: {report.card_path}")


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"
