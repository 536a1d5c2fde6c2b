"""``hub.load`` from a warm cache vs. building the network and loading the file with MindSpore.

Both paths end with the same full-size network holding the same weights.  The direct path is
``yolomodels.build`` + ``mindspore.load_checkpoint`` + ``mindspore.load_param_into_net``; the hub
path adds registry resolution, the cache check, the strict name/shape comparison and the load
report.  Calls alternate in one process; medians are compared.  Target: hub <= 1.1x direct.

Run by hand: ``.venv/bin/python bench/bench_load.py [--arch yolov3_darknet53] [--runs 3]``.
Writes bench/results/load.json and load.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="yolov3_darknet53")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    import mindspore as ms
    import numpy as np

    import hub
    import yolomodels
    from hub.cards.catalog import resolve
    from hub.cards.write import render_card
    from yolomodels.checkpoint import save_checkpoint

    ms.set_device("CPU")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["YOLOHUB_HOME"] = str(tmp / "home")
        os.environ["YOLOHUB_PROGRESS"] = "0"
        ckpt = save_checkpoint(yolomodels.build(args.arch), tmp / "store" / "full.ckpt")
        sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
        card = resolve(args.arch).card
        fm = card.editable_front_matter()
        fm["model-name"] = "bench-load"
        fm["asset"] = [{"file-format": "ckpt", "asset-link": ckpt.as_uri(), "asset-sha256": sha,
                        "size": ckpt.stat().st_size}]
        (tmp / "cards").mkdir()
        (tmp / "cards" / "bench-load.md").write_text(render_card(fm, "bench\n"))
        cards = [tmp / "cards"]
        hub.download("bench-load", cards_dirs=cards)  # warm the cache

        def direct():
            net = yolomodels.build(args.arch)
            ms.load_param_into_net(net, ms.load_checkpoint(str(ckpt)))
            net.set_train(False)
            return net

        def via_hub():
            return hub.load("bench-load", cards_dirs=cards)

        a, b = direct(), via_hub()  # warm-up, and proof that both give the same weights
        assert b.load_report.ok
        for p, q in zip(a.get_parameters(), b.get_parameters()):
            assert p.name == q.name and np.array_equal(p.asnumpy(), q.asnumpy()), p.name
        del a, b
        td, th = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            direct()
            td.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            via_hub()
            th.append(time.perf_counter() - t0)
        size = ckpt.stat().st_size

    d, h = statistics.median(td), statistics.median(th)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "arch": args.arch,
        "checkpoint_mb": round(size / 1e6, 1),
        "direct_s": round(d, 3),
        "hub_load_s": round(h, 3),
        "ratio": round(h / d, 3),
        "direct_min_s": round(min(td), 3),
        "hub_load_min_s": round(min(th), 3),
        "ratio_of_minima": round(min(th) / min(td), 3),
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "target_ratio": 1.1,
        "runs": args.runs,
        "direct_all_s": [round(v, 3) for v in td],
        "hub_all_s": [round(v, 3) for v in th],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "load.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "load.md").write_text(
        "# hub.load (warm cache) vs build + load_checkpoint + load_param_into_net\n\n"
        "| measure | value |\n|---|---|\n"
        + "".join(f"| {k} | {v} |\n" for k, v in result.items())
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
