"""Verification speed: yolohub's streaming sha256 vs `openssl dgst -sha256`, and `verify --all`.

Run by hand: `.venv/bin/python bench/bench_verify.py`.  Writes bench/results/verify.json and .md.

1. One 256 MB file (page cache warm), hashed alternately by `openssl dgst -sha256` and by
   ``hub.assets.integrity.sha256_file`` (what `yolohub verify --deep` and downloads use); best of 5 each,
   measured in the same run so the ratio is fair.
2. A warm cache of 3 downloaded assets (64 MB each): ``hub.verify(all=True)`` in-process (the
   record check: one stat per file, no re-hash), the same with ``deep=True`` for contrast, and
   the whole `yolohub verify --all` process including Python start-up.
"""

from __future__ import annotations

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
sys.path.insert(0, str(ROOT))

MB = 1_000_000


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(os.urandom(n))
            left -= n


def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def hash_throughput(tmp: Path) -> dict:
    from hub.assets.integrity import sha256_file

    path = tmp / "256mb.bin"
    size = 256 * MB
    write_random(path, size)
    openssl_digest = subprocess.run(["openssl", "dgst", "-sha256", "-r", str(path)],
                                    capture_output=True, text=True, check=True).stdout.split()[0]
    assert sha256_file(path) == openssl_digest
    t_openssl, t_hub = float("inf"), float("inf")
    for _ in range(5):  # alternate so both see the same machine load
        t0 = time.perf_counter()
        subprocess.run(["openssl", "dgst", "-sha256", str(path)], capture_output=True, check=True)
        t_openssl = min(t_openssl, time.perf_counter() - t0)
        t0 = time.perf_counter()
        sha256_file(path)
        t_hub = min(t_hub, time.perf_counter() - t0)
    return {
        "file_mb": size // MB,
        "openssl_s": round(t_openssl, 4),
        "yolohub_s": round(t_hub, 4),
        "openssl_mb_per_s": round(size / MB / t_openssl),
        "yolohub_mb_per_s": round(size / MB / t_hub),
        "ratio_vs_openssl": round(t_openssl / t_hub, 3),
        "target_ratio": 0.9,
    }


def verify_all(tmp: Path) -> dict:
    home = tmp / "home"
    os.environ["YOLOHUB_HOME"] = str(home)
    os.environ["YOLOHUB_PROGRESS"] = "0"
    from hub.assets.download import fetch_file
    from hub.assets.files import verify

    for i in range(3):
        src = tmp / f"asset{i}.ckpt"
        write_random(src, 64 * MB)
        fetch_file([src.as_uri()], sha256=_sha(src), owner=f"asset{i}@1")
    runs = []
    for _ in range(30):
        t0 = time.perf_counter()
        results = verify(all=True)
        runs.append(time.perf_counter() - t0)
        assert len(results) == 3 and all(r.ok and r.method == "record" for r in results)
    deep = best_of(lambda: verify(all=True, deep=True), 2)
    cli = [sys.executable, "-m", "hub", "verify", "--all"]
    env = dict(os.environ)
    cli_s = best_of(lambda: subprocess.run(cli, env=env, capture_output=True, check=True), 5)
    python_s = best_of(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), 5)
    return {
        "assets": 3,
        "asset_mb": 64,
        "verify_all_record_ms_median": round(statistics.median(runs) * 1000, 2),
        "verify_all_record_ms_max": round(max(runs) * 1000, 2),
        "verify_all_deep_ms": round(deep * 1000, 1),
        "cli_verify_all_process_ms": round(cli_s * 1000, 1),
        "bare_python_process_ms": round(python_s * 1000, 1),
    }


def _sha(path: Path) -> str:
    from hub.assets.integrity import sha256_file

    return sha256_file(path)


def main() -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        result = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
            "openssl": subprocess.run(["openssl", "version"], capture_output=True,
                                      text=True).stdout.strip(),
            "python": platform.python_version(),
            "hash": hash_throughput(tmp),
            "verify_all": verify_all(tmp),
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "verify.json").write_text(json.dumps(result, indent=2) + "\n")
    h, v = result["hash"], result["verify_all"]
    md = [
        "# Verification benchmark (`bench/bench_verify.py`)",
        "",
        f"Machine: {result['machine']}; {result['openssl']}; Python {result['python']}.",
        "",
        "## sha256 of a 256 MB file (page cache warm, best of 5, alternating)",
        "",
        "| tool | seconds | MB/s |",
        "|---|---|---|",
        f"| `openssl dgst -sha256` | {h['openssl_s']} | {h['openssl_mb_per_s']} |",
        f"| yolohub (`sha256_file`, 1 MiB chunks) | {h['yolohub_s']} | {h['yolohub_mb_per_s']} |",
        "",
        f"Ratio yolohub/openssl throughput: **{h['ratio_vs_openssl']}** (target >= 0.9).",
        "",
        "## `verify --all` on a warm cache of 3 assets (64 MB each)",
        "",
        "| measure | ms |",
        "|---|---|",
        f"| `hub.verify(all=True)` median of 30 (record check, no re-hash) | "
        f"{v['verify_all_record_ms_median']} |",
        f"| same, slowest of 30 | {v['verify_all_record_ms_max']} |",
        f"| `hub.verify(all=True, deep=True)` (re-hash 192 MB) | {v['verify_all_deep_ms']} |",
        f"| `yolohub verify --all` whole process | {v['cli_verify_all_process_ms']} |",
        f"| bare `python -c pass` process | {v['bare_python_process_ms']} |",
        "",
    ]
    (RESULTS / "verify.md").write_text("\n".join(md))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
