"""Forward throughput, ours (hub's default inference path) vs MindYOLO 0.5.0 in GRAPH mode.

Each (architecture, size, batch) runs in a fresh child process holding both networks with the
same weights: ours is built with ``hub.tasks.load.build_for(mode="graph")``, the path
``hub.load`` / predict / eval take (BatchNorm folded, ``mindspore.jit``); MindYOLO's is its own
``create_model`` from its layer table (written below from the fact sheet, no YAML), run with the
process context switched to ``GRAPH_MODE`` around each call, as MindYOLO's scripts run it.
Weights: our training form gets random weights (BatchNorm statistics included); MindYOLO's
network takes them by parameter name (the names are the same by construction); the folded
weights of our network are then taken from ``inference_form`` of that training form.

The calls alternate (ours, MindYOLO, ours, ...) so that load from other processes on the shared
cores hits both alike; medians of wall time and of the process's CPU time per call are
reported, and the ratio of the medians.  The arithmetic limit: convolution FLOPs counted from
the network's Conv2d cells (2 x MACs, output sizes measured with forward hooks at 64 px and
scaled, exact for multiples of 32), peak = cores x clock x 32 FP32 FLOP/cycle (two AVX2 FMA
units), the clock read from /proc/cpuinfo.

Run by hand: ``.venv/bin/python bench/bench_vs_mindyolo.py [--runs 3] [--sizes 320 640]
[--batches 1 8] [--archs ...]``.  Writes bench/results/vs_mindyolo.json and .md.
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
ARCHS = ("yolov3_darknet53", "yolov4_cspdarknet53")
FLOP_PER_CYCLE = 32  # FP32, AVX2: 2 FMA units x 8 lanes x 2 FLOP

_B, _C, _R, _U, _K = "Bottleneck", "ConvNormAct", "Residualblock", "Upsample", "Concat"
MINDYOLO_YOLOV3 = {
    "model_name": "yolov3", "depth_multiple": 1.0, "width_multiple": 1.0, "stride": [8, 16, 32],
    "anchors": [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119],
                [116, 90, 156, 198, 373, 326]],
    "backbone": [
        [-1, 1, _C, [32, 3, 1]], [-1, 1, _C, [64, 3, 2]], [-1, 1, _B, [64]],
        [-1, 1, _C, [128, 3, 2]], [-1, 2, _B, [128]], [-1, 1, _C, [256, 3, 2]],
        [-1, 8, _B, [256]], [-1, 1, _C, [512, 3, 2]], [-1, 8, _B, [512]],
        [-1, 1, _C, [1024, 3, 2]], [-1, 4, _B, [1024]],
    ],
    "head": [
        [-1, 1, _B, [1024, False]], [-1, 1, _C, [512, 1, 1]], [-1, 1, _C, [1024, 3, 1]],
        [-1, 1, _C, [512, 1, 1]], [-1, 1, _C, [1024, 3, 1]], [-2, 1, _C, [256, 1, 1]],
        [-1, 1, _U, [None, 2, "nearest"]], [[-1, 8], 1, _K, [1]], [-1, 1, _B, [512, False]],
        [-1, 1, _B, [512, False]], [-1, 1, _C, [256, 1, 1]], [-1, 1, _C, [512, 3, 1]],
        [-2, 1, _C, [128, 1, 1]], [-1, 1, _U, [None, 2, "nearest"]], [[-1, 6], 1, _K, [1]],
        [-1, 1, _B, [256, False]], [-1, 2, _B, [256, False]],
        [[27, 22, 15], 1, "YOLOv3Head", ["nc", "anchors", "stride"]],
    ],
}


def _csp(c: int, n: int, stem: int, m: str) -> list:
    """One CSPDarknet53 stage (fact sheet layer table): down conv, main path, shortcut, concat."""
    return [
        [-1, 1, _C, [c * 2, 3, 2, m]], [-1, 1, _C, [c, 1, 1, m]], [-1, n, _R, [c, m]],
        [-1, 1, _C, [c, 1, 1, m]], [stem, 1, _C, [c, 1, 1, m]], [[-2, -1], 1, _K, [1]],
        [-1, 1, _C, [c * 2, 1, 1, m]],
    ]


def _v4_config() -> dict:
    m, lk = "act=nn.Mish()", "act=nn.LeakyReLU(0.1)"
    backbone = [
        [-1, 1, _C, [32, 3, 1, m]], [-1, 1, _C, [64, 3, 2, m]], [-1, 1, _C, [64, 1, 1, m]],
        [-1, 1, _B, [64, m]], [-1, 1, _C, [64, 1, 1, m]], [1, 1, _C, [64, 1, 1, m]],
        [[-2, -1], 1, _K, [1]], [-1, 1, _C, [64, 1, 1, m]],
        [-1, 1, _C, [128, 3, 2, m]], [-1, 1, _C, [64, 1, 1, m]], [-1, 2, _R, [64, m]],
        [-1, 1, _C, [64, 1, 1, m]], [8, 1, _C, [64, 1, 1, m]], [[-2, -1], 1, _K, [1]],
        [-1, 1, _C, [128, 1, 1, m]],
        *_csp(128, 8, 15, m), *_csp(256, 8, 22, m), *_csp(512, 4, 29, m),
    ]
    pool = "nn.MaxPool2d"
    head = [
        [-1, 1, _B, [1024, False, lk]], [-1, 1, _C, [512, 1, 1, lk]],
        [-1, 1, pool, [5, 1, "same"]], [-2, 1, pool, [9, 1, "same"]],
        [-3, 1, pool, [13, 1, "same"]], [[-1, -2, -3, -4], 1, _K, [1]],
        [-1, 1, _C, [512, 1, 1, lk]], [-1, 1, _C, [1024, 3, 1, lk]],
        [-1, 1, _C, [512, 1, 1, lk]], [-1, 1, _C, [256, 1, 1, lk]],
        [-1, 1, _U, [None, 2, "nearest"]], [28, 1, _C, [256, 1, 1, lk]], [[-2, -1], 1, _K, [1]],
        [-1, 2, _B, [512, False, lk]], [-1, 1, _C, [256, 1, 1, lk]],
        [-1, 1, _C, [128, 3, 1, lk]], [-1, 1, _U, [None, 2, "nearest"]],
        [21, 1, _C, [128, 1, 1, lk]], [[-2, -1], 1, _K, [1]], [-1, 2, _B, [256, False, lk]],
        [-1, 1, _C, [128, 1, 1, lk]], [-1, 1, _C, [256, 3, 1, lk]],
        [-2, 1, _C, [256, 3, 2, lk]], [[-1, -9], 1, _K, [1]], [-1, 2, _B, [512, False, lk]],
        [-1, 1, _C, [256, 1, 1, lk]], [-1, 1, _C, [512, 3, 1, lk]],
        [-2, 1, _C, [512, 3, 2, lk]], [[-1, -20], 1, _K, [1]],
        [-1, 3, _B, [1024, False, lk]], [[-1, -4, -9], 1, "YOLOv4Head", ["nc", "anchors"]],
    ]
    return {
        "model_name": "yolov4", "depth_multiple": 1.0, "width_multiple": 1.0,
        "stride": [32, 16, 8],
        "anchors": [[142, 110], [192, 243], [459, 401], [36, 75], [76, 55], [72, 146],
                    [12, 16], [19, 36], [40, 28]],
        "backbone": backbone, "head": head,
    }


MINDYOLO = {"yolov3_darknet53": ("yolov3", MINDYOLO_YOLOV3),
            "yolov4_cspdarknet53": ("yolov4", _v4_config())}


def clock_ghz() -> float:
    """The CPU clock in GHz from /proc/cpuinfo ("cpu MHz"), else lscpu's maximum."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("cpu mhz"):
                return float(line.split(":")[1]) / 1000
    except OSError:
        pass
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "max mhz" in line.lower():
            return float(line.split(":")[1]) / 1000
    raise SystemExit("cannot read the CPU clock from /proc/cpuinfo or lscpu")


