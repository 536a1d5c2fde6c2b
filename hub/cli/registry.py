"""``yolohub index``, ``update``, ``search``, ``serve``, ``pack`` and ``unpack``: team registries.

No MindSpore or NumPy: indexing, searching and updating read cards and JSON only.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from hub.cli.common import add_cards_option, add_json_option, open_cards, print_json, ranged


def register(sub) -> None:
    p = sub.add_parser(
        "index",
        help="write a registry directory's index.json and HTML catalog",
        description="Scan DIR for cards and write DIR/index.json (what remote clients list, "
        "search and verify cards against) and a static HTML catalog (DIR/index.html plus a page "
        "beside each card). Incremental: unchanged cards are not parsed again. 'yolohub publish' "
        "runs this itself; use it after editing cards by hand. Exit status 1 if a card is invalid "
        "(it is left out of the index).",
    )
    p.add_argument("directory", type=Path, metavar="DIR")
    p.add_argument("--url", help="where DIR is served (used in the catalog's snippets; kept)")
    p.add_argument("--no-html", action="store_true", help="write index.json only")
    add_json_option(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser(
        "update",
        help="refresh the cached index of every registry URL now",
        description="Ask every registry URL (from --cards and YOLOHUB_CARDS) for its index.json "
        "now, with a conditional request, instead of waiting for YOLOHUB_REGISTRY_TTL.",
    )
    add_cards_option(p)
    add_json_option(p)
    p.set_defaults(func=cmd_update)

    p = sub.add_parser(
        "search",
        help="find models by name, summary, tags, dataset, metric or architecture",
        description="Every word of TEXT must occur in a model's name, architecture, tags, "
        "dataset, metric, title or summary. Searches every card source, remote registries "
        "through their index.",
    )
    p.add_argument("text", nargs="+", help="words to look for")
    add_cards_option(p)
    add_json_option(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser(
        "serve",
        help="serve a directory (registry and/or asset store) over HTTP for a team",
        description="Serve DIR read-only over HTTP (Range, ETag/Last-Modified, conditional "
        "requests) until interrupted. For a laptop or a quick team host; any static web "
        "server does the same job in production.",
    )
    p.add_argument("directory", type=Path, metavar="DIR")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0 = any free)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "pack",
        help="write models (cards + checkpoints) into a bundle for an offline machine",
        description="Resolve each NAME[@VERSION], download and verify its checkpoint if needed, "
        "and write the cards, the checkpoints and a manifest of sha256s into a tar file.",
    )
    p.add_argument("names", nargs="+", metavar="NAME[@VERSION]")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="BUNDLE.tar")
    p.add_argument("--offline", action="store_true", default=None,
                   help="pack from the cache only; never download")
    add_cards_option(p)
    add_json_option(p)
    p.set_defaults(func=cmd_pack)

    p = sub.add_parser(
        "unpack",
        help="verify a bundle and install its models into the cache (no network needed)",
        description="Check every file of BUNDLE against its manifest, then put the checkpoints "
        "into the cache and the cards under $YOLOHUB_HOME/cards, a card source of its own. A "
        "bundle that fails any check installs nothing.",
    )
    p.add_argument("bundle", type=Path, metavar="BUNDLE.tar")
    add_json_option(p)
    p.set_defaults(func=cmd_unpack)


def cmd_index(args: argparse.Namespace) -> int:
    from hub.cards.index import write_index

    r = write_index(args.directory, catalog=not args.no_html, url=args.url)
    if args.json:
        print_json(dataclasses.asdict(r))
    else:
        print(f"{r.path}: {r.cards} card(s); {r.parsed} parsed, {r.reused} unchanged, "
              f"{r.removed} removed" + (f"; catalog {r.catalog}" if r.catalog else ""))
        for rel, err in r.invalid:
            print(f"not indexed: {rel}: {err}")
    return 1 if r.invalid else 0


def cmd_update(args: argparse.Namespace) -> int:
    from hub.cards.remote import update

    results = update(cards_dirs=args.cards)
    if args.json:
        print_json([{"url": r.url, "cards": len(r.data.get("cards", [])), "stale": r.stale,
                     "generated": r.data.get("generated")} for r in results])
        return 0
    if not results:
        print("no registry URLs configured (give --cards URL or set YOLOHUB_CARDS)")
    for r in results:
        state = "cached copy (server unreachable)" if r.stale else "up to date"
        print(f"{r.url}: {len(r.data.get('cards', []))} card(s), index of "
              f"{r.data.get('generated')}, {state}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from hub.cards.search import search

    hits = search(" ".join(args.text), cards_dirs=open_cards(args))
    if args.json:
        print_json([dataclasses.asdict(h) for h in hits])
        return 0
    if not hits:
        print(f"no models match {' '.join(args.text)!r}")
        return 0
    rows = [("MODEL", "DATASET", "METRIC", "MATCHED", "SUMMARY")]
    for h in hits:
        metric = f"{h.metric} {h.claimed:g}" if h.metric and h.claimed is not None else (h.metric or "-")
        summary = (h.summary or "").strip()
        rows.append((h.id, h.dataset or "-", metric, ",".join(h.matched),
                     summary if len(summary) <= 60 else summary[:57] + "..."))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import threading

    from hub.assets.serve import serve_directory

    url, stop = serve_directory(args.directory, args.port, host=args.host)
    print(f"serving {args.directory} at {url}/ (Ctrl-C stops)", flush=True)
    if (args.directory / "index.json").is_file():
        print(f"registry: yolohub list --cards {url}/   catalog: {url}/index.html", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    print("stopped", file=sys.stderr)
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    from hub.assets.bundle import pack

    r = pack(args.names, out=args.output, cards_dirs=open_cards(args), offline=args.offline)
    if args.json:
        print_json(dataclasses.asdict(r))
    else:
        print(f"{r.path}: {', '.join(r.releases)} ({r.files} files, {r.bytes} bytes)")
    return 0


def cmd_unpack(args: argparse.Namespace) -> int:
    from hub.assets.bundle import unpack

    r = unpack(args.bundle)
    if args.json:
        print_json(dataclasses.asdict(r))
    else:
        print(f"installed {', '.join(r.releases)}: {len(r.assets)} verified checkpoint(s) in the "
              f"cache, cards in {r.cards[0].parent.parent if r.cards else '-'}")
    return 0


_port = ranged(int, 0, 65535, "a port number 0-65535")
