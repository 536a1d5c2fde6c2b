"""The persistent compile cache: a second process loads the graph, keys never collide, a
corrupt file is rebuilt, concurrent processes share one directory safely, prune cleans up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub.settings import get_settings
from hub.tasks import compile_cache

ROOT = Path(__file__).resolve().parents[1]

# builds a scaled-down YOLOv3 through the hub (random init), sets name-derived weights so that
# every process holds the same network, runs one forward per size and prints output sums
SCRIPT = """
import sys, zlib, numpy as np, mindspore as ms
from hub.tasks.load import build_for
from hub.cards.catalog import resolve
net = build_for(resolve("yolov3_darknet53"), num_classes=3,
                arch_args={"depth_multiple": 0.33, "width_multiple": 0.25, "img_size": 64})
for p in (p for p in net.get_parameters() if len(p.shape) == 4 or p.name.endswith("bias")):
    rng = np.random.RandomState(zlib.crc32(p.name.encode()))
    p.set_data(ms.Tensor((rng.standard_normal(p.shape) * 0.05).astype(np.float32)))
for size in map(int, sys.argv[1:]):
    x = ms.Tensor(np.linspace(0, 1, 3 * size * size, dtype=np.float32).reshape(1, 3, size, size))
    out = net(x).asnumpy().astype(np.float64)
    assert np.isfinite(out).all()
    print(size, repr(float(out.sum())))
"""


def run(home: Path, *sizes: int, env_extra=None, wait=True):
    env = {**os.environ, "YOLOHUB_HOME": str(home), "GLOG_v": "3", **(env_extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    script = home.parent / "forward.py"  # MindSpore's cache hashes the entry script file
    script.write_text(SCRIPT)
    cmd = [sys.executable, str(script), *map(str, sizes)]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return sorted(done.stdout.splitlines())


def graph_files(home: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns)
            for p in (home / "compile").rglob("*.mindir")}


def test_a_second_process_loads_the_graph_from_the_cache_and_gets_the_same_output(tmp_path):
    home = tmp_path / "home"
    first = run(home, 64)
    files = graph_files(home)
    assert len(files) == 1, files
    (path,) = files
    assert path.parents[3].name == f"mindspore-{compile_cache.mindspore_version()}"
    assert run(home, 64) == first
    assert graph_files(home) == files  # loaded, not compiled and rewritten


def test_only_a_process_s_first_graph_is_cached_so_keys_never_mix(tmp_path):
    home = tmp_path / "home"
    uncached = run(home, 64, 96, env_extra={"YOLOHUB_COMPILE_CACHE": "0"})
    assert run(home, 64, 96) == uncached
    assert len(graph_files(home)) == 1  # the 64-px graph only
    assert run(home, 96, 64) == uncached  # the other order caches the 96-px graph
    files = graph_files(home)
    assert len({p.parents[2] for p in files}) == 2
    assert run(home, 64, 96) == uncached and run(home, 96, 64) == uncached
    assert graph_files(home) == files


def test_a_corrupt_cache_file_is_rebuilt_and_the_result_is_unchanged(tmp_path):
    home = tmp_path / "home"
    first = run(home, 64)
    (path, (size, _)), = graph_files(home).items()
    path.chmod(0o600)
    with open(path, "r+b") as f:
        f.truncate(size // 3)
    assert run(home, 64) == first
    assert path.stat().st_size == size


def test_two_processes_compiling_the_same_graph_at_once_both_succeed(tmp_path):
    home = tmp_path / "home"
    procs = [run(home, 64, wait=False) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        outs.append(sorted(out.splitlines()))
    assert outs[0] == outs[1]
    assert len(graph_files(home)) >= 1


def test_a_process_without_a_script_file_compiles_uncached(tmp_path):
    env = {**os.environ, "YOLOHUB_HOME": str(tmp_path / "home"), "GLOG_v": "3"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", SCRIPT, "64"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "home" / "compile").exists()


def test_the_cache_can_be_switched_off(tmp_path):
    home = tmp_path / "home"
    run(home, 64, env_extra={"YOLOHUB_COMPILE_CACHE": "0"})
    assert not (home / "compile").exists()


@pytest.mark.parametrize(
    "change",
    [{"arch": "yolov4_cspdarknet53"}, {"args": {"img_size": 96}}, {"shape": (1, 3, 96, 96)},
     {"shape": (2, 3, 64, 64)}, {"dtype": "Float16"}],
)
def test_every_part_of_the_key_gets_its_own_directory(change, yolohub_env):
    base = {"arch": "yolov3_darknet53", "args": {"img_size": 64}, "shape": (1, 3, 64, 64),
            "dtype": "Float32"}
    other = {**base, **change}
    a = compile_cache.graph_dir(base["arch"], base["args"], base["shape"], base["dtype"])
    b = compile_cache.graph_dir(other["arch"], other["args"], other["shape"], other["dtype"])
    assert a != b and a.parent == b.parent == get_settings().home / "compile" / (
        f"mindspore-{compile_cache.mindspore_version()}")


def test_prune_removes_other_versions_and_with_everything_all(yolohub_env, capsys):
    base = yolohub_env / "compile"
    old = base / "mindspore-0.0.1" / "yolov3_darknet53-0123456789abcdef"
    current = compile_cache.graph_dir("yolov3_darknet53", {}, (1, 3, 64, 64), "Float32")
    for d in (old, current):
        (d / "rank_0" / "graph_cache").mkdir(parents=True)
        (d / "rank_0" / "graph_cache" / "compile_cache_0.mindir").write_bytes(b"x" * 100)
    from hub.cli import main

    assert main(["cache", "prune", "--json"]) == 0  # cache prune knows about compiled graphs
    assert str(old) in json.loads(capsys.readouterr().out)["removed"]
    assert not old.parent.exists() and current.is_dir()
    usage = compile_cache.prune(everything=True)
    assert usage.removed == (current,) and usage.freed == 100
    assert not base.joinpath(current.parent.name).exists()
