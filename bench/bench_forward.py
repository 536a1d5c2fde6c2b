"""Forward latency of the full-size detectors, batch 1, eval mode: PyNative vs graph execution.

"graph" is what ``hub.load`` returns by default: the network compiled with ``mindspore.jit``
(once per input shape), the process context left in PyNative.  "context graph" switches the
whole process to ``GRAPH_MODE`` around the call instead.  The three variants (three networks
with the same weights) are called in turn, round after round, so that load from other processes
on the shared cores hits them alike; the median of the timed calls is reported.  Each
(architecture, size) runs in a fresh subprocess.

Run by hand: ``.venv/bin/python bench/bench_forward.py [--runs 3] [--sizes 320 640]``.
Writes bench/results/forward.json and forward.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ARCHS = ("yolov3_darknet53", "yolov4_cspdarknet53")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure_alternating(arch: str, size: int, runs: int) -> dict:
    """PyNative vs hub's graph mode on one network, calls interleaved."""
    import mindspore as ms
    import numpy as np
    from mindspore import Tensor

    from hub.cards.catalog import resolve
    from hub.tasks.load import build_for

    ms.set_device("CPU")
    release = resolve(arch)
    eager = build_for(release, arch_args={"img_size": size}, mode="pynative")
    graph = build_for(release, arch_args={"img_size": size}, mode="graph")
    whole = build_for(release, arch_args={"img_size": size}, mode="pynative")
    # same weights everywhere, so all three compute the same thing
    for p, q, r in zip(eager.get_parameters(), graph.get_parameters(), whole.get_parameters()):
        q.set_data(p.data)
        r.set_data(p.data)
    x = Tensor(np.random.RandomState(0).rand(1, 3, size, size).astype(np.float32))

    def context_graph():
        ms.set_context(mode=ms.GRAPH_MODE)
        try:
            return whole(x).asnumpy()
        finally:
            ms.set_context(mode=ms.PYNATIVE_MODE)

    variants = {
        "pynative": lambda: eager(x).asnumpy(),
        "graph": lambda: graph(x).asnumpy(),
        "context_graph": context_graph,
    }
    first = {k: _timed(f) for k, f in variants.items()}  # graph ones include compilation
    assert graph.execution_mode == "graph", "graph compilation fell back to PyNative"
    ref = eager(x).asnumpy()
    diff = max(float(np.abs(ref - f()).max()) for f in variants.values())
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(runs):
        for k, f in variants.items():
            times[k].append(_timed(f))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "arch": arch,
        "size": size,
        "pynative_s": round(med["pynative"], 3),
        "graph_s": round(med["graph"], 3),
        "speedup": round(med["pynative"] / med["graph"], 2),
        "context_graph_s": round(med["context_graph"], 3),
        "context_speedup": round(med["pynative"] / med["context_graph"], 2),
        "graph_first_call_s": round(first["graph"], 2),
        "context_graph_first_call_s": round(first["context_graph"], 2),
        "pynative_first_call_s": round(first["pynative"], 2),
        "max_abs_diff": diff,
        "runs": runs,
        "all_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
    }


def _child(kind: str, arch: str, size: int, runs: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, arch, str(size), "--runs", str(runs)],
        capture_output=True, text=True, check=True, env={**os.environ, "GLOG_v": "3"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[320, 640])
    ap.add_argument("--archs", nargs="+", default=list(ARCHS))
    ap.add_argument("--child", nargs=3, metavar=("KIND", "ARCH", "SIZE"))
    args = ap.parse_args()
    if args.child:
        kind, arch, size = args.child
        print(json.dumps(measure_alternating(arch, int(size), args.runs)))
        return

    started = time.time()
    rows = []
    for arch in args.archs:
        for size in args.sizes:
            row = _child("alt", arch, size, args.runs)
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "load_average_at_end": os.getloadavg(),
        "wall_s": round(time.time() - started, 1),
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "forward.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Forward latency, batch 1, eval mode (median of alternating calls)",
        "",
        f"Machine: {result['machine']}; load average at end {tuple(round(v, 2) for v in result['load_average_at_end'])}.",
        "`graph` = hub.load's default (per-network `mindspore.jit`); `context graph` = "
        "process-wide GRAPH_MODE around the call. Same weights, calls interleaved.",
        "",
        "| arch | size | PyNative s | graph s | speedup | context graph s | speedup "
        "| graph first call (compile) s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['arch']} | {r['size']} | {r['pynative_s']} | {r['graph_s']} | {r['speedup']}x "
            f"| {r['context_graph_s']} | {r['context_speedup']}x | {r['graph_first_call_s']} |"
        )
    (RESULTS / "forward.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
