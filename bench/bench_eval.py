"""Evaluation overheads: NMS on a 640-px output, per-image pre/post-processing vs the forward pass.

Run by hand: `.venv/bin/python bench/bench_eval.py [--no-forward]`.  Writes
bench/results/eval.json and eval.md.  Ratios are measured within one run:

* vectorized ``nms`` vs a plain greedy loop over the precomputed IoU matrix (the scheme the
  greedy step replaces) on the same candidates;
* eval pre-processing + NMS + back-projection per image vs the forward pass of full-size
  YOLOv3 at 640 px in GRAPH mode (skipped with ``--no-forward``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from yolomodels.postprocess import box_iou, nms, preprocess, scale_boxes_back, xywh_to_xyxy

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def best_of(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def untrained_output(n: int = 25200, nc: int = 80, seed: int = 0) -> np.ndarray:
    """A random-init-like decoded output: every row above conf, scores spread over classes."""
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [rng.uniform(0, 640, (n, 2)), rng.uniform(4, 200, (n, 2)), rng.uniform(0, 1, (n, 1 + nc))],
        axis=1,
    ).astype(np.float32)


def trained_output(n: int = 25200, nc: int = 80, seed: int = 1) -> np.ndarray:
    """A trained-like output: low objectness almost everywhere, clusters around 20 objects."""
    rng = np.random.default_rng(seed)
    pred = untrained_output(n, nc, seed)
    pred[:, 4] = rng.uniform(0, 0.002, n)
    pred[:, 5:] = rng.uniform(0, 0.05, (n, nc))
    hits = rng.choice(n, 600, replace=False)
    centres = rng.uniform(50, 590, (20, 2))
    pred[hits, :2] = centres[hits % 20] + rng.normal(0, 3, (600, 2))
    pred[hits, 2:4] = rng.uniform(40, 120, (600, 2))
    pred[hits, 4] = rng.uniform(0.3, 1.0, 600)
    pred[hits, 5 + hits % nc] = rng.uniform(0.5, 1.0, 600)
    return pred


def matrix_greedy(pred: np.ndarray, conf: float, iou: float, max_det: int) -> np.ndarray:
    """Baseline: same candidates, full IoU matrix, Python loop over every candidate."""
    pred = pred[pred[:, 4] > conf]
    scores = pred[:, 5:] * pred[:, 4:5]
    rows, cls = np.nonzero(scores > conf)
    score = scores[rows, cls]
    order = np.argsort(-score, kind="stable")[:30000]
    rows, cls, score = rows[order], cls[order], score[order]
    boxes = xywh_to_xyxy(pred[rows, :4].astype(np.float64)) + (cls * 4096.0)[:, None]
    keep, suppressed = [], np.zeros(len(boxes), bool)
    # the matrix is built in row blocks: 30000^2 float64 would need 7 GB
    for start in range(0, len(boxes), 2048):
        block = box_iou(boxes[start : start + 2048], boxes)
        for r in range(len(block)):
            i = start + r
            if suppressed[i]:
                continue
            keep.append(i)
            if len(keep) == max_det:
                return np.asarray(keep)
            suppressed |= block[r] > iou
    return np.asarray(keep)


def bench_nms() -> dict:
    out = {}
    for label, pred in (("untrained", untrained_output()), ("trained", trained_output())):
        vec = best_of(lambda p=pred: nms(p, conf=0.001, iou=0.65, max_det=300), repeat=5)
        base = best_of(lambda p=pred: matrix_greedy(p, 0.001, 0.65, 300), repeat=2)
        out[label] = {
            "rows": len(pred),
            "candidates": int(((pred[:, 5:] * pred[:, 4:5]) > 0.001).sum()),
            "detections": len(nms(pred)),
            "nms_ms": round(vec * 1e3, 2),
            "matrix_greedy_ms": round(base * 1e3, 2),
            "speedup": round(base / vec, 1),
        }
        best = best_of(lambda p=pred: nms(p, multi_label=False), repeat=5)
        out[label]["nms_best_class_ms"] = round(best * 1e3, 2)
    return out


def bench_pipeline(forward: bool) -> dict:
    rng = np.random.default_rng(2)
    image = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    pred = trained_output()

    def post():
        x, meta = preprocess(image, 640)
        det = nms(pred)
        scale_boxes_back(det[:, :4], meta, image.shape[:2])

    out = {"pre_nms_post_ms": round(best_of(post, repeat=5) * 1e3, 2)}
    if forward:
        import mindspore as ms

        import yolomodels

        ms.set_device("CPU")
        ms.set_context(mode=ms.GRAPH_MODE)
        net = yolomodels.build("yolov3_darknet53", num_classes=80, img_size=640)
        net.set_train(False)
        x = ms.Tensor(preprocess(image, 640)[0][None])
        t0 = time.perf_counter()
        net(x).asnumpy()
        out["graph_compile_and_first_forward_s"] = round(time.perf_counter() - t0, 2)
        fwd = best_of(lambda: net(x).asnumpy(), repeat=3)
        out["forward_ms"] = round(fwd * 1e3, 1)
        out["overhead_vs_forward"] = round(out["pre_nms_post_ms"] / out["forward_ms"], 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-forward", action="store_true", help="skip the full-size forward pass")
    args = ap.parse_args()
    result = {
        "machine": platform.processor() or platform.machine(),
        "nms": bench_nms(),
        "pipeline_640": bench_pipeline(not args.no_forward),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Evaluation overheads", "", "## NMS on a 640-px YOLOv3 output (25200 x 85)", "",
             "| output | candidates | nms ms | best-class ms | matrix-greedy ms | speedup |",
             "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for label, r in result["nms"].items():
        lines.append(
            f"| {label} | {r['candidates']} | {r['nms_ms']} | {r['nms_best_class_ms']} | "
            f"{r['matrix_greedy_ms']} | {r['speedup']}x |"
        )
    lines += ["", "## Per image at 640 px", "", "| measure | value |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in result["pipeline_640"].items()]
    (RESULTS / "eval.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
