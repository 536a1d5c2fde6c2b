"""``yolohub make-dataset``: write a synthetic shapes dataset for offline tests and the demo."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub.cli.common import add_json_option, print_json
from hub.errors import InputDataError


def register(sub) -> None:
    """Add ``make-dataset`` to the yolohub parser."""
    p = sub.add_parser(
        "make-dataset",
        help="write a synthetic COCO-format dataset of shapes",
        description="Write a synthetic detection dataset (geometric shapes on textured "
        "backgrounds, exact boxes) in COCO json and YOLO txt layouts. Deterministic under --seed.",
    )
    p.add_argument("out", type=Path, metavar="OUT", help="dataset directory to write")
    p.add_argument("--images", type=int, default=64, metavar="N", help="images per split (64)")
    p.add_argument("--size", type=int, default=96, metavar="PX", help="image side in pixels (96)")
    p.add_argument(
        "--classes", type=int, default=3, metavar="K", help="number of shape classes (3)"
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (0)")
    p.add_argument(
        "--split",
        action="append",
        default=[],
        metavar="NAME",
        help="split to write (repeatable; default: train2017 and val2017)",
    )
    p.add_argument("--format", choices=("jpg", "png"), default="jpg", help="image format (jpg)")
    p.add_argument("--overwrite", action="store_true", help="replace splits that already exist")
    add_json_option(p)
    p.set_defaults(func=_make_dataset)


def _make_dataset(args: argparse.Namespace) -> int:
    from yolomodels.data.synthetic import make_dataset
    from yolomodels.errors import DatasetError

    if args.out.exists() and not args.out.is_dir():
        raise InputDataError(f"{args.out} is a file; make-dataset writes a directory there")
    splits = args.split or ["train2017", "val2017"]
    if len(set(splits)) != len(splits):
        raise InputDataError(f"--split names must be distinct, got {splits}")
    written = []
    for i, split in enumerate(splits):
        try:
            make_dataset(
                args.out,
                num_images=args.images,
                img_size=args.size,
                num_classes=args.classes,
                seed=args.seed,
                split=split,
                image_format=args.format,
                # disjoint image ids across splits, as in COCO
                first_id=1 + i * max(args.images, 1),
                overwrite=args.overwrite,
            )
        except DatasetError as exc:
            raise InputDataError(str(exc)) from exc
        written.append(
            {
                "split": split,
                "images": args.images,
                "annotations": str(args.out / "annotations" / f"instances_{split}.json"),
                "list": str(args.out / f"{split}.txt"),
            }
        )
    if args.json:
        print_json({"out": str(args.out), "classes": args.classes, "splits": written})
    else:
        for w in written:
            print(f"{w['split']}: {w['images']} images -> {w['annotations']}")
    return 0