def conv_gflops(arch: str, size: int) -> float:
    """Convolution GFLOP of one image at ``size`` px (2 x multiply-adds), from forward hooks."""
    import math

    import mindspore as ms
    import numpy as np
    from mindspore import nn

    import yolomodels

    probe = 64
    net = yolomodels.build(arch, img_size=probe)
    net.set_train(False)
    flops = []

    def hook(cell, _inputs, output):
        c_out, h, w = output.shape[1:]
        kh, kw = cell.kernel_size
        flops.append(2 * c_out * (cell.in_channels // cell.group) * kh * kw * h * w)

    handles = [c.register_forward_hook(hook) for _, c in net.cells_and_names()
               if isinstance(c, nn.Conv2d)]
    net(ms.Tensor(np.zeros((1, 3, probe, probe), np.float32)))
    for h in handles:
        h.remove()
    return math.fsum(flops) * (size / probe) ** 2 / 1e9


def _randomize(net) -> None:
    import mindspore as ms
    import numpy as np

    rng = np.random.default_rng(0)
    for name, p in net.parameters_and_names():
        if ".bn." in name:
            lo, hi = (0.5, 1.5) if name.endswith(("gamma", "moving_variance")) else (-0.2, 0.2)
            p.set_data(ms.Tensor(rng.uniform(lo, hi, p.shape).astype(np.float32)))


def _onnx_session(net, x, tmp: Path):
    """ONNX Runtime on ``net`` exported with hub's exporter (predict's backend when an ONNX file
    is at hand); None when the exporter cannot express the network (YOLOv4's Mish)."""
    import onnxruntime as ort

    from hub.tasks.export import _ms_export

    try:
        _ms_export(net, x, str(tmp / "model"), "onnx")
    except (RuntimeError, TypeError, ValueError):
        return None
    return ort.InferenceSession(str(tmp / "model.onnx"), providers=["CPUExecutionProvider"])


def child(arch: str, size: int, batch: int, runs: int, onnx: bool = False) -> dict:
    import mindspore as ms
    import numpy as np
    from mindyolo.models import create_model
    from mindyolo.utils.config import Config

    import yolomodels
    from hub.cards.catalog import resolve
    from hub.tasks.load import build_for
    from yolomodels.inference import inference_form

    ms.set_device("CPU")
    name, cfg = MINDYOLO[arch]
    theirs = create_model(model_name=name, model_cfg=Config(cfg), num_classes=80)
    theirs.set_train(False)
    train = yolomodels.build(arch, img_size=size)
    _randomize(train)
    mine = dict(train.parameters_and_names())
    matched = 0
    for pname, p in theirs.parameters_and_names():
        if pname in mine and tuple(mine[pname].shape) == tuple(p.shape):
            p.set_data(ms.Tensor(mine[pname].asnumpy()))
            matched += 1
    total = len(list(theirs.get_parameters()))
    folded_net = inference_form(train)
    folded = dict(folded_net.parameters_and_names())
    del train, mine
    ours = build_for(resolve(arch), arch_args={"img_size": size}, mode="graph")
    for pname, p in ours.parameters_and_names():
        p.set_data(ms.Tensor(folded[pname].asnumpy()))
    del folded

    x = ms.Tensor(np.random.RandomState(0).rand(batch, 3, size, size).astype(np.float32))
    session = None
    if onnx:
        tmp = Path(tempfile.mkdtemp())
        session = _onnx_session(folded_net, x, tmp)
    del folded_net

    def run_ours():
        return ours(x).asnumpy()

    def run_theirs():
        ms.set_context(mode=ms.GRAPH_MODE)
        try:
            out = theirs(x)
            return (out[0] if isinstance(out, (tuple, list)) else out).asnumpy()
        finally:
            ms.set_context(mode=ms.PYNATIVE_MODE)

    fns = {"ours": run_ours, "mindyolo": run_theirs}
    if session is not None:
        x_np = x.asnumpy()
        name = session.get_inputs()[0].name
        fns["ours_onnxruntime"] = lambda: session.run(None, {name: x_np})[0]
    first, outs = {}, {}
    for k, f in fns.items():
        t0 = time.perf_counter()
        outs[k] = f()
        first[k] = time.perf_counter() - t0
    assert ours.execution_mode == "graph", "our graph compilation fell back to PyNative"
    diff = None
    if matched == total and outs["ours"].shape == outs["mindyolo"].shape:
        ref = outs["mindyolo"]
        diff = float(np.abs(outs["ours"] - ref).max() / np.abs(ref).max())
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for k, f in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            f()
            wall[k].append((time.perf_counter() - w0) / batch)
            cpu[k].append((time.process_time() - c0) / batch)
    med = {k: statistics.median(v) for k, v in wall.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "arch": arch, "size": size, "batch": batch, "runs": runs,
        "weights_matched": f"{matched}/{total}", "max_rel_diff_vs_mindyolo": diff,
        "ours_s_per_image": round(med["ours"], 3),
        "mindyolo_s_per_image": round(med["mindyolo"], 3),
        "speedup": round(med["mindyolo"] / med["ours"], 3),
        "ours_cpu_s_per_image": round(cmed["ours"], 3),
        "mindyolo_cpu_s_per_image": round(cmed["mindyolo"], 3),
        "cpu_speedup": round(cmed["mindyolo"] / cmed["ours"], 3),
        "onnxruntime_s_per_image": round(med["ours_onnxruntime"], 3) if session else None,
        "onnxruntime_speedup": round(med["mindyolo"] / med["ours_onnxruntime"], 3)
        if session else None,
        "onnxruntime_cpu_s_per_image": round(cmed["ours_onnxruntime"], 3) if session else None,
        "first_call_s": {k: round(v, 2) for k, v in first.items()},
        "wall_s": {k: [round(t, 3) for t in v] for k, v in wall.items()},
        "cpu_s": {k: [round(t, 3) for t in v] for k, v in cpu.items()},
        "load_average": os.getloadavg(),
    }


def _run_child(args: list[str], home: Path) -> dict:
    env = {**os.environ, "GLOG_v": "3", "YOLOHUB_HOME": str(home), "YOLOHUB_PROGRESS": "0"}
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                         text=True, env=env)
    if out.returncode:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ort(row: dict) -> str:
    if not row.get("onnxruntime_s_per_image"):
        return "—"
    return (f"{row['onnxruntime_s_per_image']} ({row['onnxruntime_speedup']}x MindYOLO; CPU "
            f"{row['onnxruntime_cpu_s_per_image']} s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--runs-heavy", type=int, default=2, help="runs for batch 8 at >= 640 px")
    ap.add_argument("--sizes", type=int, nargs="+", default=[320, 640])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--archs", nargs="+", default=list(ARCHS))
    ap.add_argument("--name", default="vs_mindyolo", help="results file stem")
    ap.add_argument("--onnx", action="store_true",
                    help="also time ONNX Runtime on our exported network (where it exports)")
    ap.add_argument("--child", nargs="+")
    args = ap.parse_args()
    if args.child:
        if args.child[0] == "flops":
            print(json.dumps({"gflops": conv_gflops(args.child[1], int(args.child[2]))}))
        else:
            arch, size, batch, runs, *onnx = args.child
            print(json.dumps(child(arch, int(size), int(batch), int(runs), bool(onnx))))
        return

    started = time.time()
    ghz = clock_ghz()
    cores = os.cpu_count() or 1
    peak = cores * ghz * FLOP_PER_CYCLE
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        # conv FLOPs scale exactly with the pixel count (sizes are multiples of 32)
        at_640 = {a: _run_child(["flops", a, "640"], home)["gflops"] for a in args.archs}
        gflops = {(a, s): at_640[a] * (s / 640) ** 2 for a in args.archs for s in args.sizes}
        for arch in args.archs:
            for size in args.sizes:
                for batch in args.batches:
                    runs = args.runs_heavy if (batch > 1 and size >= 640) else args.runs
                    onnx = ["onnx"] if args.onnx else []
                    row = _run_child([arch, str(size), str(batch), str(runs), *onnx], home)
                    g = gflops[(arch, size)]
                    row["conv_gflop_per_image"] = round(g, 1)
                    row["limit_s_per_image"] = round(g / peak, 3)
                    row["ours_fraction_of_limit"] = round(g / peak / row["ours_s_per_image"], 3)
                    row["mindyolo_fraction_of_limit"] = round(
                        g / peak / row["mindyolo_s_per_image"], 3)
                    # the same per CPU second used (one core's peak): what the kernels reach
                    # however much of the machine the other jobs leave us
                    core_peak = ghz * FLOP_PER_CYCLE
                    row["ours_fraction_per_cpu_s"] = round(
                        g / core_peak / row["ours_cpu_s_per_image"], 3)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    result = {
        "machine": f"{platform.machine()}, {cores} cores (shared with other jobs)",
        "clock_ghz": ghz, "clock_source": "/proc/cpuinfo 'cpu MHz'",
        "peak_gflops": round(peak, 1), "flop_per_cycle": FLOP_PER_CYCLE,
        "load_average_at_end": os.getloadavg(), "wall_s": round(time.time() - started, 1),
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    la = tuple(round(v, 1) for v in result["load_average_at_end"])
    lines = [
        "# Forward per image: ours (hub's inference path) vs MindYOLO 0.5.0 GRAPH",
        "",
        f"Machine: {result['machine']}; load average at end {la}. Same weights (by name), "
        "calls interleaved in one process per row, medians. Arithmetic limit: conv FLOPs / "
        f"peak, peak = {cores} cores x {ghz:.3f} GHz (/proc/cpuinfo) x {FLOP_PER_CYCLE} FP32 "
        f"FLOP/cycle = {peak:.0f} GFLOP/s. CPU s = the process's CPU time per image (less "
        "sensitive to the other jobs on the machine than wall time); '% of limit per CPU s' = "
        "conv FLOPs / (CPU s x one core's peak), what the kernels reach in the CPU time they "
        "get.",
        "",
        "| arch | px | batch | ours s/img | MindYOLO s/img | speedup | ours CPU s | MindYOLO CPU s "
        "| CPU speedup | conv GFLOP | limit s | ours % of limit | MindYOLO % "
        "| ours % of limit per CPU s | ours via ONNX Runtime s/img | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['arch']} | {r['size']} | {r['batch']} | {r['ours_s_per_image']} "
            f"| {r['mindyolo_s_per_image']} | {r['speedup']}x | {r['ours_cpu_s_per_image']} "
            f"| {r['mindyolo_cpu_s_per_image']} | {r['cpu_speedup']}x "
            f"| {r['conv_gflop_per_image']} | {r['limit_s_per_image']} "
            f"| {100 * r['ours_fraction_of_limit']:.0f}% "
            f"| {100 * r['mindyolo_fraction_of_limit']:.0f}% "
            f"| {100 * r['ours_fraction_per_cpu_s']:.0f}% | {_ort(r)} | {r['load_average'][0]:.1f} |"
        )
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
