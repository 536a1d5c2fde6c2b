"""First call of a fresh process: cold vs warm compile cache, against a steady call.

Each run is a new process that loads a full-size YOLOv3 card through ``hub.load`` (random
weights in a temporary local registry, see bench_onednn.py) and times its first forward call
(compilation included) and then a steady one.  "cold": empty ``YOLOHUB_HOME/compile``; "warm":
the directory a previous process left.  Target: warm first call <= 1.5x a steady call.

Run by hand: ``.venv/bin/python bench/bench_compile_cache.py [--sizes 320 640] [--runs 2]``.
Writes bench/results/compile_cache.json and compile_cache.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_onednn import RESULTS, publish_random_yolov3  # noqa: E402

CHILD = """
import sys, time, numpy as np, mindspore as ms
t0 = time.perf_counter()
import hub
from pathlib import Path
size = int(sys.argv[2])
net = hub.load("bench-onednn", cards_dirs=[Path(sys.argv[1])], arch_args={"img_size": size})
x = ms.Tensor(np.random.RandomState(0).rand(1, 3, size, size).astype(np.float32))
t = time.perf_counter(); net(x).asnumpy(); first = time.perf_counter() - t
t = time.perf_counter(); net(x).asnumpy(); steady = time.perf_counter() - t
print(first, steady, time.perf_counter() - t0)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[320, 640])
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cards = publish_random_yolov3(tmp)
        script = tmp / "first_call.py"  # MindSpore's cache needs an entry script file
        script.write_text(CHILD)
        env = {**os.environ, "YOLOHUB_HOME": str(tmp / "home"), "GLOG_v": "3"}
        for size in args.sizes:
            runs = {"cold": [], "warm": []}
            for _ in range(args.runs):
                for kind in ("cold", "warm"):
                    if kind == "cold":
                        shutil.rmtree(tmp / "home" / "compile", ignore_errors=True)
                    out = subprocess.run([sys.executable, str(script), str(cards), str(size)],
                                         env=env, capture_output=True, text=True, check=True)
                    first, steady, process = map(float, out.stdout.split()[-3:])
                    runs[kind].append((first, steady, process))
            med = {k: [statistics.median(r[i] for r in v) for i in range(3)]
                   for k, v in runs.items()}
            rows.append({
                "size": size,
                "cold_first_s": round(med["cold"][0], 2),
                "warm_first_s": round(med["warm"][0], 2),
                "steady_s": round(statistics.median([r[1] for v in runs.values() for r in v]), 3),
                "cold_process_s": round(med["cold"][2], 1),
                "warm_process_s": round(med["warm"][2], 1),
            })
            rows[-1]["warm_first_vs_steady"] = round(rows[-1]["warm_first_s"]
                                                     / rows[-1]["steady_s"], 2)
            print(json.dumps(rows[-1]), flush=True)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "target_warm_first_vs_steady": 1.5,
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "compile_cache.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# First call of a fresh process: cold vs warm compile cache (full-size YOLOv3, hub.load)",
        "",
        f"Machine: {result['machine']}; load average at end {result['load_average_at_end']}.",
        "",
        "| px | cold first call s | warm first call s | steady call s | warm / steady "
        "| cold process s | warm process s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['size']} | {r['cold_first_s']} | {r['warm_first_s']} "
                     f"| {r['steady_s']} | {r['warm_first_vs_steady']}x "
                     f"| {r['cold_process_s']} | {r['warm_process_s']} |")
    (RESULTS / "compile_cache.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
