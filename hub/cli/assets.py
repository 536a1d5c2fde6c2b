"""``yolohub download``, ``verify``, ``cache ls|rm|prune``, ``publish`` and ``rehash``.

No MindSpore at import time: only ``publish``'s strict-load check imports it, inside the call.
Results go to stdout (``--json`` for machines); progress and log lines go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hub.cli.common import add_cards_option, add_json_option, open_cards, print_json
from hub.errors import InputDataError

WEAK_NOTE = "weak: the card pins only a sha256 prefix; `yolohub rehash {id}` pins the full hash"


def register(sub) -> None:
    p = sub.add_parser(
        "download",
        help="fetch a model's checkpoint into the cache and verify it",
        description="Resolve NAME (or NAME@VERSION), fetch its checkpoint into the cache (resuming "
        "an interrupted transfer), verify its sha256 and print the file's path. A cached, "
        "verified file is returned without any network access.",
    )
    p.add_argument("name", help="model name or name@version")
    p.add_argument("--force", action="store_true", help="download again even if cached")
    p.add_argument("--offline", action="store_true", default=None,
                   help="never open a network connection (like YOLOHUB_OFFLINE=1)")
    p.add_argument("--format", dest="file_format", metavar="FORMAT",
                   help="fetch this version's asset of another format (onnx, mindir) instead of "
                   "its checkpoint")
    add_cards_option(p)
    add_json_option(p)
    p.set_defaults(func=cmd_download)

    p = sub.add_parser(
        "verify",
        help="re-check cached checkpoints against their cards",
        description="Check cached files. By default a file whose size, mtime and inode match its "
        "verification record is trusted without re-reading it; --deep re-hashes every file. "
        "Without names (or with --all) every cached file is checked. Exit status 1 if any file "
        "is missing or does not match.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="model name or name@version")
    p.add_argument("--all", action="store_true", help="check every file in the cache")
    p.add_argument("--deep", action="store_true", help="re-hash files instead of trusting records")
    add_cards_option(p)
    add_json_option(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("cache", help="list or clean the checkpoint cache")
    csub = p.add_subparsers(dest="cache_command", metavar="ACTION")
    csub.required = True
    q = csub.add_parser("ls", help="list cached files, owners, partial transfers, quarantine")
    add_json_option(q)
    q.set_defaults(func=cmd_cache_ls)
    q = csub.add_parser("rm", help="remove a model's checkpoint (kept while other cards use it)")
    q.add_argument("name", help="model name or name@version")
    add_cards_option(q)
    add_json_option(q)
    q.set_defaults(func=cmd_cache_rm)
    q = csub.add_parser(
        "prune",
        help="delete unreferenced files, idle partial transfers, quarantined files and "
        "compiled graphs of other MindSpore versions",
    )
    q.add_argument("--compiled", action="store_true",
                   help="also delete this MindSpore version's compiled graphs (the compile cache)")
    q.add_argument("--partial-age", type=float, default=0.0, metavar="SECONDS",
                   help="keep partial transfers younger than this (default: remove all idle ones)")
    add_json_option(q)
    q.set_defaults(func=cmd_cache_prune)

    p = sub.add_parser(
        "publish",
        help="copy a checkpoint into an asset store and write a card for it",
        description="Hash CHECKPOINT, prove it loads strictly into ARCH, copy it into the store "
        "(a directory any static HTTP server can serve) and write a schema-valid card into the "
        "registry directory. --base-url is the URL the store is served at; without it the card "
        "links to the file with a file:// URL. An existing NAME@VERSION is never overwritten "
        "without --force. The store is append-only: publish never deletes or replaces a file "
        "in it. With --asset FILE --name NAME[@VERSION], an exported .onnx/.mindir file is "
        "verified against that card's network and added to it as another asset of the same "
        "version.",
    )
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", nargs="?")
    p.add_argument("--name", help="model name of the new card (required; with --asset: the "
                   "NAME[@VERSION] of the card to add the file to)")
    p.add_argument("--arch", help="registered architecture, e.g. yolov3_darknet53 (required "
                   "without --asset)")
    p.add_argument("--version", default="1.0", help="version of this checkpoint (default 1.0)")
    p.add_argument("--registry", type=Path, metavar="DIR",
                   help="card directory to write into (use it later with --cards DIR); required "
                   "without --asset")
    p.add_argument("--store", type=Path, metavar="DIR",
                   help="asset store directory to copy the checkpoint into (required without "
                   "--asset; with it, defaults to the store of the version's checkpoint)")
    p.add_argument("--asset", type=Path, metavar="FILE",
                   help="add this exported .onnx/.mindir file to the existing card --name as "
                   "another asset of the same version (verified against the card's network "
                   "first)")
    p.add_argument("--batch", type=int, metavar="N",
                   help="with --asset: the batch a MindIR file was exported for (default 1)")
    p.add_argument("--base-url", metavar="URL",
                   help="URL at which the store directory is served (https, or http on loopback)")
    for arg, kind in _arch_arg_types().items():  # --num-classes, --img-size, ...
        p.add_argument(f"--{arg.replace('_', '-')}", dest=arg, type=kind,
                       help=f"architecture argument {arg} (default: the architecture's)")
    p.add_argument("--class-names", metavar="NAMES|FILE",
                   help="comma-separated class names, a file with one name per line, or coco80")
    p.add_argument("--protocol", action="append", default=[], metavar="KEY=VALUE",
                   help="eval-protocol field, e.g. dataset=coco2017, metric=AP, img-size=640 "
                   "(repeatable)")
    p.add_argument("--claimed", type=float, help="metric value this checkpoint scored")
    p.add_argument("--recipe", type=Path, metavar="FILE", help="YAML/JSON training recipe to embed")
    p.add_argument("--summary", help="one-line description for the card")
    p.add_argument("--author", help="the card's author (a person or team)")
    p.add_argument("--license", help="the checkpoint's license, e.g. Apache-2.0")
    p.add_argument("--force", action="store_true",
                   help="replace the registry's card of NAME@VERSION (store files are never "
                   "replaced; `yolohub store gc` removes unreferenced ones)")
    p.add_argument("--no-check-load", dest="check_load", action="store_false",
                   help="skip the strict-load check (not recommended)")
    add_json_option(p)
    p.set_defaults(func=cmd_publish, parser=p)

    p = sub.add_parser(
        "rehash",
        help="write the full sha256 into a card that pins only a prefix",
        description="Download (or find in the cache) NAME's checkpoint, verified against the "
        "card's sha256 prefix, then write the full sha256 and size into the card file.",
    )
    p.add_argument("name", help="model name or name@version")
    p.add_argument("--offline", action="store_true", default=None,
                   help="only use the cache (like YOLOHUB_OFFLINE=1)")
    add_cards_option(p)
    add_json_option(p)
    p.set_defaults(func=cmd_rehash)


def _size(n: int | None) -> str:
    from hub.progress import human_bytes

    return "?" if n is None else human_bytes(n)


# --- download / verify / rehash ----------------------------------------------------------------


def cmd_download(args: argparse.Namespace) -> int:
    from hub.assets.files import fetch_release

    release = open_cards(args).resolve(args.name)
    if getattr(args, "file_format", None):
        release = release.with_format(args.file_format)
    r = fetch_release(release, force=args.force, offline=args.offline)
    if args.json:
        print_json({
            "id": release.id, "format": release.asset.file_format, "path": str(r.path), "sha256": r.sha256, "declared": r.declared,
            "weak": r.weak, "size": r.size, "from_cache": r.from_cache, "url": r.url,
            "transferred": r.transferred, "resumed_from": r.resumed_from,
        })
        return 0
    how = "from the cache" if r.from_cache else f"downloaded from {r.url}"
    if r.resumed_from:
        how += f", resumed at byte {r.resumed_from}"
    weak = f"; {WEAK_NOTE.format(id=release.id)}" if r.weak else ""
    print(f"{release.id}: {_size(r.size)} verified, sha256 {r.sha256} ({how}{weak})",
          file=sys.stderr)
    print(r.path)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from hub.assets.files import verify

    results = verify(args.names, all=args.all, deep=args.deep,
                     cards_dirs=open_cards(args) if args.names else args.cards)
    bad = [r for r in results if not r.ok]
    if args.json:
        print_json([
            {"label": r.label, "path": str(r.path) if r.path else None, "status": r.status,
             "method": r.method, "expected": r.expected, "actual": r.actual, "weak": r.weak,
             "size": r.size, "expected_size": r.expected_size, "detail": r.detail}
            for r in results
        ])
        return 1 if bad else 0
    if not results:
        print("the cache is empty: nothing to verify")
        return 0
    for r in results:
        print(("ok    " if r.ok else "FAIL  ") + r.describe())
    weak = sum(1 for r in results if r.ok and r.weak)
    note = f" ({weak} weak: prefix-only card hash)" if weak else ""
    print(f"{len(results) - len(bad)} ok{note}, {len(bad)} failed")
    return 1 if bad else 0


def cmd_rehash(args: argparse.Namespace) -> int:
    from hub.assets.files import rehash

    release = open_cards(args).resolve(args.name)
    before = release.asset.sha256
    card = rehash(release, offline=args.offline)
    asset = next(a for a in card.assets if a.version == release.asset.version)
    changed = asset.sha256 != before
    if args.json:
        print_json({"id": release.id, "card": str(card.path), "before": before,
                    "sha256": asset.sha256, "size": asset.size, "changed": changed})
        return 0
    if changed:
        print(f"{release.id}: {card.path} now pins sha256 {asset.sha256} ({asset.size} bytes; "
              f"was the prefix {before})")
    else:
        print(f"{release.id}: already pins the full sha256 {asset.sha256}; nothing changed")
    return 0


# --- cache -------------------------------------------------------------------------------------


def cmd_cache_ls(args: argparse.Namespace) -> int:
    from hub.assets.cache import listing
    from hub.assets.integrity import is_weak

    lst = listing()
    if args.json:
        print_json(lst.to_dict())
        return 0
    print(f"cache {lst.root}: {len(lst.blobs)} file(s), {_size(lst.total_bytes)} in total")
    if lst.blobs:
        rows = [("SHA256", "SIZE", "STATE", "USED BY")]
        for b in lst.blobs:
            weak = " (weak)" if b.declared and all(is_weak(d) for d in b.declared) else ""
            rows.append((b.sha256[:16], _size(b.size), b.state + weak,
                         ", ".join(b.owners) or "- (unreferenced: `yolohub cache prune`)"))
        _table(rows)
    for p in lst.partials:
        print(f"partial  {p.path.name}  {_size(p.size)}  from {p.url or '?'}  "
              f"(modified {time.strftime('%Y-%m-%d %H:%M', time.localtime(p.modified))}; "
              "`yolohub download` resumes it)")
    for q in lst.quarantined:
        print(f"quarantined  {q}")
    return 0


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _print_removal(removal, verb: str, json_out: bool) -> None:
    if json_out:
        print_json(removal.to_dict())
        return
    for p in removal.removed:
        print(f"removed  {p}")
    for k in removal.kept:
        print(f"kept     {k}")
    print(f"{verb}: {len(removal.removed)} path(s) removed, {_size(removal.freed)} freed")


def cmd_cache_rm(args: argparse.Namespace) -> int:
    from hub.assets.cleanup import remove_asset

    release = open_cards(args).resolve(args.name)
    removal = remove_asset(release.asset, owner=release.id)
    _print_removal(removal, f"cache rm {release.id}", args.json)
    return 0


def cmd_cache_prune(args: argparse.Namespace) -> int:
    from hub.assets.cleanup import prune
    from hub.tasks import compile_cache

    # the file cache, then compiled graphs of other MindSpore versions (--compiled: all of them)
    removal = prune(partial_age=args.partial_age)
    removal += compile_cache.prune(everything=args.compiled)
    _print_removal(removal, "cache prune", args.json)
    return 0


# --- publish -----------------------------------------------------------------------------------


def _read_small_text(option: str, path: Path) -> str:
    from hub.cards.card import MAX_CARD_BYTES

    try:
        if path.stat().st_size > MAX_CARD_BYTES:
            raise InputDataError(f"{option} {path}: expected at most {MAX_CARD_BYTES} bytes, "
                                 f"found {path.stat().st_size}")
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputDataError(f"{option} {path}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputDataError(f"{option} {path}: expected UTF-8 text") from None


def _class_names(value: str | None):
    if value is None or value == "coco80":
        return value
    path = Path(value)
    if path.is_file():
        text = _read_small_text("--class-names", path)
        return [n for n in (line.strip() for line in text.splitlines()) if n]
    return [n.strip() for n in value.split(",")]


def _yaml_value(option: str, text: str, file: str):
    from hub.cards.card import load_yaml
    from hub.errors import CardValidationError

    try:
        return load_yaml(text, file=file)
    except CardValidationError as exc:
        problem = exc.findings[0].message if exc.findings else "unreadable"
        raise InputDataError(f"{option}: {problem}") from None


def _protocol(items: list[str]) -> dict | None:
    if not items:
        return None
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputDataError(f"--protocol {item!r}: expected KEY=VALUE, e.g. metric=AP")
        out[key.strip()] = (_yaml_value(f"--protocol {item!r}", value, "--protocol")
                            if value.strip() else value)
    return out


def _recipe(path: Path | None) -> dict | None:
    if path is None:
        return None
    data = _yaml_value(f"--recipe {path}", _read_small_text("--recipe", path), str(path))
    if not isinstance(data, dict):
        raise InputDataError(f"--recipe {path}: expected a mapping of settings")
    return json.loads(json.dumps(data, default=str))


def _arch_arg_types() -> dict[str, type]:
    """The registered architectures' builder arguments (yolomodels owns their names)."""
    from yolomodels.registry import arg_types

    return arg_types()


