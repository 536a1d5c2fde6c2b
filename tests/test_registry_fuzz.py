"""Bad input to the team-registry commands, generated: always one line and a documented exit code,
never a traceback, never a half-installed bundle."""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.cards.index import check_index
from hub.cli import main
from hub.errors import RegistryError
from hub.settings import parse_cards_path

EXIT_CODES = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def one_line_error(capsys, code: int) -> None:
    err = capsys.readouterr().err
    assert code in EXIT_CODES
    if code not in (0, 2):
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


@FUZZ
@given(st.text(max_size=40))
def test_search_any_text(capsys, text):
    # "--" ends the options, so a text such as "-:" is searched for rather than read as an option
    code = main(["search", "--", text or " "])
    one_line_error(capsys, code)
    assert code in (0, 9)


def test_search_text_that_looks_like_an_option_is_a_usage_error(capsys):
    try:
        main(["search", "-:"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("'-:' was taken as search text instead of an unknown option")
    err = capsys.readouterr().err
    assert "Traceback" not in err and "yolohub search" in err


@FUZZ
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               min_size=1, max_size=60))
def test_cards_option_any_entry(capsys, entry):
    code = main(["list", "--cards", "file:///nonexistent/" + entry])
    one_line_error(capsys, code)
    assert code in (5, 9)


@FUZZ
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c,
                                                                          max_size=4),
                    max_leaves=12))
def test_check_index_accepts_or_raises_registry_error(data):
    try:
        check_index({"format": "yolohub-index/1", "generated": "x", "cards": [data]}, origin="t")
    except RegistryError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(st.binary(max_size=2048), st.lists(st.text(alphabet="abc./-_", min_size=1, max_size=20),
                                          max_size=3))
def test_unpack_any_bytes_or_member_names_installs_nothing(capsys, noise, names):
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "b.tar"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            manifest = json.dumps({"format": "yolohub-bundle/1", "releases": [],
                                   "files": [{"path": n, "sha256": "0" * 64, "size": 1}
                                             for n in names]}).encode()
            for name, data in (("manifest.json", manifest), *((n, noise) for n in names)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        bundle.write_bytes(buf.getvalue() if noise[:1] != b"x" else noise)
        code = main(["unpack", str(bundle)])
        one_line_error(capsys, code)
        from hub.settings import get_settings

        home = get_settings().home
        assert not (home / "cards").exists()
        assert not list(home.glob(".unpack-*"))


@given(st.lists(st.sampled_from(["/a", "~/b", "rel/c", "http://127.0.0.1:8000/r/",
                                 "https://x.org/reg", "file:///srv/reg"]), max_size=5),
       st.sampled_from([";", " ", "\n"]))
def test_cards_path_round_trips(entries, sep):
    parsed = parse_cards_path(sep.join(entries))
    assert [str(p) if isinstance(p, Path) else p for p in parsed] == [
        e if "://" in e else str(Path(e).expanduser()) for e in entries]
