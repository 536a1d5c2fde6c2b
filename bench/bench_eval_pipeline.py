"""Evaluation throughput: the pipeline vs the plain loop vs MindYOLO 0.5.0's evaluation loop.

Run by hand: ``.venv/bin/python bench/bench_eval_pipeline.py [--net full|tiny] [--rounds 1]``.
Writes bench/results/eval_pipeline.json and .md (``--name`` changes the file name).

The same 64 images (synthetic shapes, JPEG, 640x480 / 480x640 / 500x375) at 640 px, batch 16,
80-class YOLOv3 with random weights in GRAPH mode, each run in a fresh process (interleaved,
``--rounds`` times) with ``ONEDNN_MAX_CPU_ISA=AVX2``; the graph is compiled before the clock
starts.  Timed: the whole evaluation loop up to the COCO result records (scoring excluded).

* ``plain``: ``run_inference(workers=0)``: read, letterbox, forward, NMS one after another;
* ``pipeline``: ``run_inference()`` with its defaults (image workers, NMS thread);
* ``mindyolo``: MindYOLO 0.5.0's ``test.py`` loop rebuilt around its own pieces: its YOLOv3
  (``create_model``, the yolov3.yaml layer table), its ``COCODataset`` + ``create_loader``
  (yolov3.yaml test transforms, 2 parallel workers instead of the config's 8, on 2 cores), its
  ``non_max_suppression`` (time limit 60 s as test.py) and ``scale_coords``, records as test.py.

Peak RSS (ru_maxrss) of the evaluating process and of its largest worker, over 16 and 64 images.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SHAPES = [(640, 480), (480, 640), (500, 375)]  # (w, h), as COCO photos come
NETS = {"full": (1.0, 1.0), "tiny": (0.33, 0.25)}  # depth, width multiples
BATCH, SIZE = 16, 640


def make_data(root: Path, n: int) -> Path:
    import json as _json

    import cv2

    from yolomodels.data.synthetic import make_dataset

    make_dataset(root, num_images=n, img_size=SHAPES[0], num_classes=3, seed=0,
                 split="val2017", objects=(1, 4))  # fmt: skip
    ann_path = root / "annotations" / "instances_val2017.json"
    ann = _json.loads(ann_path.read_text())
    for k, im in enumerate(ann["images"]):
        w, h = SHAPES[k % len(SHAPES)]
        if (w, h) != SHAPES[0]:
            path = root / "images" / "val2017" / im["file_name"]
            cv2.imwrite(str(path), cv2.resize(cv2.imread(str(path)), (w, h)))
            sx, sy = w / im["width"], h / im["height"]
            im["width"], im["height"] = w, h
            for a in ann["annotations"]:
                if a["image_id"] == im["id"]:
                    x, y, bw, bh = a["bbox"]
                    a["bbox"] = [x * sx, y * sy, bw * sx, bh * sy]
                    a["area"] = bw * sx * bh * sy
    ann_path.write_text(_json.dumps(ann))
    return root


class ChildPeak:
    """Largest VmHWM of this process's child processes, sampled from /proc every 0.2 s.

    (``RUSAGE_CHILDREN`` cannot be used: Linux credits an exec'd child with the peak of the
    parent's address space it was forked from.  A forked child's VmHWM counts the pages it
    still shares with the parent.)"""

    def __init__(self):
        import threading

        self.peak_kb, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        me = str(os.getpid())
        while not self._stop.wait(0.2):
            for d in Path("/proc").iterdir():
                try:
                    if d.name.isdigit() and (d / "stat").read_text().rsplit(")", 1)[1].split()[1] == me:
                        for line in (d / "status").read_text().splitlines():
                            if line.startswith("VmHWM:"):
                                self.peak_kb = max(self.peak_kb, int(line.split()[1]))
                except (OSError, IndexError, ValueError):
                    continue

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return round(self.peak_kb / 1024)


def _peaks(children: ChildPeak) -> dict:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_rss_mb": round(own), "worker_peak_rss_mb": children.stop()}


def child_ours(data: str, net_name: str, images: int, workers: int | None) -> dict:
    import mindspore as ms
    import numpy as np

    import yolomodels
    from yolomodels.eval.coco import COCO80_TO_COCO91, open_split, to_coco_results
    from yolomodels.eval.runner import InferenceSettings, run_inference

    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE)
    depth, width = NETS[net_name]
    net = yolomodels.build("yolov3_darknet53", num_classes=80, img_size=SIZE,
                           depth_multiple=depth, width_multiple=width)  # fmt: skip
    net.set_train(False)
    net(ms.Tensor(np.zeros((BATCH, 3, SIZE, SIZE), np.float32))).asnumpy()  # compile
    split = open_split(data, "val2017")
    ids = list(split.image_ids[:images])
    settings = InferenceSettings(img_size=SIZE, batch_size=BATCH)
    children = ChildPeak()
    t0 = time.perf_counter()
    run = run_inference(net, split, settings=settings, image_ids=ids, workers=workers)
    records = to_coco_results(run.detections, COCO80_TO_COCO91)
    seconds = time.perf_counter() - t0
    out = {"seconds": round(seconds, 2), "images_per_s": round(len(ids) / seconds, 3),
           "records": len(records), **_peaks(children)}  # fmt: skip
    if workers == 0 and images >= BATCH:
        out["stages_s_per_image"] = _stages(net, split, ids[:BATCH], settings)
    return out


def _stages(net, split, ids, settings) -> dict:
    """Where a plain loop's time goes: prepare, forward and NMS of one batch, per image."""
    import mindspore as ms
    import numpy as np

    from yolomodels.eval.pipeline import postprocess_image
    from yolomodels.eval.workers import prepare

    t0 = time.perf_counter()
    prepared = [prepare(split.image_path(i), settings.img_size) for i in ids]
    t1 = time.perf_counter()
    out = net(ms.Tensor(np.stack([p[0] for p in prepared]))).asnumpy()
    t2 = time.perf_counter()
    for j, (_, meta, hw) in enumerate(prepared):
        postprocess_image(out[j], meta, hw, settings)
    t3 = time.perf_counter()
    n = len(ids)
    return {"read_letterbox": round((t1 - t0) / n, 4), "forward": round((t2 - t1) / n, 4),
            "nms_map_back": round((t3 - t2) / n, 4)}  # fmt: skip


