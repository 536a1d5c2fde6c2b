"""A static HTML catalog of a registry: ``DIR/index.html`` and one page per card beside it.

Plain HTML and inline CSS, no JavaScript and nothing fetched from elsewhere, so it works from
``file://`` and from any static host (the same one that serves ``index.json``).  Each card's page
sits next to its card file (``my_v3/1.0.md`` -> ``my_v3/1.0.html``) so relative links and images
in the card's markdown body resolve as they do beside the card.  A precision-recall plot named
``<card stem>.pr.png`` (or ``.svg``) next to the card is shown with its eval results.

Pages are rewritten only when their content key (card sha256, index entry, catalog version)
changes; raw HTML in card bodies is escaped, not rendered.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CATALOG_VERSION = "1"
_KEY = re.compile(r'<meta name="yolohub-page" content="([0-9a-f]{64})">')

_CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#fff; --alt:#f6f8fa; --ok:#1a7f37;
        --bad:#cf222e; --accent:#0969da; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
       background: var(--bg); margin: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
header.top { border-bottom: 1px solid var(--line); padding-bottom: 12px; margin-bottom: 20px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 28px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.muted { color: var(--muted); }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { background: var(--alt); font-weight: 600; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fbfcfd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
                   font-size: 13px; }
pre { background: var(--alt); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
      overflow-x: auto; }
.ok { color: var(--ok); font-weight: 600; } .bad { color: var(--bad); font-weight: 600; }
.tag { display: inline-block; background: #ddf4ff; color: #0550ae; border-radius: 10px;
       padding: 0 8px; margin: 0 4px 2px 0; font-size: 12px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.body img { max-width: 100%; }
.body h1 { font-size: 22px; } .body h2 { font-size: 17px; }
.plot img { max-width: 560px; width: 100%; border: 1px solid var(--line); }
footer { margin-top: 36px; color: var(--muted); font-size: 13px; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _size(n: int | None) -> str:
    from hub.progress import human_bytes
    return human_bytes(n) if n else "?"


def _page(title: str, body: str, *, key: str | None = None, up: str = "") -> str:
    meta_key = f'<meta name="yolohub-page" content="{key}">\n' if key else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"script-src 'none'; "
        "object-src 'none'\">\n"
        f"{meta_key}<title>{_e(title)}</title>\n<link rel=\"icon\" href=\"data:,\">\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n<main>\n{body}\n"
        f"<footer>Static catalog written by yolohub; machine-readable: "
        f"<a href=\"{up}index.json\">index.json</a>.</footer>\n</main>\n</body>\n</html>\n"
    )


def render_markdown(text: str) -> str:
    """CommonMark (plus tables) to HTML; raw HTML in the source is escaped, and ``javascript:``
    links are not made, so a card cannot put script into the catalog."""
    return _markdown().render(text)


@functools.lru_cache(maxsize=1)
def _markdown():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table")


def page_path(rel: str) -> str:
    """The catalog page of the card at ``rel`` (relative to the registry root)."""
    return rel[: -len(".md")] + ".html" if rel.endswith(".md") else rel + ".html"


def _reproduced(entry: Mapping, version: str) -> tuple[float | None, str | None]:
    """The latest eval result for ``version`` in the card's metric: (value, date)."""
    metric = entry.get("metric")
    best = None
    for r in entry.get("eval-results") or []:
        if not isinstance(r, Mapping) or r.get("metric") != metric:
            continue
        if r.get("version") not in (None, version):
            continue
        if best is None or str(r.get("date", "")) >= str(best.get("date", "")):
            best = r
    return (best.get("value"), best.get("date")) if best else (None, None)


def _verdict(claimed, measured, tolerance) -> str:
    if claimed is None or measured is None:
        return ""
    tol = 0.5 if tolerance is None else float(tolerance)
    ok = abs(float(measured) - float(claimed)) <= tol + 1e-9
    return f' <span class="{"ok" if ok else "bad"}">{"✓" if ok else "✗"}</span>'


def _num(v) -> str:
    return "–" if v is None else f"{float(v):.2f}".rstrip("0").rstrip(".")


