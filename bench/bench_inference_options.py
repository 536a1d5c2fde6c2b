"""What MindSpore 2.10's CPU backend rewards on our detectors, one option at a time.

In one process (calls interleaved, round after round, medians; same weights everywhere):

* ``train form O0``: the network as built, ``mindspore.jit`` at jit_level O0 (the old default);
* ``folded O0``: :func:`yolomodels.inference.inference_form` (BatchNorm folded), O0;
* ``folded O1``: the same at jit_level O1 (MindSpore's automatic operator fusion);
* ``folded O0 batch 8``: one call on 8 images, time per image.

Thread settings can be set once per process only, so each runs in its own child process
(``folded O0`` timed there): MindSpore's default CPU kernel thread count, and
``mindspore.device_context.cpu.op_tuning.threads_num`` = 1 and = the core count, and
``mindspore.runtime.set_cpu_affinity(True)``.

Run by hand: ``.venv/bin/python bench/bench_inference_options.py [--size 320] [--runs 3]``.
Writes bench/results/inference_options.json and .md.
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


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _net(arch: str, size: int):
    import mindspore as ms
    import numpy as np

    import yolomodels

    net = yolomodels.build(arch, img_size=size)
    rng = np.random.default_rng(0)
    for name, p in net.parameters_and_names():  # non-trivial BatchNorm statistics
        if ".bn." in name:
            lo, hi = (0.5, 1.5) if ("gamma" in name or "variance" in name) else (-0.2, 0.2)
            p.set_data(ms.Tensor(rng.uniform(lo, hi, p.shape).astype(np.float32)))
    net.set_train(False)
    return net


def child_variants(arch: str, size: int, runs: int) -> dict:
    import mindspore as ms
    import numpy as np

    from yolomodels.inference import inference_form

    net = _net(arch, size)
    t0 = time.perf_counter()
    folded = inference_form(net)
    fold_s = time.perf_counter() - t0
    rng = np.random.RandomState(0)
    x1 = ms.Tensor(rng.rand(1, 3, size, size).astype(np.float32))
    x8 = ms.Tensor(rng.rand(8, 3, size, size).astype(np.float32))
    fns = {
        "train form O0": (ms.jit(net.construct, jit_level="O0"), x1, 1),
        "folded O0": (ms.jit(folded.construct, jit_level="O0"), x1, 1),
        "folded O1": (ms.jit(inference_form(net).construct, jit_level="O1"), x1, 1),
        "folded O0 batch 8": (ms.jit(folded.construct, jit_level="O0"), x8, 8),
    }
    first, outs = {}, {}
    for k, (f, x, _) in fns.items():
        t0 = time.perf_counter()
        outs[k] = f(x).asnumpy()
        first[k] = time.perf_counter() - t0
    ref = outs["train form O0"]
    scale = float(np.abs(ref).max())
    rel = {k: float(np.abs(v[:1] - ref).max()) / scale for k, v in outs.items()}
    times: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for k, (f, x, n) in fns.items():
            c0 = time.process_time()
            times[k].append(_timed(lambda f=f, x=x: f(x).asnumpy()) / n)
            cpu[k].append((time.process_time() - c0) / n)
    med = {k: statistics.median(v) for k, v in times.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    base, cbase = med["train form O0"], cmed["train form O0"]
    return {
        "arch": arch, "size": size, "runs": runs, "fold_s": round(fold_s, 2),
        "rows": [
            {"variant": k, "s_per_image": round(med[k], 3), "speedup": round(base / med[k], 3),
             "cpu_s_per_image": round(cmed[k], 3), "cpu_speedup": round(cbase / cmed[k], 3),
             "first_call_s": round(first[k], 2), "max_rel_diff": rel[k],
             "all_s": [round(t, 3) for t in times[k]]}
            for k in fns
        ],
    }


def child_threads(arch: str, size: int, runs: int, setting: str) -> dict:
    import mindspore as ms
    import numpy as np

    from yolomodels.inference import inference_form

    if setting.startswith("threads="):
        ms.device_context.cpu.op_tuning.threads_num(int(setting.split("=")[1]))
    elif setting == "affinity":
        ms.runtime.set_cpu_affinity(True)
    folded = inference_form(_net(arch, size))
    f = ms.jit(folded.construct)
    x = ms.Tensor(np.random.RandomState(0).rand(1, 3, size, size).astype(np.float32))
    first = _timed(lambda: f(x).asnumpy())
    c0 = time.process_time()
    times = [_timed(lambda: f(x).asnumpy()) for _ in range(runs)]
    cpu = (time.process_time() - c0) / runs
    return {"setting": setting, "s_per_image": round(statistics.median(times), 3),
            "cpu_s_per_image": round(cpu, 3),
            "first_call_s": round(first, 2), "all_s": [round(t, 3) for t in times]}


def child_conv_share(arch: str, size: int) -> None:
    """One timed forward with oneDNN's verbose log on (the parent sums the conv times)."""
    import mindspore as ms
    import numpy as np

    from yolomodels.inference import inference_form

    f = ms.jit(inference_form(_net(arch, size)).construct)
    x = ms.Tensor(np.random.RandomState(0).rand(1, 3, size, size).astype(np.float32))
    f(x).asnumpy()
    print("TIMED", flush=True)
    w0, c0 = time.perf_counter(), time.process_time()
    f(x).asnumpy()
    print(json.dumps({"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0}))


def conv_share(arch: str, size: int) -> dict:
    """Share of one forward's wall time spent in oneDNN convolutions (from ONEDNN_VERBOSE)."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", "convshare", arch, str(size)], capture_output=True,
        text=True, env={**os.environ, "GLOG_v": "3", "ONEDNN_VERBOSE": "1"},
    )
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    lines = out.stdout.split("TIMED", 1)[1].splitlines()
    conv_ms = sum(float(x.rsplit(",", 1)[1]) for x in lines
                  if x.startswith("onednn_verbose") and ",exec," in x and ",convolution," in x)
    total = json.loads(lines[-1])
    return {"conv_s": round(conv_ms / 1000, 3), "forward_wall_s": round(total["wall_s"], 3),
            "forward_cpu_s": round(total["cpu_s"], 3),
            "conv_share": round(conv_ms / 1000 / total["wall_s"], 3)}


def _child(*args: str, runs: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args, "--runs", str(runs)],
        capture_output=True, text=True, env={**os.environ, "GLOG_v": "3"},
    )
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="yolov3_darknet53")
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2, help="rounds over the thread settings")
    ap.add_argument("--child", nargs="+")
    args = ap.parse_args()
    if args.child:
        kind, arch, size, *rest = args.child
        if kind == "convshare":
            child_conv_share(arch, int(size))
        elif kind == "variants":
            print(json.dumps(child_variants(arch, int(size), args.runs)))
        else:
            print(json.dumps(child_threads(arch, int(size), args.runs, rest[0])))
        return

    started = time.time()
    share = conv_share(args.arch, args.size)
    print(json.dumps(share), flush=True)
    variants = _child("variants", args.arch, str(args.size), runs=args.runs)
    print(json.dumps(variants), flush=True)
    threads = []
    n = os.cpu_count() or 1
    # two rounds over the thread settings, so that a load spike hits each setting once at most
    settings = ("default", "threads=1", f"threads={n}", "affinity")
    for _ in range(args.rounds):
        for s in settings:
            threads.append(_child("threads", args.arch, str(args.size), s, runs=args.runs))
            print(json.dumps(threads[-1]), flush=True)
    by_setting = {
        s: statistics.median(t["s_per_image"] for t in threads if t["setting"] == s)
        for s in settings
    }
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "load_average_at_end": os.getloadavg(),
        "wall_s": round(time.time() - started, 1),
        "conv_share": share,
        "variants": variants,
        "threads": threads,
        "threads_median_s": by_setting,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "inference_options.json").write_text(json.dumps(result, indent=2) + "\n")
    la = tuple(round(v, 2) for v in result["load_average_at_end"])
    lines = [
        f"# Inference options on {args.arch} at {args.size} px (CPU, eval mode)",
        "",
        f"Machine: {result['machine']}; load average at end {la}. Medians of "
        f"{args.runs} interleaved calls; same weights; BatchNorm statistics non-trivial.",
        f"Folding took {variants['fold_s']} s. oneDNN convolutions take {share['conv_s']} s of a "
        f"{share['forward_wall_s']} s forward ({100 * share['conv_share']:.0f}% of its wall time; "
        "from ONEDNN_VERBOSE, folded O0, batch 1).",
        "",
        "| variant | s / image | vs train form O0 | CPU s / image | CPU vs train form O0 "
        "| first call s | max rel diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in variants["rows"]:
        lines.append(f"| {r['variant']} | {r['s_per_image']} | {r['speedup']}x "
                     f"| {r['cpu_s_per_image']} | {r['cpu_speedup']}x "
                     f"| {r['first_call_s']} | {r['max_rel_diff']:.1e} |")
    lines += ["", f"Thread settings (folded O0, batch 1, one child process each, {args.rounds} "
              "round(s)):", "", "| setting | s / image (median of rounds) | CPU s / image |",
              "|---|---|---|"]
    for s, v in by_setting.items():
        cpu = statistics.median(t["cpu_s_per_image"] for t in threads if t["setting"] == s)
        lines.append(f"| {s} | {v:.3f} | {cpu:.3f} |")
    (RESULTS / "inference_options.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
