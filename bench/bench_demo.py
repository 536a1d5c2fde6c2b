"""The full demo's quality floor: `yolohub demo` reaches AP50 >= 70 on its val split, whatever the
seed and the thread count, and its published claim survives the download round trip.

Run by hand (each run is one full `make demo`, about six minutes on 2 idle cores):

    .venv/bin/python bench/bench_demo.py [--seeds 0 1 2] [--threads 2 1] [--floor 70]

Every (seed, OMP_NUM_THREADS) pair runs the real CLI in a fresh process and output directory.
Wall time is reported next to the CPU time the run used (user + system of the demo process and
its data-loader workers): on a shared machine the wall time is inflated by the other jobs, the
CPU time much less so.  Writes bench/results/demo.json and demo.md; exits 1 when any run is below
the floor or its claim is not reproduced.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def run_once(seed: int, threads: int, out: Path, extra: list[str]) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), YOLOHUB_PROGRESS="off",
               PYTHONPATH=str(ROOT))
    env.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
    cmd = [sys.executable, "-m", "hub", "demo", "--out", str(out), "--seed", str(seed), "--json",
           *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    row = {
        "seed": seed,
        "omp_num_threads": threads,
        "exit_code": proc.returncode,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    try:
        summary = json.loads(proc.stdout)
    except json.JSONDecodeError:
        row["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        return row
    steps = {s["name"]: s["seconds"] for s in summary["steps"]}
    row.update(
        claimed=round(summary["claimed"], 2),
        reproduced=round(summary["reproduced"], 2),
        holds=summary["holds"],
        found=summary["found"],
        val_objects=summary["val_objects"],
        false_detections=summary["false_detections"],
        duplicates=summary.get("duplicates"),
        train_s=steps.get("train"),
        sha256=summary["sha256"],
    )
    return row


def write_results(rows: list[dict], args) -> bool:
    """Write demo.json and demo.md for the runs so far; True when every run meets the floor."""
    ok = [r for r in rows if "reproduced" in r]
    floor_met = len(ok) == len(rows) and all(
        r["reproduced"] >= args.floor and r["holds"] for r in ok
    )
    same_seed = {}
    for r in ok:
        same_seed.setdefault(r["seed"], set()).add(r["sha256"])
    result = {
        "what": "yolohub demo end to end (train, measure, publish, serve, load, eval, gallery, "
        "predict) per seed and OMP_NUM_THREADS",
        "demo_args": args.demo_arg,
        "floor_AP50": args.floor,
        "floor_met": floor_met,
        "min_AP50": min((r["reproduced"] for r in ok), default=None),
        "identical_weights_across_threads": {str(k): len(v) == 1 for k, v in same_seed.items()},
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "AVX2 (set by the bench)"),
        },
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# The full demo's AP50 floor (bench/bench_demo.py)",
        "",
        f"`yolohub demo {' '.join(args.demo_arg)}`".replace(" `", "`") + f" per seed and thread "
        f"count on {os.cpu_count()} CPUs, {result['date']}. Floor: AP50 >= {args.floor} on the "
        f"val split and the claim reproduced after download: "
        f"**{'met' if floor_met else 'NOT met'}** (lowest AP50: {result['min_AP50']}).",
        "",
        "| seed | OMP_NUM_THREADS | AP50 claimed | AP50 after download | holds | found / objects "
        "(score >= 0.25) | false | train s | wall s | CPU s | load avg (start, end) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "reproduced" not in r:
            md.append(f"| {r['seed']} | {r['omp_num_threads']} | failed: {r.get('error')} "
                      "| | | | | | | | |")
            continue
        md.append(
            f"| {r['seed']} | {r['omp_num_threads']} | {r['claimed']} | {r['reproduced']} | "
            f"{r['holds']} | {r['found']} / {r['val_objects']} | {r['false_detections']} | "
            f"{r['train_s']} | {r['wall_s']} | {r['cpu_s']} | {r['load_avg']} |"
        )
    md += [
        "",
        "Same seed, other thread count, identical weights: "
        + ", ".join(f"seed {k}: {v}" for k, v in result["identical_weights_across_threads"].items())
        + ".",
        "Wall time on a shared machine is inflated by other jobs; CPU s (user + system of the demo "
        "and its loader workers) is the better guide to the cost of a run.",
    ]
    (RESULTS / f"{args.tag}.md").write_text("\n".join(md) + "\n")
    return floor_met


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--floor", type=float, default=70.0)
    ap.add_argument("--demo-arg", action="append", default=[], metavar="ARG",
                    help="extra argument for `yolohub demo` (repeatable), e.g. --demo-arg=--quick")
    ap.add_argument("--tag", default="demo", help="results file stem (demo)")
    ap.add_argument("--append", action="store_true",
                    help="keep the runs already in the results file (same seed and thread count "
                    "are replaced), to spread a long benchmark over several sittings")
    args = ap.parse_args()

    rows = []
    previous = RESULTS / f"{args.tag}.json"
    if args.append and previous.is_file():
        wanted = {(s, t) for s in args.seeds for t in args.threads}
        rows = [r for r in json.loads(previous.read_text())["runs"]
                if (r["seed"], r["omp_num_threads"]) not in wanted]
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        for seed in args.seeds:
            for threads in args.threads:
                row = run_once(seed, threads, Path(tmp) / f"s{seed}-t{threads}", args.demo_arg)
                rows.append(row)
                print(json.dumps(row), flush=True)
                floor_met = write_results(rows, args)  # after every run: a long bench can stop
    print(f"floor {'met' if floor_met else 'NOT met'}; results in {RESULTS / args.tag}.md")
    sys.exit(0 if floor_met else 1)


if __name__ == "__main__":
    main()