def index_page(index: Mapping, *, url: str | None = None) -> str:
    cards = index.get("cards", [])
    rows = []
    releases = 0
    for e in cards:
        proto = e.get("eval-protocol") or {}
        href = _e(page_path(e["path"]))
        for i, a in enumerate(e["assets"]):
            releases += 1
            measured, _ = _reproduced(e, a["version"])
            verdict = _verdict(a.get("claimed"), measured, proto.get("tolerance"))
            name_cell = f'<a href="{href}">{_e(e["name"])}</a>' if i == 0 else ""
            rows.append(
                "<tr>"
                f"<td>{name_cell}</td>"
                f"<td class=\"mono\">{_e(a['version'])}</td>"
                f"<td>{_e(e.get('dataset') or '–')}</td>"
                f"<td>{_e(e.get('metric') or '–')}</td>"
                f"<td class=\"num\">{_num(a.get('claimed'))}</td>"
                f"<td class=\"num\">{_num(measured)}{verdict}</td>"
                f"<td class=\"num\">{_size(a.get('size'))}</td>"
                f"<td class=\"mono\">{_e(a['sha256'][:12])}</td>"
                f"<td>{_e(e.get('license') or '–')}</td>"
                f"<td class=\"mono\">{_e(str(e.get('published') or '')[:10])}</td>"
                "</tr>"
            )
    where = f" at <code>{_e(url)}</code>" if url else ""
    invalid = index.get("invalid") or []
    bad = (
        f'<p class="bad">{len(invalid)} card file(s) failed validation and are not listed: '
        + ", ".join(f"<code>{_e(x['path'])}</code>" for x in invalid[:20])
        + "</p>"
        if invalid
        else ""
    )
    use = url or "<registry URL>"
    body = (
        '<header class="top"><h1>Model registry</h1>'
        f'<div class="muted">{len(cards)} card(s), {releases} release(s){where}; index generated '
        f"{_e(index.get('generated'))}</div></header>\n{bad}"
        "<table>\n<thead><tr><th>Model</th><th>Version</th><th>Dataset</th><th>Metric</th>"
        "<th>Claimed</th><th>Reproduced</th><th>Size</th><th>sha256</th><th>License</th>"
        "<th>Date</th></tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>\n"
        "<h2>Use this registry</h2>\n"
        f"<pre>export YOLOHUB_CARDS={_e(use)}\nyolohub list\nyolohub search TEXT</pre>\n"
    )
    return _page("Model registry", body)


