"""``yolohub demo``: the end-to-end walk through the hub (the README's main job)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub.cli.common import add_json_option, print_json
from hub.errors import ClaimNotReproducedError


def register(sub) -> None:
    """Add ``demo`` to the yolohub parser."""
    p = sub.add_parser(
        "demo",
        help="train, publish, serve, load, evaluate and predict, end to end, offline",
        description="Generate a synthetic dataset, train a scaled-down YOLOv3 from its card's "
        "recipe, publish it as a new card, serve the asset store on 127.0.0.1, load it back "
        "through download and hash verification, reproduce its claim, draw a gallery of "
        "validation images (ground truth beside predictions) and predict on an image. "
        "Everything (including the cache) goes under --out.",
    )
    p.add_argument("--out", type=Path, default=Path("demo-out"), metavar="DIR",
                   help="output directory, emptied first if it holds an earlier demo (demo-out)")
    p.add_argument("--quick", action="store_true",
                   help="a small, fast setting of every step (what CI runs)")
    p.add_argument("--epochs", type=int, metavar="N", help="training epochs")
    p.add_argument("--train-images", type=int, metavar="N", help="synthetic training images")
    p.add_argument("--val-images", type=int, metavar="N", help="synthetic validation images")
    p.add_argument("--img-size", type=int, metavar="PX", help="image size (multiple of 32)")
    p.add_argument("--seed", type=int, metavar="S", help="random seed")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, e.g. --set optimizer.lr=0.02 (repeatable)")
    add_json_option(p)
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from hub.tasks.demo import DemoConfig, run_demo

    make = DemoConfig.quick if args.quick else DemoConfig
    config = make(args.out).with_(
        epochs=args.epochs,
        train_images=args.train_images,
        val_images=args.val_images,
        img_size=args.img_size,
        seed=args.seed,
        overrides=tuple(args.overrides) or None,
    )
    echo = (lambda _line: None) if args.json else print
    result = run_demo(config, echo=echo)
    if args.json:
        print_json(_summary(result))
    else:
        print()
        print(result.table())
        print()
        print(result.closing())
    if not result.holds:
        raise ClaimNotReproducedError(
            f"the published claim {result.config.metric} = {result.claimed:.2f} was not "
            f"reproduced after download (measured {result.reproduced:.2f}, tolerance "
            f"{result.config.tolerance}); see {result.eval_report}"
        )
    return 0


def _summary(result) -> dict:
    return {
        "out": str(result.config.out),
        "card": str(result.card_path),
        "checkpoint": str(result.checkpoint),
        "sha256": result.sha256,
        "asset_url": result.asset_url,
        "metric": result.config.metric,
        "claimed": result.claimed,
        "reproduced": result.reproduced,
        "holds": result.holds,
        "loss": [result.first_loss, result.last_loss],
        "prediction": str(result.prediction_image),
        "detections": result.num_detections,
        "eval_report": str(result.eval_report),
        "pr_plot": str(result.pr_plot),
        "gallery": str(result.gallery.path),
        "val_objects": result.gallery.split.objects,
        "found": result.gallery.split.found,
        "false_detections": result.gallery.split.false,
        "duplicates": result.gallery.split.duplicates,
        "score_threshold": result.gallery.conf,
        "train_log": str(result.train_log),
        "steps": [{"name": s.name, "seconds": round(s.seconds, 2), "result": s.result,
                   "path": None if s.path is None else str(s.path)} for s in result.steps],
    }
