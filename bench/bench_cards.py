"""Card throughput: `yolohub validate` on thousands of cards, and `yolohub list` start-up time.

Run by hand: `.venv/bin/python bench/bench_cards.py`. Writes bench/results/cards.json and .md.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CARD = (ROOT / "cards" / "yolov3_darknet53.md").read_text()


def timed(argv: list[str], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(argv, check=False, capture_output=True)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    cli = [sys.executable, "-m", "hub"]
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(2000):
            Path(tmp, f"card{i:05d}.md").write_text(CARD.replace("yolov3_darknet53\n", f"model_{i}\n", 1))
        validate_s = timed([*cli, "validate", tmp, "--json"], repeat=2)
    list_s = timed([*cli, "list"])
    python_s = timed([sys.executable, "-c", "pass"])
    result = {
        "machine": platform.processor() or platform.machine(),
        "validate_2000_cards_s": round(validate_s, 3),
        "cards_per_s": round(2000 / validate_s),
        "list_startup_s": round(list_s, 3),
        "bare_python_startup_s": round(python_s, 3),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cards.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "cards.md").write_text(
        "| measure | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in result.items())
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