def card_page(entry: Mapping, body_md: str, *, plot: str | None = None, url: str | None = None,
              key: str | None = None) -> str:
    depth = entry["path"].count("/")
    up = "../" * depth
    name = entry["name"]
    proto = entry.get("eval-protocol") or {}
    tags = "".join(f'<span class="tag">{_e(t)}</span>' for t in entry.get("tags") or [])
    card_file = entry["path"].rsplit("/", 1)[-1]
    facts = [
        ("versions", ", ".join(entry["versions"])),
        ("model-version", entry.get("model-version")),
        ("architecture", entry.get("architecture")),
        ("arguments", ", ".join(f"{k}={v}" for k, v in (entry.get("architecture-args") or {}).items())),
        ("dataset", entry.get("dataset")),
        ("metric", entry.get("metric")),
        ("protocol", ", ".join(f"{k}={v}" for k, v in proto.items())),
        ("module-type", entry.get("module-type")),
        ("license", entry.get("license")),
        ("author", entry.get("author")),
        ("mindspore-version", entry.get("mindspore-version")),
        ("published", entry.get("published")),
    ]
    facts_html = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts if v not in (None, ""))
    facts_html += (
        f'<dt>card file</dt><dd><a href="{_e(card_file)}">{_e(card_file)}</a> '
        f'<span class="mono muted">sha256 {_e(entry["sha256"])}</span></dd>'
    )
    assets = []
    for a in entry["assets"]:
        measured, _ = _reproduced(entry, a["version"])
        links = "<br>".join(f'<a href="{_e(x)}">{_e(x)}</a>' for x in a.get("links", [])[:3])
        assets.append(
            f"<tr><td class=\"mono\">{_e(a['version'])}</td><td>{_e(a['file-format'])}</td>"
            f"<td class=\"num\">{_size(a.get('size'))}</td>"
            f"<td class=\"num\">{_num(a.get('claimed'))}</td>"
            f"<td class=\"num\">{_num(measured)}"
            f"{_verdict(a.get('claimed'), measured, proto.get('tolerance'))}</td>"
            f"<td class=\"mono\">{_e(a['sha256'])}</td><td>{links}</td></tr>"
        )
    results = []
    for r in entry.get("eval-results") or []:
        if not isinstance(r, Mapping):
            continue
        results.append(
            f"<tr><td>{_e(r.get('date'))}</td><td class=\"mono\">{_e(r.get('version') or '')}</td>"
            f"<td>{_e(r.get('dataset') or '')} {_e(r.get('split') or '')}</td>"
            f"<td>{_e(r.get('metric'))}</td><td class=\"num\">{_num(r.get('value'))}</td>"
            f"<td class=\"mono\">{_e(str(r.get('weights-sha256') or '')[:12])}</td></tr>"
        )
    results_html = (
        "<table><thead><tr><th>Date</th><th>Version</th><th>Data</th><th>Metric</th>"
        "<th>Value</th><th>Weights</th></tr></thead><tbody>" + "".join(results) + "</tbody></table>"
        if results
        else '<p class="muted">No measured results recorded yet (<code>yolohub eval NAME '
        "--update-card</code> adds them).</p>"
    )
    if plot:
        results_html += (
            f'<p class="plot"><img src="{_e(plot)}" alt="precision-recall curve of {_e(name)}"></p>'
        )
    default = entry["versions"][0] if entry["versions"] else "VERSION"
    source = url or "<registry URL>"
    snippet = (
        "import hub\n"
        f'net = hub.load("{name}", cards_dirs=["{source}"])\n'
        f'path = hub.download("{name}@{default}", cards_dirs=["{source}"])\n\n'
        f"yolohub download {name}@{default} --cards {source}"
    )
    body = (
        f'<p><a href="{up}index.html">← all models</a></p>\n'
        f'<header class="top"><h1>{_e(name)}</h1>'
        f'<div class="muted">{_e(entry.get("summary") or "")}</div><div>{tags}</div></header>\n'
        f'<h2>Use</h2>\n<pre>{_e(snippet)}</pre>\n'
        f'<h2>Facts</h2>\n<dl class="facts">{facts_html}</dl>\n'
        "<h2>Files</h2>\n<table><thead><tr><th>Version</th><th>Format</th><th>Size</th>"
        "<th>Claimed</th><th>Reproduced</th><th>sha256</th><th>Links</th></tr></thead><tbody>"
        + "".join(assets) + "</tbody></table>\n"
        f"<h2>Evaluation</h2>\n{results_html}\n"
        f'<h2>Card</h2>\n<div class="body">{render_markdown(body_md)}</div>\n'
    )
    return _page(f"{name} · model registry", body, key=key, up=up)


def _body_of(path: Path) -> str:
    from hub.cards.frontmatter import read_card_text, split_card

    try:
        return split_card(read_card_text(path), str(path))[3]
    except Exception:  # the index only lists valid cards; a file changed since is shown empty
        return ""


def _plot_for(root: Path, rel: str) -> str | None:
    stem = rel[: -len(".md")] if rel.endswith(".md") else rel
    for ext in (".pr.png", ".pr.svg"):
        if (root / (stem + ext)).is_file():
            return (stem + ext).rsplit("/", 1)[-1]
    return None


def _existing_key(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(2048)
    except OSError:
        return None
    m = _KEY.search(head)
    return m.group(1) if m else None


def write_catalog(root: str | os.PathLike, index: Mapping, *, url: str | None = None,
                  progress: bool | None = None) -> Path:
    """Write ``root/index.html`` and the card pages that changed; return the index page."""
    from hub.fileio import write_atomic
    root = Path(root)
    state_file = root / ".catalog-state.json"
    try:
        known = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    pages: dict[str, str] = {}
    for e in index.get("cards", []):
        rel = page_path(e["path"])
        plot = _plot_for(root, e["path"])
        key = hashlib.sha256(
            json.dumps([CATALOG_VERSION, e, url, plot], sort_keys=True, default=str).encode()
        ).hexdigest()
        pages[rel] = key
        target = root / rel
        if known.get(rel) == key and target.is_file():
            continue
        if _existing_key(target) == key:
            continue
        text = card_page(e, _body_of(root / e["path"]), plot=plot, url=url, key=key)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, text)
    # pages of cards that are gone (only pages this module wrote: they carry its marker)
    for rel in set(known) - set(pages):
        page = root / rel
        if _existing_key(page):
            page.unlink(missing_ok=True)
    write_atomic(root / "index.html", index_page(index, url=url))
    write_atomic(state_file, json.dumps(pages, separators=(",", ":")))
    return root / "index.html"
