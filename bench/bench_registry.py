"""Team registry at scale: index 10,000 cards, update after one new card, list a cached remote
index of 10,000 cards, and count the requests an unchanged index costs.

Targets (issue 12): index 10,000 cards < 30 s; update after one new card < 1 s; `yolohub list`
over a cached remote index of 10,000 cards < 0.5 s whole process; one conditional request when
nothing changed.

Run by hand: `.venv/bin/python bench/bench_registry.py [N]`. Writes bench/results/registry.json
and .md.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CARD = (ROOT / "cards" / "yolov3_darknet53.md").read_text()
sys.path.insert(0, str(ROOT))


def card_text(i: int) -> str:
    return CARD.replace("model-name: yolov3_darknet53\n", f"model-name: model_{i:05d}\n", 1)


CPU: dict[str, float] = {}  # the last run's user+system CPU seconds (robust on a busy machine)


def run(argv: list[str], env: dict) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU["last"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if r.returncode != 0:
        raise SystemExit(f"{argv} failed ({r.returncode}): {r.stderr[-2000:]}")
    return dt


def best(argv: list[str], env: dict, repeat: int = 3) -> tuple[float, float]:
    """(best wall time, best CPU time) of ``repeat`` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        walls.append(run(argv, env))
        cpus.append(CPU["last"])
    return min(walls), min(cpus)


def main() -> None:
    from hub.assets.serve import StaticHandler, StaticServer

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    cli = [sys.executable, "-m", "hub"]
    with tempfile.TemporaryDirectory() as tmp:
        reg = Path(tmp, "reg")
        for i in range(n):
            d = reg / f"model_{i:05d}"
            d.mkdir(parents=True)
            (d / "1.0.md").write_text(card_text(i))
        env = {**os.environ, "YOLOHUB_HOME": str(Path(tmp, "home")), "YOLOHUB_PROGRESS": "0",
               "PYTHONPATH": str(ROOT)}
        env.pop("YOLOHUB_CARDS", None)
        index_s = run([*cli, "index", str(reg), "--no-html"], env)
        index_cpu = CPU["last"]
        catalog_s = run([*cli, "index", str(reg)], env)  # index unchanged: writes the HTML
        nothing_s, nothing_cpu = best([*cli, "index", str(reg)], env, repeat=2)
        for k, html in ((n, False), (n + 1, True)):
            d = reg / f"model_new_{k}"
            d.mkdir()
            (d / "1.0.md").write_text(card_text(k))
            if html:
                one_new_s = run([*cli, "index", str(reg)], env)
                one_new_cpu = CPU["last"]
            else:
                one_new_index_s = run([*cli, "index", str(reg), "--no-html"], env)
                one_new_index_cpu = CPU["last"]
        index_bytes = (reg / "index.json").stat().st_size

        gets: list[tuple[str, int]] = []

        class Counting(StaticHandler):
            def send_response(self, code, message=None):
                if self.command == "GET":
                    gets.append((self.path, int(code)))
                super().send_response(code, message)

            def log_message(self, *a):
                pass

        server = StaticServer(reg, ("127.0.0.1", 0), Counting)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        url = server.url + "/"
        try:
            first_fetch_s = run([*cli, "update", "--cards", url], env)
            fetched = list(gets)
            gets.clear()
            list_s, list_cpu = best([*cli, "list", "--cards", url], env)
            cached_requests = len(gets)
            gets.clear()
            run([*cli, "list", "--cards", url], {**env, "YOLOHUB_REGISTRY_TTL": "0"})
            revalidate = list(gets)
            gets.clear()
            search_s, search_cpu = best([*cli, "search", "model_0042", "--cards", url], env)
        finally:
            server.shutdown()
            server.server_close()
        builtin_list_s, builtin_list_cpu = best([*cli, "list"], env)
    result = {
        "machine": platform.processor() or platform.machine(),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "cards": n,
        "index_full_s": round(index_s, 2),
        "index_full_cpu_s": round(index_cpu, 2),
        "catalog_full_s": round(catalog_s, 2),
        "index_and_catalog_unchanged_s": round(nothing_s, 2),
        "index_and_catalog_unchanged_cpu_s": round(nothing_cpu, 2),
        "index_after_one_new_card_s": round(one_new_index_s, 2),
        "index_after_one_new_card_cpu_s": round(one_new_index_cpu, 2),
        "index_and_catalog_after_one_new_card_s": round(one_new_s, 2),
        "index_and_catalog_after_one_new_card_cpu_s": round(one_new_cpu, 2),
        "index_json_mb": round(index_bytes / 1e6, 1),
        "first_index_fetch_s": round(first_fetch_s, 2),
        "first_fetch_requests": len(fetched),
        "list_cached_remote_index_s": round(list_s, 3),
        "list_cached_remote_index_cpu_s": round(list_cpu, 3),
        "list_cached_remote_requests": cached_requests,
        "revalidate_requests": len(revalidate),
        "revalidate_statuses": [s for _, s in revalidate],
        "search_cached_remote_index_s": round(search_s, 3),
        "search_cached_remote_index_cpu_s": round(search_cpu, 3),
        "list_builtin_only_s": round(builtin_list_s, 3),
        "list_builtin_only_cpu_s": round(builtin_list_cpu, 3),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "registry.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "registry.md").write_text(
        "| measure | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in result.items())
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
