"""``yolohub list``, ``yolohub info`` and ``yolohub validate``: cards only, no MindSpore."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from hub.cli.common import add_cards_option, add_json_option, open_cards, print_json


def register(sub) -> None:
    p = sub.add_parser(
        "list",
        help="list the models of every card source",
        description="List every model@version the registry sees (built-in cards, YOLOHUB_CARDS, "
        "--cards), one per line with the id first (`awk '{print $1}'` gives the ids). DEFAULT "
        "'yes' marks the version an unpinned name resolves to.",
    )
    p.add_argument("pattern", nargs="?", help="shell pattern or substring of the model name")
    add_cards_option(p)
    add_json_option(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="show one model's card details")
    p.add_argument("name", help="model name or name@version")
    add_cards_option(p)
    add_json_option(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "validate",
        help="check card files against the schema",
        description="Validate card files (or every *.md below a directory) and print one verdict "
        "per file with all of its problems. Exit status 1 if any card is invalid.",
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    add_json_option(p)
    p.set_defaults(func=cmd_validate)


def _size(n: int | None) -> str:
    from hub.progress import human_bytes
    return "?" if n is None else human_bytes(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "?"


def cmd_list(args: argparse.Namespace) -> int:
    from hub.cards.listing import list_models

    rows = list_models(args.pattern, cards_dirs=open_cards(args))
    if args.json:
        print_json([dataclasses.asdict(r) for r in rows])
        return 0
    if not rows:
        print("no models match" + (f" {args.pattern!r}" if args.pattern else ""))
        return 0
    table = [("MODEL", "DEFAULT", "DATASET", "METRIC", "SIZE", "CACHED", "SOURCE")]
    for r in rows:
        metric = (f"{r.metric} {claim_text(r.claimed)}" if r.claimed is not None
                  else (r.metric or "-"))
        table.append(
            (
                r.id,
                "yes" if r.default else "no",
                r.dataset or "-",
                metric,
                _size(r.size),
                ("yes" if r.cached else "no") + (" (weak hash)" if r.weak_hash and r.cached else ""),
                r.source,
            )
        )
    _print_table(table)
    return 0


def claim_text(value: float) -> str:
    """A claimed metric as cards write it: 1.0 stays "1.0" (not "1"), 36.91 stays "36.91"."""
    text = f"{value:.4f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def cmd_info(args: argparse.Namespace) -> int:
    from hub.cards.listing import info

    i = info(args.name, cards_dirs=open_cards(args))
    if args.json:
        print_json(dataclasses.asdict(i))
        return 0
    s = i.summary
    hash_note = (
        " (weak: only a prefix is known; 'yolohub rehash' records the full hash after a verified "
        "download)"
        if s.weak_hash
        else ""
    )
    lines = [
        ("model", f"{s.id}" + (" (default version)" if s.default else "")),
        ("versions", ", ".join(i.versions)),
        ("summary", i.summary_text or "-"),
        ("architecture", f"{s.architecture} {i.architecture_args}" if s.architecture else "- (not loadable)"),
        ("classes", str(i.class_count) if i.class_count else "-"),
        ("dataset", s.dataset or "-"),
        ("claimed", f"{s.metric} {claim_text(s.claimed)}" if s.claimed is not None else "-"),
        *([("evaluation", f"{i.evaluation} (free text, as the card wrote it)")]
          if isinstance(i.evaluation, str) and i.evaluation.strip() not in ("", "-") else []),
        ("protocol", ", ".join(f"{k}={v}" for k, v in (i.eval_protocol or {}).items()) or "-"),
        ("sha256", i.sha256 + hash_note),
        ("size", _size(s.size)),
        ("cached", "yes" if s.cached else "no"),
        ("hardware", i.hardware or "-"),
        ("card", f"{s.path} ({s.source})"),
    ]
    lines += [("link" if n == 0 else "mirror", link) for n, link in enumerate(i.links)]
    lines += [("shadows", p) for p in i.shadowed]
    lines += [
        ("export", f"{e['format']} input {'x'.join(map(str, e['input_shape'])) or '?'}, "
                   f"{_size(e['size'])}, sha256 {e['sha256'][:16]}... "
                   f"(`yolohub download {s.id} --format {e['format']}`)")
        for e in i.exports
    ]
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k.ljust(width)}  {v}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from hub.cards.validate import validate_paths

    results = validate_paths(args.paths)
    bad = [r for r in results if not r.ok]
    if args.json:
        print_json([dataclasses.asdict(r) for r in results])
    else:
        for r in results:
            print(f"{'ok  ' if r.ok else 'FAIL'}  {r.file}")
            for f in r.findings:
                where = f"line {f.line}" if f.line else "file"
                field = f" {f.field}:" if f.field else ""
                print(f"      {where}:{field} {f.message}")
        print(f"{len(results) - len(bad)} valid, {len(bad)} invalid")
    return 1 if bad else 0
