"""``yolohub predict``: detect objects in images with a hub model."""

from __future__ import annotations

from pathlib import Path

from hub.cli.common import add_cards_option, add_json_option, open_cards, print_json, ranged


def register(sub) -> None:
    """Add this group's subcommands to the yolohub parser."""
    p = sub.add_parser(
        "predict",
        help="detect objects in images with a model",
        description="Load NAME (name or name@version; downloaded and verified on first use), run "
        "it on each image (directories contribute their image files) and print the detections. "
        "With --out, annotated copies (boxes, class names, scores) are written there.",
    )
    p.add_argument("name", metavar="NAME", help="model name or name@version")
    p.add_argument("images", metavar="IMAGE", nargs="+", type=Path, help="image file or directory")
    p.add_argument("--out", metavar="DIR", type=Path, help="write annotated images here")
    p.add_argument("--conf", type=_unit, help="minimum score (default 0.25)")
    p.add_argument("--iou", type=_unit, help="NMS IoU threshold (default: the card's)")
    p.add_argument("--max-det", type=int, help="at most this many boxes per image (default: the card's)")
    p.add_argument("--img-size", type=int, help="network input size (default: the card's)")
    p.add_argument("--weights", metavar="CKPT", type=Path,
                   help="use this local checkpoint (loaded strictly) instead of the card's asset")
    p.add_argument("--mode", choices=("graph", "pynative"), default="graph",
                   help="MindSpore execution mode (default graph: compiled once per input size)")
    p.add_argument("--backend", metavar="NAME",
                   help="mindspore or onnxruntime (the card's exported ONNX graph); default: "
                   "onnxruntime when an ONNX file is at hand, else mindspore")
    p.add_argument("--onnx", metavar="FILE", type=Path,
                   help="run this exported ONNX file in ONNX Runtime")
    p.add_argument("--offline", action="store_true", default=None,
                   help="never download; use the cache only")
    add_cards_option(p)
    add_json_option(p)
    p.set_defaults(func=run_predict)


_unit = ranged(float, 0.0, 1.0, "a number in [0, 1]")


def run_predict(args) -> int:
    from hub.tasks.predict import predict

    results = predict(
        args.name,
        args.images,
        out=args.out,
        conf=args.conf,
        iou=args.iou,
        max_det=args.max_det,
        img_size=args.img_size,
        cards_dirs=open_cards(args),
        weights=args.weights,
        mode=args.mode,
        offline=args.offline,
        backend=args.backend,
        onnx=args.onnx,
    )
    from yolomodels.eval.distributed import current

    if not current().is_main:
        return 0  # a rank other than 0 under msrun: rank 0 prints every image's line
    if args.json:
        print_json([r.to_dict() for r in results])
        return 0
    for r in results:
        found = ", ".join(f"{d.class_name} {d.score:.2f}" for d in r.detections[:8])
        more = f", ... {len(r.detections) - 8} more" if len(r.detections) > 8 else ""
        line = f"{r.image}: {len(r.detections)} detection(s)"
        if found:
            line += f" ({found}{more})"
        if r.annotated:
            line += f" -> {r.annotated}"
        print(line)
    return 0
