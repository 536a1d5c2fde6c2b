"""``hub.predict`` end-to-end overhead: everything except the forward pass, relative to it.

Full-size YOLOv3 at 640 px (the card's size) in hub's default graph mode, with the fact sheet's
name-seeded synthetic weights (§9.2), whose scores straddle the 0.25 threshold, so NMS has real
work to do.  One real photo (matplotlib's sample) per call, annotated copy written.  Calls of
``hub.predict`` and of the bare forward pass alternate; medians are compared, and the pieces
(read, preprocess, NMS + back-projection, drawing + writing) are timed separately.
Target: overhead <= 10 % of the forward pass.

Run by hand: ``.venv/bin/python bench/bench_predict.py [--runs 3]``.
Writes bench/results/predict.json and predict.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "tests"))


def _median_time(fn, runs: int) -> float:
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--arch", default="yolov3_darknet53")
    args = ap.parse_args()

    import matplotlib
    import mindspore as ms
    from mindspore import Tensor
    from nethelpers import synthetic_value

    import hub
    from hub.loader import build_for
    from hub.prediction import DEFAULT_CONF, Detection, draw_detections, read_image
    from hub.registry import resolve
    from yolomodels.postprocess import nms, preprocess, scale_boxes_back

    ms.set_device("CPU")
    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    release = resolve(args.arch)
    net = build_for(release, mode="graph")
    for p in net.get_parameters():
        v = synthetic_value(p.name, tuple(p.shape))
        if v is not None:
            p.set_data(Tensor(v))
    size = net.img_size
    image = read_image(photo)
    x, meta = preprocess(image, size)
    xt = Tensor(x[None])
    pred = net(xt).asnumpy()[0]  # compiles the graph
    assert net.execution_mode == "graph"

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        hub.predict(net, [photo], out=out)  # warm-up
        tf, tp = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            net(xt).asnumpy()
            tf.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            [res] = hub.predict(net, [photo], out=out)
            tp.append(time.perf_counter() - t0)
        forward, total = statistics.median(tf), statistics.median(tp)
        iou = release.card.eval_protocol.iou_threshold
        det = nms(pred, conf=DEFAULT_CONF, iou=iou, multi_label=False, max_det=300)
        dets = [Detection(tuple(map(float, b)), float(d[4]), int(d[5]), "x")
                for b, d in zip(scale_boxes_back(det[:, :4], meta), det)]
        pieces = {
            "read_s": _median_time(lambda: read_image(photo), args.runs),
            "preprocess_s": _median_time(lambda: preprocess(image, size), args.runs),
            "nms_and_scale_back_s": _median_time(
                lambda: scale_boxes_back(
                    nms(pred, conf=DEFAULT_CONF, iou=iou, multi_label=False, max_det=300)[:, :4],
                    meta),
                args.runs),
            "draw_and_write_s": _median_time(
                lambda: draw_detections(image, dets).save(out / "x.jpg"), args.runs),
        }

    overhead = total - forward
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "arch": args.arch,
        "img_size": size,
        "image": f"{photo.name} {image.shape[1]}x{image.shape[0]}",
        "detections": len(res.detections),
        "candidates_over_conf": int((pred[:, 4] > DEFAULT_CONF).sum()),
        "forward_s": round(forward, 3),
        "predict_total_s": round(total, 3),
        "overhead_s": round(overhead, 3),
        "overhead_fraction": round(overhead / forward, 3),
        "pieces_overhead_fraction": round(sum(pieces.values()) / forward, 3),
        "target_fraction": 0.10,
        **{k: round(v, 4) for k, v in pieces.items()},
        "runs": args.runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "predict.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "predict.md").write_text(
        "# hub.predict overhead (read, preprocess, NMS, back-projection, drawing, writing)\n\n"
        "| measure | value |\n|---|---|\n"
        + "".join(f"| {k} | {v} |\n" for k, v in result.items())
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
