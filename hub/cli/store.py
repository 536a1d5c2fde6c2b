"""``yolohub store gc``: remove the asset-store files no card references (publish never does)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub.cli.common import add_json_option, print_json


def register(sub) -> None:
    p = sub.add_parser("store", help="maintain an asset store that publish writes into")
    ssub = p.add_subparsers(dest="store_command", metavar="ACTION")
    ssub.required = True
    q = ssub.add_parser(
        "gc",
        help="remove store files that no card references",
        description="Publish only ever adds files to a store. This removes the published "
        "checkpoints (<name>/<version>/<name>-<version>-<sha>.<ext>) that no card of the given "
        "registries links to, and abandoned temporary copies; nothing else in the store is "
        "touched. Name EVERY registry whose cards use the store: a file used only by an unnamed "
        "registry's card would be removed. Try --dry-run first.",
    )
    q.add_argument("store", type=Path, metavar="STORE", help="the asset store directory")
    q.add_argument("--registry", type=Path, action="append", default=[], metavar="DIR",
                   required=True, help="card directory whose links keep files (repeatable)")
    q.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    add_json_option(q)
    q.set_defaults(func=cmd_store_gc)


def cmd_store_gc(args: argparse.Namespace) -> int:
    from hub.assets.store_gc import gc_store
    from hub.progress import human_bytes

    r = gc_store(args.store, registries=args.registry, dry_run=args.dry_run)
    if args.json:
        print_json(r.to_dict())
        return 0
    verb = "would remove" if r.dry_run else "removed"
    for p in r.removed:
        print(f"{verb}  {p}")
    print(f"store gc{' (dry run)' if r.dry_run else ''}: {len(r.removed)} file(s) {verb}, "
          f"{human_bytes(r.freed)}; {r.kept} referenced file(s) kept")
    return 0
