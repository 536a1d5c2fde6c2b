"""Our evaluation against MindYOLO 0.5.0's own ``test.py``: same checkpoint, same images.

Run by hand (it needs MindYOLO, which yolohub never imports)::

    .venv/bin/pip install --no-deps mindyolo==0.5.0
    git clone -b v0.5.0 https://github.com/mindspore-lab/mindyolo SRC   # test.py + configs/
    .venv/bin/python bench/mindyolo_eval_parity.py --ckpt W.ckpt --data DIR --mindyolo-src SRC

``--data`` is a dataset directory with a ``val2017`` split (``yolohub make-dataset`` or the
demo's ``demo-out/data``); ``--ckpt`` a scaled-down YOLOv3 trained on it (the demo's).  Two
copies of the split are evaluated: the images as they are, and the same images resized in
turn to each of ``--sizes`` (boxes scaled with them), so that evaluation has to resize.
MindYOLO's ``test.py`` runs unchanged in a subprocess; two spies on pycocotools record the
result list it hands to ``COCO.loadRes`` and the statistics ``COCOeval.summarize`` computes.
Writes ``bench/results/eval_parity.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

DRIVER = """
import json, runpy, sys
from pycocotools import coco, cocoeval
out = {out!r}
load_res, summarize = coco.COCO.loadRes, cocoeval.COCOeval.summarize
def spy_load_res(self, res):
    json.dump(res, open(out + "/records.json", "w"))
    return load_res(self, res)
def spy_summarize(self):
    summarize(self)
    json.dump([float(s) for s in self.stats], open(out + "/stats.json", "w"))
coco.COCO.loadRes, cocoeval.COCOeval.summarize = spy_load_res, spy_summarize
sys.argv = ["test.py"] + {argv!r}
runpy.run_path({test_py!r}, run_name="__main__")
"""


def copy_split(src: Path, dst: Path, sizes: list[tuple[int, int]] | None) -> Path:
    """``src``'s val2017 split in MindYOLO's layout under ``dst`` (whose path says "coco", so
    test.py maps classes through COCO's 80->91 ids, which for ids 1..K is ours)."""
    import cv2

    if dst.exists():
        shutil.rmtree(dst)
    (dst / "annotations").mkdir(parents=True)
    gt = json.loads((src / "annotations" / "instances_val2017.json").read_text())
    img_dir, lbl_dir = dst / "images" / "val2017", dst / "labels" / "val2017"
    img_dir.mkdir(parents=True)
    shutil.copytree(src / "labels" / "val2017", lbl_dir)  # normalised: valid at any size
    scale = {}
    for k, im in enumerate(gt["images"]):
        source = src / "images" / "val2017" / im["file_name"]
        if sizes:
            w, h = sizes[k % len(sizes)]
            img = cv2.imread(str(source))
            cv2.imwrite(str(img_dir / im["file_name"]), cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC))
            scale[im["id"]] = (w / im["width"], h / im["height"])
            im["width"], im["height"] = w, h
        else:
            shutil.copy(source, img_dir / im["file_name"])
    for a in gt["annotations"]:
        if a["image_id"] in scale:
            sx, sy = scale[a["image_id"]]
            x, y, bw, bh = a["bbox"]
            a["bbox"] = [x * sx, y * sy, bw * sx, bh * sy]
            a["area"] = bw * sx * bh * sy
    (dst / "annotations" / "instances_val2017.json").write_text(json.dumps(gt))
    lines = [f"./images/val2017/{im['file_name']}" for im in gt["images"]]
    (dst / "val2017.txt").write_text("\n".join(lines) + "\n")
    return dst


def run_mindyolo(data: Path, args, out: Path) -> tuple[list, list]:
    out.mkdir(parents=True, exist_ok=True)
    gt = json.loads((data / "annotations" / "instances_val2017.json").read_text())
    names = [c["name"] for c in sorted(gt["categories"], key=lambda c: c["id"])]
    config = out / "config.yaml"
    config.write_text(textwrap.dedent(f"""\
        __BASE__: ['{Path(args.mindyolo_src).resolve()}/configs/yolov3/yolov3.yaml']
        data:
          dataset_name: coco
          train_set: {data}/val2017.txt
          val_set: {data}/val2017.txt
          nc: {len(names)}
          names: {json.dumps(names)}
          num_parallel_workers: 1
        network:
          depth_multiple: {args.depth}
          width_multiple: {args.width}
        img_size: {args.img_size}
        per_batch_size: {args.batch_size}
        """))
    argv = ["--config", str(config), "--device_target", "CPU", "--weight", str(args.ckpt),
            "--img_size", str(args.img_size), "--per_batch_size", str(args.batch_size),
            "--ms_mode", str(args.ms_mode), "--iou_thres", "0.65", "--conf_thres", "0.001",
            "--save_dir", str(out / "runs")]  # fmt: skip
    test_py = str(Path(args.mindyolo_src).resolve() / "test.py")
    script = DRIVER.format(out=str(out), argv=argv, test_py=test_py)
    env = {**os.environ, "PYTHONPATH": str(Path(args.mindyolo_src).resolve())}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=str(out))
    return (json.loads((out / "records.json").read_text()),
            json.loads((out / "stats.json").read_text()))  # fmt: skip


