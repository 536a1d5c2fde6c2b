"""Evaluation under msrun: 1 vs 2 ranks on the same images, and what the gather costs.

Run by hand: `.venv/bin/python bench/bench_eval_distributed.py [--images 64 --img-size 640]`
(msrun from the same environment must be on PATH).  Writes bench/results/eval_distributed.json
and .md.  A full-size YOLOv3 with random weights (3 classes) behind a throw-away card is
evaluated on a synthetic dataset by `msrun --worker_num=W python -m hub eval`, W = 1 and 2,
interleaved, after one warm-up of each that fills the compile cache.  Reported per run: the
command's wall time and the images/s of the inference phase (eval.json's inference_seconds:
from the first image to the gathered detections on rank 0).  The load average is recorded: the
machine is shared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def make_world(root: Path, *, images: int, img_size: int, scale: dict) -> tuple[Path, Path]:
    import mindspore as ms

    import yolomodels
    from yolomodels.checkpoint import save_checkpoint
    from yolomodels.data.synthetic import make_dataset

    data = make_dataset(root / "data", num_images=images, img_size=(img_size, img_size * 3 // 4),
                        num_classes=3, seed=0, split="val2017")  # fmt: skip
    ms.set_seed(0)
    net = yolomodels.build("yolov3_darknet53", num_classes=3, img_size=img_size, **scale)
    ckpt = root / "net.ckpt"
    save_checkpoint(net, ckpt)
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    cards = root / "cards"
    cards.mkdir()
    (cards / "bench_yolov3.md").write_text(f"""---
format: yolohub/1
model-name: bench_yolov3
model-version: "1.0"
backbone-name: darknet53
train-dataset: synthetic-shapes
license: Apache2.0
summary: Full-size YOLOv3, random weights, for the distributed evaluation benchmark.
asset:
  - file-format: ckpt
    asset-link: <{ckpt.resolve().as_uri()}>
    asset-sha256: {sha}
    size: {ckpt.stat().st_size}
    version: "1.0"
architecture:
  name: yolov3_darknet53
  args: {{num_classes: 3, img_size: {img_size}{"".join(f", {k}: {v}" for k, v in scale.items())}}}
class-names: [circle, square, triangle]
eval-protocol:
  dataset: synthetic-shapes
  split: val2017
  metric: AP
  img-size: {img_size}
  conf-threshold: 0.001
  iou-threshold: 0.65
  max-detections: 300
  multi-label: true
  batch-size: 8
  tolerance: 0.1
---

# bench_yolov3
""")
    return data, cards


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(world: int, data: Path, cards: Path, work: Path, tag: str) -> dict:
    out, logs = work / f"out-{tag}", work / f"logs-{tag}"
    cmd = ["msrun", f"--worker_num={world}", f"--local_worker_num={world}",
           f"--master_port={free_port()}", "--master_addr=127.0.0.1", "--join=True",
           f"--log_dir={logs}", "python", "-m", "hub", "eval", "bench_yolov3", "--data",
           str(data), "--cards", str(cards), "--out", str(out)]  # fmt: skip
    load = os.getloadavg()[0]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=7200)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        tail = "".join(p.read_text(errors="replace")[-2000:] for p in logs.glob("worker_*.log"))
        raise SystemExit(f"msrun failed ({proc.returncode}):\n{tail}")
    report = json.loads((out / "eval.json").read_text())
    seconds = report["inference_seconds"]
    det = (out / "detections.json").read_bytes()
    return {
        "ranks": world, "wall_s": round(wall, 2), "inference_s": seconds,
        "images_per_s": round(report["num_images"] / seconds, 3),
        "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2),
        "AP": report["metrics"]["AP"], "detections_sha256": hashlib.sha256(det).hexdigest(),
    }  # fmt: skip


def exchange_cost(root: Path, *, images: int, dets: int = 300, repeat: int = 5) -> dict:
    """Seconds for 2 ranks (threads) to swap the detections of ``images`` images each."""
    from yolomodels.eval.distributed import encode_detections, exchange
    from yolomodels.train.distributed import Parallel

    rng = np.random.default_rng(0)
    payload = encode_detections({i: rng.random((dets, 6), np.float32) for i in range(images)})
    best = float("inf")
    for k in range(repeat):
        t = time.perf_counter()
        threads = [threading.Thread(target=exchange, args=(lambda: payload, Parallel(r, 2)),
                                    kwargs={"root": root, "token": f"b{k}"}) for r in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        best = min(best, time.perf_counter() - t)
    return {"images_per_rank": images, "detections_per_image": dets,
            "payload_bytes": len(payload), "seconds": round(best, 4)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--img-size", type=int, default=640)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--width", type=float, default=1.0, help="width_multiple (1.0: full size)")
    ap.add_argument("--depth", type=float, default=1.0, help="depth_multiple (1.0: full size)")
    args = ap.parse_args()
    scale = {k: v for k, v in (("width_multiple", args.width), ("depth_multiple", args.depth))
             if v != 1.0}  # fmt: skip
    network = "yolov3_darknet53, 3 classes" + "".join(f", {k} {v}" for k, v in scale.items())
    if shutil.which("msrun") is None:
        raise SystemExit("msrun is not on PATH: put the environment's bin directory first")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["YOLOHUB_HOME"] = str(work / "home")
        os.environ.setdefault("YOLOHUB_PROGRESS", "0")
        data, cards = make_world(work, images=args.images, img_size=args.img_size, scale=scale)
        # warm-up: downloads the asset into the cache and fills the compile caches
        warm = [run(w, data, cards, work, f"warm{w}") for w in (1, 2)]
        runs = [run(w, data, cards, work, f"{w}-{i}")
                for i in range(args.repeat) for w in (1, 2)]  # fmt: skip
        cost = exchange_cost(work / "x", images=args.images // 2)
    same = len({r["detections_sha256"] for r in runs + warm}) == 1
    best = {w: max(r["images_per_s"] for r in runs if r["ranks"] == w) for w in (1, 2)}
    result = {
        "images": args.images, "img_size": args.img_size, "network": network,
        "cpus": os.cpu_count(), "python": platform.python_version(), "warm_up": warm, "runs": runs,
        "best_images_per_s": best, "speedup_2_vs_1": round(best[2] / best[1], 3),
        "detections_identical": same, "exchange": cost,
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "eval_distributed.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Evaluation under msrun: 1 vs 2 ranks",
        "",
        f"{args.images} images at {args.img_size} px, {network} (random weights), batch 8, "
        f"{os.cpu_count()} CPUs shared with other jobs; runs interleaved after a warm-up of each "
        "(compile cache filled; warm-up rows marked *).",
        "",
        "| ranks | wall s | inference s | images/s | load avg before/after |",
        "|---:|---:|---:|---:|---|",
        *[f"| {r['ranks']}{'*' if r in warm else ''} | {r['wall_s']} | {r['inference_s']} | "
          f"{r['images_per_s']} | {r['load_before']} / {r['load_after']} |"
          for r in warm + runs],  # fmt: skip
        "",
        f"Best images/s: 1 rank {best[1]}, 2 ranks {best[2]} "
        f"(**{result['speedup_2_vs_1']}x**). Detections identical in every run: {same}.",
        "",
        f"Exchange of results (2 ranks, {cost['images_per_rank']} images x "
        f"{cost['detections_per_image']} detections each, {cost['payload_bytes']} bytes per rank, "
        f"through files): {cost['seconds']} s.",
        "",
    ]
    (RESULTS / "eval_distributed.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