def cmd_publish(args: argparse.Namespace) -> int:
    from hub.assets.publish import publish

    if args.asset is not None:
        from hub.cli.export import publish_asset_command

        return publish_asset_command(args)
    missing = [flag for flag, v in (("CHECKPOINT", args.checkpoint), ("--name", args.name),
                                    ("--arch", args.arch), ("--registry", args.registry),
                                    ("--store", args.store)) if v is None]
    if missing:
        args.parser.error(f"the following arguments are required: {', '.join(missing)}")

    arch_args = {k: getattr(args, k) for k in _arch_arg_types()
                 if getattr(args, k, None) is not None}
    r = publish(
        args.checkpoint, name=args.name, arch=args.arch, registry=args.registry,
        store=args.store, version=args.version, base_url=args.base_url, arch_args=arch_args,
        class_names=_class_names(args.class_names), eval_protocol=_protocol(args.protocol),
        claimed=args.claimed, recipe=_recipe(args.recipe), summary=args.summary,
        author=args.author, license=args.license, force=args.force, check_load=args.check_load,
    )
    load = r.load_report.describe() if r.load_report is not None else "not checked"
    if args.json:
        print_json({"id": f"{r.card.name}@{r.card.version}", "card": str(r.card_path),
                    "asset": str(r.asset_path), "url": r.url, "sha256": r.sha256,
                    "size": r.size, "replaced": r.replaced, "load_check": load})
        return 0
    print(f"published {r.card.name}@{r.card.version}" + (" (replaced)" if r.replaced else ""))
    print(f"  card    {r.card_path}")
    print(f"  asset   {r.asset_path}")
    print(f"  link    {r.url}")
    print(f"  sha256  {r.sha256} ({r.size} bytes)")
    print(f"  load    {load}")
    print(f"use it with: yolohub download {r.card.name}@{r.card.version} --cards {args.registry}")
    return 0