def run_ours(data: Path, args, out: Path) -> tuple[list, list]:
    import mindspore as ms

    import yolomodels
    from yolomodels.checkpoint import load_strict, read_checkpoint
    from yolomodels.eval.coco import open_split
    from yolomodels.eval.runner import InferenceSettings
    from yolomodels.eval.scoring import evaluate_network

    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE if args.ms_mode == 0 else ms.PYNATIVE_MODE)
    split = open_split(data, "val2017")
    net = yolomodels.build("yolov3_darknet53", num_classes=len(split.category_ids),
                           img_size=args.img_size, depth_multiple=args.depth,
                           width_multiple=args.width)  # fmt: skip
    report = load_strict(net, read_checkpoint(args.ckpt))
    if not report.ok:
        raise SystemExit(f"{args.ckpt} does not fit the network: {report.describe()}")
    settings = InferenceSettings(img_size=args.img_size, batch_size=args.batch_size)
    ev = evaluate_network(net, split, settings=settings, detections_path=out / "ours.json")
    records = json.loads(ev.detections_path.read_text())
    return records, [getattr(ev.result.metrics, s) for s in STATS]


def compare(theirs: list, ours: list) -> dict:
    """How many records are byte-identical (as a multiset), and whether the lists are equal."""
    from collections import Counter

    def counts(records):
        return Counter(json.dumps(r, sort_keys=True) for r in records)

    same = sum((counts(theirs) & counts(ours)).values())
    return {"records_mindyolo": len(theirs), "records_ours": len(ours), "identical": same,
            "same_list_in_same_order": theirs == ours}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--mindyolo-src", type=Path, required=True)
    p.add_argument("--work", type=Path, default=Path("/tmp/yolohub-eval-parity"),
                   help="scratch directory; the two dataset copies are made once and reused")
    p.add_argument("--sizes", default="150x110,70x50,80x120,200x200")
    p.add_argument("--img-size", type=int, default=96)
    p.add_argument("--depth", type=float, default=0.33)
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--ms-mode", type=int, default=1, help="0 graph, 1 PyNative (both sides)")
    p.add_argument("--name", default="eval_parity", help="results file name (without suffix)")
    args = p.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    rows = []
    for name, sz in (("as given", None), ("resized " + args.sizes, sizes)):
        data = args.work / f"coco_{len(rows)}"
        if not (data / "val2017.txt").is_file():  # the same copies for every run with this --work
            copy_split(args.data, data, sz)
        theirs, their_stats = run_mindyolo(data, args, args.work / f"mindyolo_{len(rows)}")
        ours, our_stats = run_ours(data, args, args.work / f"ours_{len(rows)}")
        diff = {s: round(o - t, 4) for s, o, t in zip(STATS, our_stats, their_stats)}
        rows.append({"images": name, "mindyolo": dict(zip(STATS, their_stats)),
                     "ours": dict(zip(STATS, our_stats)), "ours_minus_mindyolo": diff,
                     **compare(theirs, ours)})  # fmt: skip
        print(json.dumps(rows[-1]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    import yolomodels

    meta = {"machine": platform.processor() or platform.machine(), "ms_mode": args.ms_mode,
            "img_size": args.img_size, "ckpt": str(args.ckpt),
            "yolomodels": str(Path(yolomodels.__file__).parent)}  # fmt: skip
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    md = ["# Evaluation parity with MindYOLO 0.5.0 test.py", "",
          f"Same checkpoint, same images, img_size {args.img_size}, conf 0.001, IoU 0.65, "
          f"{'graph' if args.ms_mode == 0 else 'PyNative'} mode on both sides.", "",
          "| images | records (MindYOLO / ours) | identical | AP | AP50 | AP75 | max abs diff (12 stats) |",
          "|---|---:|---:|---|---|---|---:|"]  # fmt: skip
    for r in rows:
        m, o = r["mindyolo"], r["ours"]
        cells = [f"{m[s]:.4f} / {o[s]:.4f}" for s in ("AP", "AP50", "AP75")]
        worst = max(abs(v) for v in r["ours_minus_mindyolo"].values())
        md.append(f"| {r['images']} | {r['records_mindyolo']} / {r['records_ours']} | "
                  f"{r['identical']} | {' | '.join(cells)} | {worst:.4f} |")  # fmt: skip
    (RESULTS / f"{args.name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
