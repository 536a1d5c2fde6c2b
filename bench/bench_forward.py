"""Forward latency of the full-size detectors, batch 1, eval mode: PyNative vs graph execution.

"graph" is what ``hub.load`` returns by default: the network compiled with ``mindspore.jit``
(once per input shape), the process context left in PyNative.  "context-graph" sets the whole
process to ``GRAPH_MODE`` instead (measured in a fresh subprocess, since the context is global).
PyNative and hub-graph calls alternate on the same network so that load from other processes on
the shared cores hits both alike; the median of the timed calls is reported.

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

    from hub.loader import build_for
    from hub.registry import resolve

    ms.set_device("CPU")
    release = resolve(arch)
    eager = build_for(release, arch_args={"img_size": size}, mode="pynative")
    graph = build_for(release, arch_args={"img_size": size}, mode="graph")
    # same weights in both, so both compute the same thing
    for p, q in zip(eager.get_parameters(), graph.get_parameters()):
        q.set_data(p.data)
    x = Tensor(np.random.RandomState(0).rand(1, 3, size, size).astype(np.float32))
    first_eager = _timed(lambda: eager(x).asnumpy())
    first_graph = _timed(lambda: graph(x).asnumpy())  # includes compilation
    assert graph.execution_mode == "graph", "graph compilation fell back to PyNative"
    diff = float(np.abs(eager(x).asnumpy() - graph(x).asnumpy()).max())
    te, tg = [], []
    for _ in range(runs):
        te.append(_timed(lambda: eager(x).asnumpy()))
        tg.append(_timed(lambda: graph(x).asnumpy()))
    pyn, gr = statistics.median(te), statistics.median(tg)
    return {
        "arch": arch,
        "size": size,
        "pynative_s": round(pyn, 3),
        "graph_s": round(gr, 3),
        "speedup": round(pyn / gr, 2),
        "graph_first_call_s": round(first_graph, 2),
        "pynative_first_call_s": round(first_eager, 2),
        "max_abs_diff": diff,
        "runs": runs,
    }


def measure_context_graph(arch: str, size: int, runs: int) -> dict:
    import mindspore as ms
    import numpy as np
    from mindspore import Tensor

    import yolomodels

    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE)
    net = yolomodels.build(arch, img_size=size)
    net.set_train(False)
    x = Tensor(np.random.RandomState(0).rand(1, 3, size, size).astype(np.float32))
    first = _timed(lambda: net(x).asnumpy())
    times = [_timed(lambda: net(x).asnumpy()) for _ in range(runs)]
    return {"arch": arch, "size": size, "context_graph_s": round(statistics.median(times), 3),
            "context_graph_first_call_s": round(first, 2)}


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
    ap.add_argument("--no-context-graph", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("KIND", "ARCH", "SIZE"))
    args = ap.parse_args()
    if args.child:
        kind, arch, size = args.child
        fn = measure_alternating if kind == "alt" else measure_context_graph
        print(json.dumps(fn(arch, int(size), args.runs)))
        return

    started = time.time()
    rows = []
    for arch in args.archs:
        for size in args.sizes:
            row = _child("alt", arch, size, args.runs)
            if not args.no_context_graph and size == max(args.sizes):
                row.update(_child("ctx", arch, size, args.runs))
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
        "process-wide GRAPH_MODE (separate process).",
        "",
        "| arch | size | PyNative s | graph s | speedup | graph first call s | context graph s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['arch']} | {r['size']} | {r['pynative_s']} | {r['graph_s']} | {r['speedup']}x "
            f"| {r['graph_first_call_s']} | {r.get('context_graph_s', '-')} |"
        )
    (RESULTS / "forward.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