def child_mindyolo(data: str, net_name: str, images: int) -> dict:
    import mindspore as ms
    import numpy as np
    from mindyolo.data import COCO80_TO_COCO91_CLASS, COCODataset, create_loader
    from mindyolo.models import create_model
    from mindyolo.utils.config import Config
    from mindyolo.utils.metrics import non_max_suppression, scale_coords, xyxy2xywh

    sys.path.insert(0, str(ROOT / "bench"))
    from bench_onednn import MINDYOLO_YOLOV3

    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE)  # test.py: --ms_mode 0 by default
    depth, width = NETS[net_name]
    cfg = {**MINDYOLO_YOLOV3, "depth_multiple": depth, "width_multiple": width}
    network = create_model(model_name="yolov3", model_cfg=Config(cfg), num_classes=80)
    network.set_train(False)
    network(ms.Tensor(np.zeros((BATCH, 3, SIZE, SIZE), np.float32)))[0].asnumpy()  # compile
    transforms = [  # yolov3.yaml test_transforms
        {"func_name": "letterbox", "scaleup": False, "only_image": True},
        {"func_name": "image_norm", "scale": 255.0},
        {"func_name": "image_transpose", "bgr2rgb": True, "hwc2chw": True},
    ]
    dataset = COCODataset(dataset_path=str(Path(data) / "val2017.txt"), img_size=SIZE,
                          transforms_dict=transforms, is_training=False, augment=False,
                          rect=False, single_cls=False, batch_size=BATCH, stride=32)  # fmt: skip
    if images < len(dataset.img_files):
        raise SystemExit("the MindYOLO loop runs over the whole split")
    loader = create_loader(dataset=dataset, batch_collate_fn=dataset.test_collate_fn,
                           column_names_getitem=dataset.column_names_getitem,
                           column_names_collate=dataset.column_names_collate,
                           batch_size=BATCH, epoch_size=1, rank=0, rank_size=1, shuffle=False,
                           drop_remainder=False, num_parallel_workers=2,
                           python_multiprocessing=True)  # fmt: skip
    children = ChildPeak()
    t0 = time.perf_counter()
    infer_s = nms_s = 0.0
    records = []
    for data_ in loader.create_dict_iterator(output_numpy=True, num_epochs=1):
        imgs, paths = data_["images"], data_["img_files"]
        ori, pad, hw_scale = data_["hw_ori"], data_["pad"], data_["hw_scale"]
        imgs = ms.Tensor(imgs, ms.float32)
        t = time.perf_counter()
        out, _ = network(imgs)
        out = out.asnumpy()
        infer_s += time.perf_counter() - t
        t = time.perf_counter()
        out = non_max_suppression(out, conf_thres=0.001, iou_thres=0.65, conf_free=False,
                                  multi_label=True, time_limit=60.0)  # fmt: skip
        nms_s += time.perf_counter() - t
        for si, pred in enumerate(out):
            if len(pred) == 0:
                continue
            predn = np.copy(pred)
            predn[:, :4] = scale_coords(imgs[si].shape[1:], predn[:, :4], ori[si],
                                        ratio=hw_scale[si], pad=pad[si])  # fmt: skip
            stem = Path(str(paths[si])).stem
            box = xyxy2xywh(predn[:, :4])
            box[:, :2] -= box[:, 2:] / 2
            for p, b in zip(pred.tolist(), box.tolist()):
                records.append({"image_id": int(stem), "bbox": [round(x, 3) for x in b],
                                "category_id": COCO80_TO_COCO91_CLASS[int(p[5])],
                                "score": round(p[4], 5)})  # fmt: skip
    seconds = time.perf_counter() - t0
    return {"seconds": round(seconds, 2), "images_per_s": round(images / seconds, 3),
            "records": len(records), "infer_s": round(infer_s, 2), "nms_s": round(nms_s, 2),
            **_peaks(children)}  # fmt: skip


