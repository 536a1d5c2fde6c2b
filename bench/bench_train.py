"""Training throughput: compiled train-step time of scaled-down and full-size YOLOv3 at 320 px
(batch 2), and the data loader's images/s alone with the full MindYOLO augmentation pipeline.

Run by hand (it takes a few minutes on 2 cores):

    .venv/bin/python bench/bench_train.py [--steps 6] [--batches 40] [--workers 2]

Writes bench/results/train.json and bench/results/train.md.  The target: the loader delivers at
least 2x the images/s the full-size step consumes, so training is never data-bound.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def bench_step(
    *, scale: tuple[float, float], img: int, batch: int, steps: int, shapes: Path
) -> dict:
    import mindspore as ms
    from mindspore import Tensor

    from yolomodels.data.datasets import load_dataset
    from yolomodels.data.loader import TrainLoader
    from yolomodels.losses import build_loss
    from yolomodels.registry import build
    from yolomodels.train.config import TrainConfig
    from yolomodels.train.distributed import Parallel
    from yolomodels.train.optim import EMA, GroupSGD
    from yolomodels.train.step import build_train_step

    ms.set_seed(0)
    net = build(
        "yolov3_darknet53",
        num_classes=80,
        img_size=img,
        depth_multiple=scale[0],
        width_multiple=scale[1],
    )
    net.set_train(True)
    cfg = TrainConfig()
    opt = GroupSGD(net.trainable_params(), weight_decay=0.0005, nesterov=True, loss_scale=1.0)
    step = build_train_step(
        net, build_loss("YOLOv3Loss", num_classes=80), opt, EMA(net), parallel=Parallel()
    )
    ds = load_dataset(shapes, split="train")
    loader = TrainLoader(ds, img_size=img, batch_size=batch, augment=cfg.augment, workers=1)
    batches = [(x, y) for _, _, x, y in loader.batches(0, 1)][: steps + 1]
    scalars = [Tensor(v, ms.float32) for v in (0.01, 0.01, 0.937, 1.0, 0.5)]
    t0 = time.perf_counter()
    out = step(Tensor(batches[0][0]), Tensor(batches[0][1]), *scalars)
    out[0].asnumpy()
    compile_s = time.perf_counter() - t0
    times = []
    for x, y in batches[1 : steps + 1]:
        t = time.perf_counter()
        out = step(Tensor(x), Tensor(y), *scalars)
        out[0].asnumpy()
        times.append(time.perf_counter() - t)
    median = statistics.median(times)
    return {
        "depth_multiple": scale[0],
        "width_multiple": scale[1],
        "img_size": img,
        "batch": batch,
        "params": int(sum(np.prod(p.shape) for p in net.trainable_params())),
        "first_step_s": round(compile_s, 2),
        "step_s_median": round(median, 4),
        "step_s_all": [round(t, 4) for t in times],
        "images_per_s": round(batch / median, 2),
    }


def bench_loader(*, img: int, batch: int, batches: int, workers: int, shapes: Path) -> dict:
    from yolomodels.data.datasets import load_dataset
    from yolomodels.data.loader import TrainLoader
    from yolomodels.train.config import TrainConfig

    ds = load_dataset(shapes, split="train")
    loader = TrainLoader(
        ds, img_size=img, batch_size=batch, augment=TrainConfig().augment, workers=workers
    )
    epochs = -(-batches // loader.steps_per_epoch)
    it = loader.batches(0, epochs)
    next(it)  # worker start-up is not throughput
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        next(it)
        n += batch
    seconds = time.perf_counter() - t0
    return {
        "img_size": img,
        "batch": batch,
        "workers": workers,
        "batches": batches,
        "augment": "mosaic 1.0, perspective (translate 0.1, scale 0.9), mixup 0.1, HSV, fliplr",
        "images_per_s": round(n / seconds, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--img", type=int, default=320)
    ap.add_argument("--batch", type=int, default=2)
    args = ap.parse_args()
    from yolomodels.data.synthetic import make_dataset

    with tempfile.TemporaryDirectory() as tmp:
        shapes = Path(tmp) / "shapes"
        # Source images of 640 x 480, like typical COCO photos.
        make_dataset(shapes, num_images=48, img_size=(640, 480), num_classes=8, objects=(1, 6))
        loader = bench_loader(
            img=args.img,
            batch=args.batch,
            batches=args.batches,
            workers=args.workers,
            shapes=shapes,
        )
        loader_1 = bench_loader(
            img=args.img, batch=args.batch, batches=args.batches // 2, workers=1, shapes=shapes
        )
        small = bench_step(
            scale=(0.33, 0.25), img=args.img, batch=args.batch, steps=args.steps, shapes=shapes
        )
        full = bench_step(
            scale=(1.0, 1.0), img=args.img, batch=args.batch, steps=args.steps, shapes=shapes
        )
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "loader": loader,
        "loader_one_process": loader_1,
        "step_scaled_down": small,
        "step_full_size": full,
        "ratios": {
            "loader_over_full_step": round(loader["images_per_s"] / full["images_per_s"], 2),
            "loader_over_scaled_step": round(loader["images_per_s"] / small["images_per_s"], 2),
        },
        "target": "loader images/s >= 2x full-size step images/s",
    }
    result["target_met"] = result["ratios"]["loader_over_full_step"] >= 2.0
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# Training throughput (bench/bench_train.py)",
        "",
        f"YOLOv3 train step (forward, loss, backward, SGD, EMA; one compiled graph) at "
        f"{args.img} px, batch {args.batch}, on {os.cpu_count()} CPU cores "
        f"(load average at the end: {result['machine']['load_avg_at_end']}).",
        "",
        "| what | first step (compile) s | step s (median) | images/s |",
        "|---|---|---|---|",
        f"| YOLOv3 depth 0.33 width 0.25 ({small['params']:,} params) | "
        f"{small['first_step_s']} | {small['step_s_median']} | {small['images_per_s']} |",
        f"| YOLOv3 full size ({full['params']:,} params) | {full['first_step_s']} | "
        f"{full['step_s_median']} | {full['images_per_s']} |",
        f"| data loader, {loader['workers']} workers (no network) | | | {loader['images_per_s']} |",
        f"| data loader, 1 process (no network) | | | {loader_1['images_per_s']} |",
        "",
        f"Loader / full-size step: **{result['ratios']['loader_over_full_step']}x** "
        f"(target >= 2x: {'met' if result['target_met'] else 'NOT met'}); "
        f"loader / scaled-down step: {result['ratios']['loader_over_scaled_step']}x.",
        "",
        f"Augmentations: {loader['augment']}; source images 640 x 480 JPEG.",
        "",
    ]
    (RESULTS / "train.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
