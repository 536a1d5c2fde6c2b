"""MindSpore Hub parity: which cards of MindSpore Hub's own catalog its checker accepts, and
whether yolohub accepts the same cards.

MindSpore Hub's checker is re-stated here from its documented behaviour (the rules, not its code):
the front-matter is the text between the first two lines starting with '---' (exactly two such
lines); a line containing 'evaluation: -' has its dashes replaced by 'no'; YAML with PyYAML's
full loader; required fields backbone-name, module-type, fine-tunable, model-version, author,
update-time, repo-link, user-id, used-for, mindspore-version, license, summary; fine-tunable a
bool; module-type's part before the first '-' one of its families; train-dataset (when given)
'_'-separated names from its dataset list; used-for '/'-separated from inference,
extract-feature, transfer-learning; every asset with asset-link, asset-sha256 and a file-format
among air, ckpt, onnx, mindir, mslite; accuracy a number, allow-cache-ckpt a bool; no ':' in any
value except repo-link, asset and evaluation; no markdown heading ending in ':'; a ``*_cn.md``
card is judged by its English sibling.  Its network checks (links must answer) are skipped.

Usage: python bench/mshub_parity.py PATH/TO/mshub_res/assets [DATASETS.py]
(DATASETS.py: MindSpore Hub's ``_utils/valid_dataset.py``, which defines ``_valid_dataset``.)
Writes bench/results/mshub-parity.json and .md.
"""

from __future__ import annotations

import collections
import json
import numbers
import re
import runpy
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"

FAMILIES = {"gnn", "rl", "audio", "cv", "cvtmodel", "nlp", "recommend", "cross", "hpc", "mm", "other"}
FORMATS = {"air", "ckpt", "onnx", "mindir", "mslite"}
USES = {"inference", "extract-feature", "transfer-learning"}
REQUIRED = ["backbone-name", "module-type", "fine-tunable", "model-version", "author",
            "update-time", "repo-link", "user-id", "used-for", "mindspore-version", "license",
            "summary"]


def mshub_verdict(path: Path, datasets: set[str]) -> str | None:
    """None when MindSpore Hub's checker (as re-stated above) accepts the card, else why not."""
    if path.name[-5:-3] == "cn":
        path = path.with_name(path.name[:-6] + path.name[-3:])
        if not path.exists():
            return "English sibling missing"
    header, body, fences = [], [], 0
    reading = False
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True):
        if line.startswith("---"):
            reading = not reading
            fences += 1
            continue
        if "evaluation: -" in line:
            line = line.replace("-", "no")
        (header if reading else body).append(line)
    if fences != 2:
        return "not exactly two '---' lines"
    try:
        h = yaml.load("".join(header), Loader=yaml.FullLoader)
    except yaml.YAMLError:
        return "invalid YAML"
    if not h or not isinstance(h, dict):
        return "empty header"
    for f in REQUIRED:
        if f not in h:
            return f"missing {f}"
    if not isinstance(h["fine-tunable"], bool):
        return "fine-tunable not a bool"
    if not isinstance(h["repo-link"], str):
        return "repo-link not a link"
    if h.get("train-dataset"):
        if any(d not in datasets for d in str(h["train-dataset"]).split("_")):
            return f"train-dataset {h['train-dataset']!r} not in its list"
    if any(u.lower() not in USES for u in str(h["used-for"]).split("/")):
        return "used-for not in its list"
    if str(h["module-type"]).split("-", 1)[0].lower() not in FAMILIES:
        return "module-type not in its list"
    for a in h.get("asset") or []:
        if not isinstance(a, dict) or any(k not in a for k in ("asset-link", "asset-sha256",
                                                                "file-format")):
            return "asset entry incomplete"
        if str(a["file-format"]).lower() not in FORMATS:
            return "file-format not in its list"
    if "accuracy" in h and not isinstance(h["accuracy"], numbers.Number):
        return "accuracy not a number"
    if "allow-cache-ckpt" in h and not isinstance(h["allow-cache-ckpt"], bool):
        return "allow-cache-ckpt not a bool"
    for k, v in h.items():
        if k not in ("repo-link", "asset", "evaluation") and ":" in str(v):
            return f"':' in {k}"
    in_code = False
    for line in body:
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code and re.match(r"^#{1,6}\s", line) and line.rstrip().endswith(":"):
            return "heading ends with ':'"
    return None


def main() -> None:
    from hub.cards.card import load_card
    from hub.cards.catalog import is_card_name
    from hub.errors import CardValidationError

    assets = Path(sys.argv[1])
    dataset_file = Path(sys.argv[2]) if len(sys.argv) > 2 else (
        assets.parents[1] / "mindspore_hub" / "_utils" / "valid_dataset.py")
    datasets = set(runpy.run_path(str(dataset_file))["_valid_dataset"])
    # README files are not cards; x_cn.md translations are judged by x.md on both sides
    files = sorted(p for p in assets.rglob("*.md")
                   if p.name not in ("README_CN.md", "README.en.md") and is_card_name(p))
    both = theirs_only = ours_only = neither = 0
    why_not_ours: collections.Counter = collections.Counter()
    examples: dict[str, str] = {}
    for p in files:
        theirs = mshub_verdict(p, datasets) is None
        try:
            load_card(p)
            ours, reason = True, ""
        except CardValidationError as exc:
            f = exc.findings[0]
            ours, reason = False, f"{f.field or '(file)'}: {re.sub(r'found .*', 'found ...', f.message)[:110]}"
        if theirs and ours:
            both += 1
        elif theirs:
            theirs_only += 1
            why_not_ours[reason] += 1
            examples.setdefault(reason, str(p.relative_to(assets)))
        elif ours:
            ours_only += 1
        else:
            neither += 1
    result = {
        "cards": len(files),
        "mshub_accepts": both + theirs_only,
        "yolohub_accepts": both + ours_only,
        "both_accept": both,
        "only_mshub_accepts": theirs_only,
        "only_yolohub_accepts": ours_only,
        "neither": neither,
        "why_yolohub_refuses_what_mshub_accepts": [
            {"count": n, "reason": r, "example": examples[r]} for r, n in why_not_ours.most_common()
        ],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "mshub-parity.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in result.items() if not isinstance(v, list)]
    lines += ["", "| cards | why yolohub refuses a card MindSpore Hub accepts | example |",
              "|---|---|---|"]
    lines += [f"| {x['count']} | {x['reason']} | `{x['example']}` |"
              for x in result["why_yolohub_refuses_what_mshub_accepts"]]
    (RESULTS / "mshub-parity.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
