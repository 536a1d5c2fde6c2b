"""``yolohub export``: a card's network as a verified MindIR or ONNX file (and ``publish --asset``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub.cli.common import add_cards_option, add_json_option, open_cards, print_json


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to MindIR or ONNX, verified against the MindSpore network",
        description="Build NAME's network with its verified weights (or --weights) in inference "
        "form (box decode included, NMS outside) and export it with MindSpore's own exporter. "
        "The file is loaded back (MindIR through MindSpore, ONNX through ONNX Runtime) and its "
        "output on a fixed input compared with the network's; above 1e-4 relative difference "
        "the export fails (exit 1). Exports are cached by (weights sha256, format, size, batch). "
        "If MindSpore cannot express an operator in ONNX, the error names it and MindIR is "
        "exported instead.",
    )
    p.add_argument("name", metavar="NAME", help="model name or name@version")
    p.add_argument("--format", required=True, metavar="FORMAT", help="mindir or onnx")
    p.add_argument("--img-size", type=int, metavar="N",
                   help="input height and width, a multiple of 32 (default: the card's)")
    p.add_argument("--batch", type=int, default=1, metavar="N", help="input batch (default 1)")
    p.add_argument("--weights", type=Path, metavar="CKPT",
                   help="export this local checkpoint (loaded strictly) instead of the card's")
    p.add_argument("-o", "--out", type=Path, metavar="FILE",
                   help="also copy the verified file here (default: only the export cache)")
    p.add_argument("--force", action="store_true", help="export again even if cached")
    p.add_argument("--publish", action="store_true",
                   help="add the file to the card as another asset of the same version")
    p.add_argument("--store", type=Path, metavar="DIR",
                   help="with --publish: asset store to copy the file into (default: the store "
                   "of the version's checkpoint, when its link is a file:// URL)")
    p.add_argument("--base-url", metavar="URL",
                   help="with --publish: URL the store is served at (default: taken from the "
                   "checkpoint's link)")
    p.add_argument("--replace", action="store_true",
                   help="with --publish: replace the card's existing asset of this format")
    p.add_argument("--offline", action="store_true", default=None,
                   help="never download; use the cache only")
    add_cards_option(p)
    add_json_option(p)
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from hub.tasks.export import export

    r = export(
        args.name, format=args.format, img_size=args.img_size, batch=args.batch,
        weights=args.weights, out=args.out, cards_dirs=open_cards(args), offline=args.offline,
        force=args.force, publish=args.publish, store=args.store, base_url=args.base_url,
        replace=args.replace,
    )
    if args.json:
        print_json(r.to_dict())
        return 0
    from hub.progress import human_bytes
    v = r.verification
    how = "from the export cache" if r.from_cache else f"exported in {r.export_seconds:.1f} s"
    print(f"{r.release}: {r.format} export verified ({how})")
    print(f"  file     {r.path}")
    print(f"  sha256   {r.sha256} ({human_bytes(r.size)})")
    print(f"  input    {'x'.join(map(str, r.input_shape))} float32, output "
          f"{'x'.join(map(str, v.output_shape))} (decoded boxes; NMS not included)")
    print(f"  verify   max abs diff {v.max_abs_diff:.3g}, max rel diff {v.max_rel_diff:.3g} "
          f"(limit {v.tolerance:g}), loaded back by {v.runtime}")
    print(f"  weights  {r.weights} (sha256 {r.weights_sha256[:16]}...)")
    if r.published is not None:
        _print_published(r.published)
    return 0


def _print_published(p) -> None:
    print(f"  published {p.file_format} asset of {p.release}" + (" (replaced)" if p.replaced
                                                                 else ""))
    print(f"    card   {p.card_path}")
    print(f"    asset  {p.asset_path}")
    print(f"    link   {p.url}")


def publish_asset_command(args: argparse.Namespace) -> int:
    """``yolohub publish --asset FILE --name NAME[@VERSION]``."""
    from hub.errors import InputDataError
    from hub.tasks.export_publish import publish_asset

    if not args.name:
        args.parser.error("--asset needs --name NAME[@VERSION]: the card to add the file to")
    if args.checkpoint is not None or args.arch is not None:
        raise InputDataError(
            "--asset adds a file to an existing card; it takes no CHECKPOINT or --arch"
        )
    cards = [args.registry] if args.registry is not None else []
    r = publish_asset(
        args.asset, args.name, store=args.store, base_url=args.base_url, cards_dirs=cards,
        force=args.force, img_size=args.img_size, batch=args.batch,
    )
    if args.json:
        print_json(r.to_dict())
        return 0
    print(f"{r.release}: {r.file_format} asset verified "
          f"({r.verification.describe()})")
    _print_published(r)
    print(f"  sha256 {r.sha256} ({r.size} bytes), input {list(r.input_shape)}")
    where = f" --cards {args.registry}" if args.registry is not None else ""
    print(f"fetch it with: yolohub download {r.release} --format {r.file_format}{where}")
    return 0