def run_child(args: list[str]) -> dict:
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "YOLOHUB_PROGRESS": "0",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}  # fmt: skip
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, __file__, "--child", *args], env=env,
                          capture_output=True, text=True, timeout=3600)  # fmt: skip
    if proc.returncode:
        raise SystemExit(f"child {args} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["load_before"] = round(load, 2)
    print(args, result, flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", choices=sorted(NETS), default="full")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--rss-images", type=int, default=16, help="0: no RSS runs")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--no-mindyolo", action="store_true")
    ap.add_argument("--name", default="eval_pipeline")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, data, net_name, images = args.child[0], *args.child[1:4]
        if mode == "mindyolo":
            out = child_mindyolo(data, net_name, int(images))
        else:
            out = child_ours(data, net_name, int(images), 0 if mode == "plain" else None)
        print(json.dumps(out))
        return

    from yolomodels.eval.workers import default_workers

    modes = ["plain", "pipeline"] + ([] if args.no_mindyolo else ["mindyolo"])
    with tempfile.TemporaryDirectory() as tmp:
        data = str(make_data(Path(tmp) / "data", args.images))
        runs = {m: [] for m in modes}
        for _ in range(args.rounds):
            for m in modes:  # interleaved
                runs[m].append(run_child([m, data, args.net, str(args.images)]))
        small = {m: run_child([m, data, args.net, str(args.rss_images)])
                 for m in ("plain", "pipeline") if args.rss_images}  # fmt: skip
    med = {m: statistics.median(r["images_per_s"] for r in rs) for m, rs in runs.items()}
    result = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "net": args.net,
        "images": args.images,
        "img_size": SIZE,
        "batch_size": BATCH,
        "pipeline_workers": default_workers(),
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "runs": runs,
        "rss_runs": {str(args.rss_images): small} if small else {},
        "median_images_per_s": med,
        "pipeline_vs_plain": round(med["pipeline"] / med["plain"], 3),
    }
    if "mindyolo" in med:
        result["pipeline_vs_mindyolo"] = round(med["pipeline"] / med["mindyolo"], 3)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(render(result) + "\n")
    print(render(result))


def render(r: dict) -> str:
    n, small = r["images"], next(iter(r["rss_runs"]), None)
    lines = [
        f"# Evaluation pipeline ({r['net']} YOLOv3, 80 classes, random weights, {n} images at "
        f"{r['img_size']} px, batch {r['batch_size']})",
        "",
        f"Machine: {r['machine']}, {r['cpus']} CPUs shared with other jobs; load average at end "
        f"{r['load_average_at_end']} (per-run load in the JSON).  Fresh process per run, "
        f"interleaved, graph compiled before timing; pipeline = {r['pipeline_workers']} image "
        "worker(s) + NMS thread.",
        "",
        "| loop | images/s (median) | runs | peak RSS MB (main / largest worker) |",
        "|---|---:|---|---|",
    ]
    for m, rs in r["runs"].items():
        rss = " ; ".join(f"{x['peak_rss_mb']} / {x['worker_peak_rss_mb']}" for x in rs)
        lines.append(f"| {m} | {r['median_images_per_s'][m]:.3f} | "
                     f"{', '.join(str(x['images_per_s']) for x in rs)} | {rss} |")  # fmt: skip
    lines += ["", f"Pipeline vs plain loop: **{r['pipeline_vs_plain']}x**"]
    if "pipeline_vs_mindyolo" in r:
        my = r["runs"]["mindyolo"][0]
        lines.append(f"Pipeline vs MindYOLO's loop: **{r['pipeline_vs_mindyolo']}x** (MindYOLO: "
                     f"{my['infer_s']} s in the network, {my['nms_s']} s in its NMS)")  # fmt: skip
    stages = r["runs"]["plain"][0].get("stages_s_per_image")
    if stages:
        lines += ["", "Plain loop, seconds per image by stage: " + ", ".join(
            f"{k} {v}" for k, v in stages.items())]  # fmt: skip
    if small is None:
        return "\n".join(lines)
    lines += ["", f"## Peak RSS over {small} vs {n} images (MB, main / largest worker)", "",
              f"| loop | {small} images | {n} images |", "|---|---|---|"]  # fmt: skip
    for m, x in r["rss_runs"][small].items():
        big = r["runs"][m][0]
        lines.append(f"| {m} | {x['peak_rss_mb']} / {x['worker_peak_rss_mb']} | "
                     f"{big['peak_rss_mb']} / {big['worker_peak_rss_mb']} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
