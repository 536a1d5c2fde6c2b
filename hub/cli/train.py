"""``yolohub train NAME --data DIR``: re-run a card's training recipe (also under ``msrun``)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from hub.cli.common import add_cards_option, add_json_option, open_cards, print_json


def register(sub) -> None:
    """Add ``train`` to the yolohub parser."""
    p = sub.add_parser(
        "train",
        help="train a card's architecture with its recipe on a dataset",
        description="Train NAME's architecture with the card's recipe on the dataset in DIR "
        "(COCO JSON or YOLO txt layout). Checkpoints every epoch into --out; the final "
        "EMA weights are OUT/weights/last.ckpt. Data-parallel: msrun --worker_num=N "
        "--local_worker_num=N --master_port=PORT --join=True yolohub train ...",
    )
    p.add_argument("name", help="card name or name@version whose recipe and architecture to use")
    p.add_argument("--data", required=True, type=Path, metavar="DIR", help="dataset directory")
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="output directory (default: YOLOHUB_HOME/runs/NAME)"
    )
    p.add_argument("--epochs", type=int, metavar="N", help="shorthand for --set epochs=N")
    p.add_argument(
        "--batch-size", type=int, metavar="N", help="per-device batch (--set batch-size=N)"
    )
    p.add_argument(
        "--img-size", type=int, metavar="N", help="training image size (--set img-size=N)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value, dotted for nested keys, e.g. optimizer.lr=0.02 "
        "(repeatable; values are parsed as YAML and type-checked)",
    )
    p.add_argument(
        "--arch",
        dest="arch_args",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an architecture argument, e.g. depth_multiple=0.33 (repeatable)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--from", dest="from_", metavar="NAME", help="start from this card's weights")
    p.add_argument("--rank-weights", type=Path, help=argparse.SUPPRESS)
    add_cards_option(p)
    add_json_option(p)
    p.set_defaults(func=run_train)


def run_train(args) -> int:
    import yaml

    from hub.errors import InputDataError
    from hub.settings import get_settings
    from hub.tasks.train import train

    overrides = list(args.overrides)
    for flag, key in (
        (args.epochs, "epochs"),
        (args.batch_size, "batch-size"),
        (args.img_size, "img-size"),
    ):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    arch_args = {}
    for item in args.arch_args:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputDataError(
                f"--arch {item!r} is not of the form key=value (e.g. width_multiple=0.25)"
            )
        try:
            arch_args[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            arch_args[key.strip()] = raw
    out = args.out
    if out is None:
        safe = re.sub(r"[^A-Za-z0-9_.@-]", "_", args.name)
        out = get_settings().home / "runs" / safe
    result = train(
        args.name,
        data=args.data,
        out=out,
        overrides=overrides,
        arch_args=arch_args or None,
        resume=args.resume,
        from_=args.from_,
        cards_dirs=open_cards(args),
        rank_weights_dir=args.rank_weights,
    )
    if result.rank != 0:
        return 0
    if args.json:
        print_json(result.to_dict())
    else:
        print(
            f"trained {result.model} ({result.arch}) for {result.epochs} epoch(s), "
            f"{result.steps} steps on {result.world_size} device(s) in {result.seconds:.1f}s"
        )
        if result.first_loss is not None:
            print(f"loss {result.first_loss:.4f} -> {result.last_loss:.4f}")
        print(f"weights: {result.checkpoint}")
        print(f"log: {result.log}")
    return 0
