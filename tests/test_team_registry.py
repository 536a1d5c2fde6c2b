"""Team registries: index.json, registry URLs (cached, verified), search — all on loopback.

The main scenario uses ``python3 -m http.server`` (a server we did not write); the request-level
checks (conditional requests, faults) use the test server of ``tests/httpserver.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hub
from hub.cards.index import INDEX_NAME, check_index, write_index
from hub.cli import main
from hub.errors import ChecksumMismatchError, RegistryError
from hub.settings import parse_cards_path

ARCH = "yolov3_darknet53"
ARGS = {"num_classes": 3, "img_size": 128, "depth_multiple": 0.33, "width_multiple": 0.25}
NAMES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real MindSpore checkpoint of a scaled-down YOLOv3 (a few MB)."""
    import yolomodels
    from yolomodels.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    save_checkpoint(yolomodels.build(ARCH, **ARGS), path)
    return path


def make_site(root: Path, base_url: str, checkpoint: Path) -> Path:
    """Publish two models (three releases) into ``root/cards`` + ``root/store``; return cards."""
    for name, version, claimed, summary in (
        ("team_v3", "1.0", 12.5, "shapes detector for the warehouse cameras"),
        ("team_v3", "2.0", 14.0, "shapes detector for the warehouse cameras, retrained"),
        ("dock_v3", "1.0", 30.0, "loading-dock detector"),
    ):
        hub.publish(checkpoint, name=name, arch=ARCH, registry=root / "cards",
                    store=root / "store", version=version, base_url=f"{base_url}/store",
                    arch_args=ARGS, class_names=NAMES, claimed=claimed, summary=summary,
                    check_load=False)
    return root / "cards"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_stdlib_server(root: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(root)],
        stdout=subprocess.DEVNULL, stderr=open(root.parent / "server.log", "a"),  # noqa: SIM115
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("python -m http.server did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=10)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- the index -----------------------------------------------------------------------------------


def test_publish_writes_a_schema_valid_index_with_every_fact(checkpoint, tmp_path):
    cards = make_site(tmp_path, "http://127.0.0.1:9", checkpoint)
    index = json.loads((cards / INDEX_NAME).read_text())
    check_index(index, origin="test")
    assert [(e["name"], e["versions"]) for e in index["cards"]] == [
        ("dock_v3", ["1.0"]), ("team_v3", ["1.0"]), ("team_v3", ["2.0"])]
    ckpt_sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    for e in index["cards"]:
        raw = (cards / e["path"]).read_bytes()
        assert e["sha256"] == hashlib.sha256(raw).hexdigest() and e["size"] == len(raw)
        assert e["dataset"] and e["metric"] == "AP" and e["architecture"] == ARCH
        [a] = e["assets"]
        assert a["sha256"] == ckpt_sha and a["size"] == checkpoint.stat().st_size
        assert a["links"][0].startswith("http://127.0.0.1:9/store/")
        assert e["published"]
    assert [e["assets"][0]["claimed"] for e in index["cards"]] == [30.0, 12.5, 14.0]
    assert not list(cards.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_index_is_incremental_and_reports_invalid_cards(tmp_path, capsys):
    reg = tmp_path / "reg"
    shutil.copytree(Path(hub.__file__).parent.parent / "cards", reg)
    first = write_index(reg, catalog=False)
    assert (first.cards, first.parsed, first.reused) == (3, 3, 0)
    again = write_index(reg, catalog=False)
    assert (again.cards, again.parsed, again.reused) == (3, 0, 3)
    card = reg / "yolov3_darknet53.md"
    card.write_text(card.read_text().replace("summary: YOLOv3", "summary: Edited YOLOv3"))
    (reg / "broken.md").write_text("---\nmodel-name: [x]\n---\n")
    code, out, _ = run(capsys, "index", str(reg), "--no-html")
    assert code == 1 and "2 parsed, 2 unchanged" in out and "broken.md" in out
    index = json.loads((reg / INDEX_NAME).read_text())
    [v3] = [e for e in index["cards"] if e["name"] == "yolov3_darknet53"]
    assert v3["summary"].startswith("Edited") and index["invalid"][0]["path"] == "broken.md"
    from hub.cards.catalog import card_files

    (reg / ".hidden").mkdir()
    (reg / ".hidden" / "x.md").write_text(card.read_text().replace("yolov3_darknet53\n", "hid\n", 1))
    (reg / "README.md").write_text("# not a card\n")
    index = json.loads(write_index(reg, catalog=False).path.read_text())
    seen = {e["path"] for e in index["cards"]} | {e["path"] for e in index["invalid"]}
    assert seen == {p.relative_to(reg).as_posix() for p in card_files(reg)}  # what `list` sees
    card.unlink()
    assert write_index(reg, catalog=False).removed == 1


def test_index_schema_rejects_escaping_paths_and_bad_hashes():
    good = {"format": "yolohub-index/1", "generated": "x", "cards": []}
    check_index(good, origin="t")
    entry = {"name": "a", "path": "../a.md", "sha256": "0" * 64, "size": 1, "model-version": "1",
             "versions": ["1"], "assets": [{"version": "1", "file-format": "ckpt",
                                             "sha256": "0" * 64, "links": ["https://x/y"]}]}
    for bad in ({**entry, "path": "../a.md"}, {**entry, "path": "/etc/a.md"},
                {**entry, "path": "a.md", "sha256": "zz"}):
        with pytest.raises(RegistryError):
            check_index({**good, "cards": [bad]}, origin="t")
    with pytest.raises(RegistryError, match="not a yolohub registry index"):
        check_index({"format": "something-else"}, origin="t")


# --- YOLOHUB_CARDS ------------------------------------------------------------------------------


def test_cards_path_keeps_url_ports_and_splits_directories():
    assert parse_cards_path("/a:/b;http://127.0.0.1:8000/reg/ https://x.org/r;~/c") == (
        Path("/a"), Path("/b"), "http://127.0.0.1:8000/reg/", "https://x.org/r",
        Path("~/c").expanduser())
    assert parse_cards_path("") == ()


# --- the acceptance scenario, with a server we did not write -----------------------------------


def test_registry_served_by_stdlib_http_server_end_to_end(checkpoint, tmp_path, capsys,
                                                          monkeypatch, caplog):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    site = tmp_path / "site"
    make_site(site, base, checkpoint)
    url = f"{base}/cards/"
    proc = start_stdlib_server(site, port)
    try:
        code, out, _ = run(capsys, "list", "--cards", url)
        assert code == 0
        rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
        assert (rows["team_v3@2.0"], rows["team_v3@1.0"], rows["dock_v3@1.0"]) == ("yes", "no", "yes")
        code, out, _ = run(capsys, "search", "warehouse", "--cards", url, "--json")
        assert code == 0 and [h["id"] for h in json.loads(out)] == ["team_v3@2.0"]
        code, out, _ = run(capsys, "download", "team_v3@1.0", "--cards", url)
        assert code == 0
        path = Path(out.strip().splitlines()[-1])
        assert path.read_bytes() == checkpoint.read_bytes()
        net = hub.load("team_v3", cards_dirs=[url], mode="pynative")
        assert net.load_report.ok
        code, _, err = run(capsys, "info", "team_v3@3.0", "--cards", url)
        assert code == 3 and "available: team_v3@1.0, team_v3@2.0" in err
        code, _, err = run(capsys, "info", "teem_v3", "--cards", url)
        assert code == 3 and "did you mean team_v3" in err
        # python's server answers If-Modified-Since with a bare 304; revalidation keeps working
        state_files = list((Path(hub.settings.get_settings().home) / "registries").glob("*/state.json"))
        [state_file] = state_files
        for _ in range(2):
            assert run(capsys, "update", "--cards", url)[0] == 0
            assert json.loads(state_file.read_text())["last-modified"]
        time.sleep(0.2)
        log = (tmp_path / "server.log").read_text()
        assert log.count('"GET /cards/index.json HTTP/1.1" 200') == 1
        assert log.count('"GET /cards/index.json HTTP/1.1" 304') == 2
    finally:
        stop(proc)
    # the server is gone: the cache keeps the client working, with a one-line notice
    monkeypatch.setenv("YOLOHUB_REGISTRY_TTL", "0")
    caplog.set_level(logging.WARNING)
    code, out, _ = run(capsys, "list", "--cards", url)
    assert code == 0 and "team_v3@2.0" in out
    notes = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(notes) == 1 and "\n" not in notes[0] and "cached index" in notes[0]
    assert hub.download("team_v3@1.0", cards_dirs=[url]) == path
    assert hub.info("team_v3@2.0", cards_dirs=[url]).summary.claimed == 14.0

    # a card edited on the server behind the index's back is refused (fresh client cache)
    monkeypatch.setenv("YOLOHUB_HOME", str(tmp_path / "other-client"))
    card = site / "cards" / "dock_v3" / "1.0.md"
    card.write_text(card.read_text().replace("claimed: 30.0", "claimed: 99.0"))
    proc = start_stdlib_server(site, port)
    try:
        code, out, _ = run(capsys, "list", "--cards", url)
        assert code == 0 and "dock_v3@1.0" in out  # the index is intact: listing works
        code, _, err = run(capsys, "download", "dock_v3", "--cards", url)
        assert code == 4 and "does not match the registry index" in err
        assert len(err.strip().splitlines()) == 1
    finally:
        stop(proc)


# --- requests, caching and bad servers (our test server: it logs every request) -----------------


@pytest.fixture
def served(checkpoint, http_server):
    cards = make_site(http_server.root, http_server.url, checkpoint)
    return http_server, cards, f"{http_server.url}/cards/"


def test_index_is_fetched_once_then_revalidated_with_one_conditional_request(served, capsys,
                                                                             monkeypatch):
    server, _, url = served
    assert run(capsys, "list", "--cards", url)[0] == 0
    assert run(capsys, "search", "dock", "--cards", url)[0] == 0  # fresh: no request at all
    assert [r.status for r in server.gets("cards/index.json")] == [200]
    assert [r.path for r in server.gets() if r.path.endswith(".md")] == []  # no card fetched
    assert run(capsys, "update", "--cards", url)[0] == 0
    gets = server.gets("cards/index.json")
    assert [r.status for r in gets] == [200, 304]
    assert "If-None-Match" in gets[1].headers or "If-Modified-Since" in gets[1].headers
    monkeypatch.setenv("YOLOHUB_REGISTRY_TTL", "0")
    assert run(capsys, "list", "--cards", url)[0] == 0
    assert [r.status for r in server.gets("cards/index.json")] == [200, 304, 304]
    # a card is fetched when a command needs it, once
    assert run(capsys, "info", "dock_v3", "--cards", url)[0] == 0
    assert run(capsys, "info", "dock_v3", "--cards", url)[0] == 0
    assert len(server.gets("cards/dock_v3/1.0.md")) == 1


def test_env_var_registry_url_and_offline_mode(served, capsys, monkeypatch, caplog):
    server, _, url = served
    monkeypatch.setenv("YOLOHUB_CARDS", url)
    monkeypatch.setenv("YOLOHUB_OFFLINE", "1")
    code, _, err = run(capsys, "list")
    assert code == 6 and "yolohub update" in err
    monkeypatch.delenv("YOLOHUB_OFFLINE")
    assert run(capsys, "update")[0] == 0
    assert run(capsys, "info", "team_v3@1.0")[0] == 0
    monkeypatch.setenv("YOLOHUB_OFFLINE", "1")
    caplog.set_level(logging.WARNING)
    before = len(server.requests)
    code, out, _ = run(capsys, "info", "team_v3@1.0")
    assert code == 0 and "remote" in out
    assert len(server.requests) == before  # offline: no connection at all
    code, _, err = run(capsys, "info", "dock_v3")
    assert code == 6 and "not cached" in err  # never fetched while online


def test_a_url_that_is_not_a_registry(http_server, capsys):
    (http_server.root / "site").mkdir()
    code, _, err = run(capsys, "list", "--cards", http_server.url_for("site/"))
    assert code == 9 and "not a yolohub registry" in err and "404" in err
    (http_server.root / "site" / "index.json").write_text("<!DOCTYPE html><html>Oops</html>")
    code, _, err = run(capsys, "list", "--cards", http_server.url_for("site/"))
    assert code == 9 and "HTML page" in err
    (http_server.root / "site" / "index.json").write_text(json.dumps(
        {"format": "yolohub-index/1", "generated": "now", "cards": [{"name": "x"}]}))
    code, _, err = run(capsys, "list", "--cards", http_server.url_for("site/"))
    assert code == 9 and "fails the registry index schema" in err
    assert len(err.strip().splitlines()) == 1


def test_missing_and_html_cards_are_refused(served, capsys):
    server, cards, url = served
    (cards / "dock_v3" / "1.0.md").unlink()
    code, _, err = run(capsys, "info", "dock_v3", "--cards", url)
    assert code == 5 and "dock_v3/1.0.md" in err and "yolohub index" in err
    (cards / "team_v3" / "1.0.md").write_text("<!DOCTYPE html><html><body>Login</body></html>")
    with pytest.raises(ChecksumMismatchError, match="HTML page"):
        hub.resolve("team_v3@1.0", cards_dirs=[url])
    assert not list((Path(hub.settings.get_settings().home) / "registries").rglob("1.0.md"))


def test_file_url_registry_verifies_cards_too(checkpoint, tmp_path, capsys):
    cards = make_site(tmp_path / "site", "http://127.0.0.1:9", checkpoint)
    url = cards.resolve().as_uri()
    code, out, _ = run(capsys, "list", "--cards", url)
    assert code == 0 and "team_v3@2.0" in out
    card = cards / "team_v3" / "2.0.md"
    card.write_text(card.read_text() + "\nedited\n")
    code, _, err = run(capsys, "info", "team_v3", "--cards", url)
    assert code == 4 and "behind the index's back" in err


def test_search_over_builtin_cards(capsys):
    hits = hub.search("cspdarknet53")
    assert [h.name for h in hits][:2] == ["yolov4_cspdarknet53", "yolov4_cspdarknet53_silu"]
    assert "name" in hits[0].matched
    assert [h.name for h in hub.search("darknet coco mish")] == ["yolov4_cspdarknet53"]
    assert hub.search("no-such-thing-anywhere") == []
    code, out, _ = run(capsys, "search", "yolov3")
    assert code == 0 and "yolov3_darknet53@910v2" in out
    code, _, err = run(capsys, "search", " ")
    assert code == 9


def test_listing_searching_indexing_import_neither_mindspore_nor_numpy(tmp_path):
    reg = tmp_path / "reg"
    shutil.copytree(Path(hub.__file__).parent.parent / "cards", reg)
    code = (
        "import sys\n"
        "from hub.cli import main\n"
        f"assert main(['index', {str(reg)!r}]) == 0\n"
        f"assert main(['list', '--cards', {reg.resolve().as_uri()!r}]) == 0\n"
        f"assert main(['search', 'darknet', '--cards', {reg.resolve().as_uri()!r}]) == 0\n"
        "bad = [m for m in ('mindspore', 'numpy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    env = {"YOLOHUB_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(Path(hub.__file__).parent.parent)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr


def test_yolohub_serve_hosts_a_registry_with_conditional_requests(tmp_path):
    import os
    import signal

    import requests

    reg = tmp_path / "reg"
    shutil.copytree(Path(hub.__file__).parent.parent / "cards", reg)
    write_index(reg)
    env = {**os.environ, "PYTHONPATH": str(Path(hub.__file__).parent.parent)}
    proc = subprocess.Popen([sys.executable, "-m", "hub", "serve", str(reg), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stdout.readline()
        url = first.split(" at ", 1)[1].split()[0]
        r = requests.get(url + "index.json", timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
        again = requests.get(url + "index.json", headers={"If-None-Match": r.headers["ETag"]},
                             timeout=10)
        assert again.status_code == 304 and again.content == b""
        since = requests.get(url + "index.json", timeout=10,
                             headers={"If-Modified-Since": r.headers["Last-Modified"]})
        assert since.status_code == 304
        page = requests.get(url + "index.html", timeout=10)
        assert page.headers["Content-Type"].startswith("text/html") and "Model registry" in page.text
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0


def test_cards_changed_in_place_keep_their_registry_index_in_step(http_server, tmp_path, capsys):
    from httpserver import make_random_file, write_asset_card

    sha, size = make_random_file(http_server.root / "w.ckpt", 4096)
    reg = tmp_path / "reg"
    card = write_asset_card(reg / "weak", "weak_model", http_server.url_for("w.ckpt"), sha[:8])
    write_index(reg)
    assert run(capsys, "rehash", "weak_model", "--cards", str(reg))[0] == 0
    [entry] = json.loads((reg / INDEX_NAME).read_text())["cards"]
    assert entry["sha256"] == hashlib.sha256(card.read_bytes()).hexdigest()
    assert entry["assets"][0]["sha256"] == sha and entry["assets"][0]["size"] == size
    assert sha in (reg / "weak" / "weak_model.html").read_text()
    # so a client of the registry URL accepts the rewritten card
    code, out, _ = run(capsys, "info", "weak_model", "--cards", reg.resolve().as_uri())
    assert code == 0 and sha in out
