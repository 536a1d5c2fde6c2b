"""Export time and forward latency of exported graphs: MindSpore GRAPH vs ONNX Runtime.

For each full-size network (synthetic weights saved as a checkpoint and exported through
``hub.export`` with the built-in card, so the real export path runs: load, ``mindspore.export``,
load back, verify), at 640 px batch 1:

* export time to MindIR and to ONNX (``mindspore.export`` alone, and the whole verified
  ``hub.export`` call), and the verified max abs / rel difference;
* forward latency of the network as ``hub.load`` gives it (per-network ``mindspore.jit``, GRAPH)
  against the exported ONNX file in ONNX Runtime (CPU provider, default threads), called in
  turn, round after round, so that load from other processes hits both alike; medians.

YOLOv4 with Mish cannot be exported to ONNX by MindSpore (no Mish conversion), so its ONNX
row is the SiLU variant's.  Each network runs in a fresh subprocess.

Run by hand: ``.venv/bin/python bench/bench_export.py [--runs 3] [--size 640]``.
Writes bench/results/export.json and export.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ARCHS = ("yolov3_darknet53", "yolov4_cspdarknet53", "yolov4_cspdarknet53_silu")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(arch: str, size: int, runs: int) -> dict:
    import mindspore as ms
    import numpy as np

    import hub
    import yolomodels
    from hub.errors import UnsupportedOpError
    from yolomodels.checkpoint import save_checkpoint

    ms.set_device("CPU")
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    os.environ["YOLOHUB_HOME"] = str(work / "home")
    ckpt = work / f"{arch}.ckpt"
    save_checkpoint(yolomodels.build(arch), ckpt)
    row: dict = {"arch": arch, "size": size, "runs": runs}
    onnx_path = None
    for fmt in ("mindir", "onnx"):
        t = time.perf_counter()
        try:
            r = hub.export(arch, format=fmt, img_size=size, weights=ckpt, force=True)
        except UnsupportedOpError as exc:
            row[f"{fmt}_unsupported_op"] = exc.op
            continue
        row[f"{fmt}_export_s"] = round(r.export_seconds, 2)
        row[f"{fmt}_total_s"] = round(time.perf_counter() - t, 2)
        row[f"{fmt}_mb"] = round(r.size / 1e6, 1)
        row[f"{fmt}_max_abs_diff"] = r.verification.max_abs_diff
        row[f"{fmt}_max_rel_diff"] = r.verification.max_rel_diff
        if fmt == "onnx":
            onnx_path = r.cache_path
    if onnx_path is None:
        return row

    from hub.tasks.backends import open_onnx

    net = hub.load(arch, weights=ckpt, mode="graph")
    session = open_onnx(onnx_path)
    name = session.get_inputs()[0].name
    x = np.random.RandomState(0).rand(1, 3, size, size).astype(np.float32)
    tx = ms.Tensor(x)
    variants = {
        "graph": lambda: net(tx).asnumpy(),
        "onnxruntime": lambda: session.run(None, {name: x})[0],
    }
    first = {k: _timed(f) for k, f in variants.items()}  # graph compiles here
    assert net.execution_mode == "graph", "graph compilation fell back to PyNative"
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(runs):
        for k, f in variants.items():
            times[k].append(_timed(f))
    med = {k: statistics.median(v) for k, v in times.items()}
    row.update({
        "graph_s": round(med["graph"], 3),
        "onnxruntime_s": round(med["onnxruntime"], 3),
        "ort_speedup": round(med["graph"] / med["onnxruntime"], 2),
        "graph_first_call_s": round(first["graph"], 2),
        "onnxruntime_first_call_s": round(first["onnxruntime"], 2),
        "all_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
    })
    return row


def _child(arch: str, size: int, runs: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", arch, "--size", str(size), "--runs", str(runs)],
        capture_output=True, text=True, env={**os.environ, "GLOG_v": "3"},
    )
    if out.returncode:
        raise SystemExit(f"{arch}: child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _f(row: dict, key: str, fmt: str = "{}") -> str:
    return fmt.format(row[key]) if key in row else "-"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--archs", nargs="+", default=list(ARCHS))
    ap.add_argument("--child", metavar="ARCH")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.size, args.runs)))
        return
    started = time.time()
    rows = []
    for arch in args.archs:
        rows.append(_child(arch, args.size, args.runs))
        print(json.dumps(rows[-1]), flush=True)
    load = os.getloadavg()
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "load_average_end": [round(v, 2) for v in load],
        "seconds": round(time.time() - started, 1),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "export.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        f"# Export and ONNX Runtime, {args.size} px, batch 1",
        "",
        f"Machine: {meta['machine']}; load average at end {tuple(meta['load_average_end'])}; "
        f"ONEDNN_MAX_CPU_ISA={meta['onednn_max_cpu_isa']}. Synthetic full-size weights; "
        "`hub.export` with verification. Forward: hub.load's GRAPH network vs the exported "
        f"ONNX file in ONNX Runtime (CPU), calls interleaved, median of {args.runs}.",
        "",
        "| arch | MindIR export s (verified total) | ONNX export s (verified total) | ONNX max rel diff "
        "| GRAPH forward s | ORT forward s | ORT speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        onnx = (f"{r['onnx_export_s']} ({r['onnx_total_s']})" if "onnx_export_s" in r
                else f"not exportable: {r.get('onnx_unsupported_op')}")
        lines.append(
            f"| {r['arch']} | {_f(r, 'mindir_export_s')} ({_f(r, 'mindir_total_s')}) | {onnx} | "
            f"{_f(r, 'onnx_max_rel_diff', '{:.2g}')} | {_f(r, 'graph_s')} | "
            f"{_f(r, 'onnxruntime_s')} | {_f(r, 'ort_speedup', '{}x')} |"
        )
    (RESULTS / "export.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
