"""Every ``yolohub`` command against hostile arguments and inputs (hypothesis).

Whatever the arguments, a command ends with one of the README's exit codes and never with a
traceback.  Cheap commands get many examples; for the ones that build networks the strategies
always include an input that is refused before any network is built (a missing image, a
dataset that is not one, a checkpoint that is not one), so no example builds a full-size model.
The network is off (``YOLOHUB_OFFLINE=1``) and the working directory is an empty one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub._paths import builtin_cards_dir
from hub.cards.write import render_card
from hub.cli import main

# the README's exit-code table; 130 (Ctrl-C) and 141 (closed pipe) cannot happen here
EXIT_CODES = set(range(11))

ROOT: Path | None = None  # the hostile file tree, built once per module


def _build_tree(root: Path) -> None:
    (root / "empty").mkdir()
    (root / "someone").mkdir()
    (root / "someone" / "thesis.txt").write_text("do not delete")
    (root / "garbage.ckpt").write_bytes(os.urandom(3000))
    (root / "empty.ckpt").write_bytes(b"")
    (root / "nonutf8.txt").write_bytes(b"\xff\xfe\x00bad\n")
    (root / "yaml.yaml").write_text("a: &a [*a]\n")
    (root / "cwd" / "here").mkdir(parents=True)
    data = root / "data"
    (data / "annotations").mkdir(parents=True)
    (data / "annotations" / "instances_val2017.json").write_text('{"images": "x"')
    (data / "annotations" / "instances_val.json").write_bytes(b"\xff" * 10)

    cards = root / "cards"
    cards.mkdir()
    good = root / "good.bin"
    good.write_bytes(b"weights" * 100)
    sha = hashlib.sha256(good.read_bytes()).hexdigest()

    def card(name: str, fm: dict) -> None:
        (cards / f"{name}.md").write_text(render_card(fm, "body\n"))

    asset = {"file-format": "ckpt", "asset-link": good.as_uri(), "asset-sha256": sha}
    card("good", {"model-name": "good", "asset": [asset]})
    card("wronghash", {"model-name": "wronghash",
                       "asset": [{**asset, "asset-sha256": "ab" * 32}]})
    card("gone", {"model-name": "gone",
                  "asset": [{**asset, "asset-link": (root / "nope.ckpt").as_uri()}]})
    (cards / "rec.md").write_text("---\nmodel-name: rec\ntags: &r [*r]\n---\n")
    (cards / "bomb.md").write_text(
        "---\nmodel-name: bomb\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
        + "---\n")
    (cards / "deep.md").write_text("---\nmodel-name: deep\ntags: " + "[" * 500 + "]" * 500 + "\n---\n")
    (cards / "nl.md").write_text('---\nmodel-name: "nl\\n"\n---\n')
    (cards / "binary.md").write_bytes(os.urandom(500))
    text = (builtin_cards_dir() / "yolov3_darknet53.md").read_text()
    (cards / "nan.md").write_text(text.replace("claimed: 46.6", "claimed: .nan"))
    (cards / "sub").mkdir()
    (cards / "sub" / "empty.md").write_text("")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    _build_tree(root)
    return root


@pytest.fixture
def hostile_env(tree, monkeypatch):
    global ROOT
    ROOT = tree
    monkeypatch.setenv("YOLOHUB_OFFLINE", "1")
    monkeypatch.chdir(tree / "cwd" / "here")
    return tree


# --- strategies: tokens that name fixture paths are resolved when the command runs -----------

PATHS = ("@missing", "@empty", "@someone", "@garbage.ckpt", "@empty.ckpt", "@nonutf8.txt",
         "@yaml.yaml", "@cards", "@data", "@cards/rec.md", "@cards/bomb.md", "@nope/deeper/x",
         "@reg", "@store")
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=24)
words = st.one_of(
    text,
    st.sampled_from(["", "-", "--", "..", "../..", "/", "a\nb", "x" * 300, "*", "[", "@",
                     "a@", "@b", "a@b@c", "yolov3_darknet53", "yolov3_darknet53@910", "yolov3",
                     "good", "good@1", "wronghash", "gone", "rec", "bomb", "nan", "nl",
                     "-h", "--json", "-1", "nan", "1e999"]),
)
numbers = st.sampled_from(["-1", "0", "1", "3", "nan", "inf", "-inf", "1e999", "abc", "",
                           "3.5", "99999999999999999999999", "0x10", "32", "33", " 7"])
paths = st.sampled_from(PATHS)
path_or_word = st.one_of(paths, words)
names = st.one_of(st.sampled_from(["good", "good@1", "wronghash", "gone", "rec", "bomb", "nl",
                                   "yolov3_darknet53", "yolov3_darknet53@910", "yolov4"]), words)


def options(*specs) -> st.SearchStrategy[list[str]]:
    """Any number of the given (flag, value strategy or None) options, flattened."""
    one = st.one_of(*[st.tuples(st.just(f), v) if v is not None else st.tuples(st.just(f))
                      for f, v in specs])
    return st.lists(one, max_size=5).map(lambda xs: [tok for x in xs for tok in x])


CARDS = ("--cards", st.one_of(paths, st.just("@cards"), st.just("@cards")))
JSON = ("--json", None)
with_cards = st.tuples(names, st.sampled_from([["--cards", "@cards"], []])).map(
    lambda t: [t[0], *t[1]])  # the hostile card directory half of the time

COMMANDS = {
    "list": st.tuples(st.just(["list"]), st.lists(words, max_size=1), options(CARDS, JSON)),
    "info": st.tuples(st.just(["info"]), with_cards,
                      options(CARDS, JSON)),
    "validate": st.tuples(st.just(["validate"]), st.lists(path_or_word, min_size=1, max_size=3),
                          options(JSON)),
    "download": st.tuples(st.just(["download"]), with_cards,
                          options(CARDS, JSON, ("--force", None), ("--offline", None))),
    "verify": st.tuples(st.just(["verify"]), st.lists(names, max_size=2),
                        options(CARDS, JSON, ("--all", None), ("--deep", None))),
    "rehash": st.tuples(st.just(["rehash"]), with_cards,
                        options(CARDS, JSON, ("--offline", None))),
    "cache": st.one_of(
        st.tuples(st.just(["cache", "ls"]), st.just([]), options(JSON)),
        st.tuples(st.just(["cache", "rm"]), with_cards,
                  options(CARDS, JSON)),
        st.tuples(st.just(["cache", "prune"]), st.just([]),
                  options(JSON, ("--partial-age", numbers), ("--compiled", None))),
        st.tuples(st.just(["cache"]), st.lists(words, max_size=1), st.just([])),
    ),
    # a real run spawns MindSpore twice (kernel check, probe): few examples, mostly bad words
    "env": st.tuples(st.just(["env"]), st.lists(words, max_size=2),
                     options(JSON, ("--no-measure", None))),
    # never a loadable checkpoint and offline: refused before any network is exported
    "export": st.tuples(
        st.just(["export"]),
        st.lists(names, min_size=1, max_size=1),
        options(("--format", st.one_of(st.sampled_from(["onnx", "mindir", "ONNX", "air"]), words)),
                ("--img-size", numbers), ("--batch", numbers), ("-o", path_or_word),
                ("--weights", st.sampled_from(["@garbage.ckpt", "@empty.ckpt", "@missing"])),
                ("--publish", None), ("--force", None), CARDS, JSON),
    ),
    "index": st.tuples(st.just(["index"]), st.lists(path_or_word, min_size=1, max_size=2),
                       options(("--url", words), ("--no-html", None))),
    "update": st.tuples(st.just(["update"]), st.lists(words, max_size=1), options(CARDS, JSON)),
    "search": st.tuples(st.just(["search"]), st.lists(words, min_size=1, max_size=3),
                        options(CARDS, JSON)),
    # never a valid port, so it cannot start serving (a valid one serves until interrupted)
    "serve": st.tuples(st.just(["serve"]), st.lists(path_or_word, min_size=1, max_size=1),
                       st.tuples(st.just("--port"),
                                 st.sampled_from(["-1", "65536", "99999999999", "abc", "", "1e3",
                                                  "nan", "0x10"])).map(list),
                       options(("--host", words))),
    "pack": st.tuples(st.just(["pack"]), st.lists(names, min_size=1, max_size=2),
                      options(("-o", path_or_word), ("--offline", None), CARDS, JSON)),
    "unpack": st.tuples(st.just(["unpack"]), st.lists(path_or_word, min_size=1, max_size=1),
                        options(JSON)),
    "store": st.one_of(
        st.tuples(st.just(["store", "gc"]),
                  st.tuples(st.one_of(st.sampled_from(["@store", "@someone"]), path_or_word),
                            st.one_of(st.sampled_from(["@reg", "@cards"]), path_or_word))
                  .map(lambda t: [t[0], "--registry", t[1]]),
                  options(JSON, ("--dry-run", None), ("--registry", path_or_word))),
        st.tuples(st.just(["store"]), st.lists(words, max_size=1), st.just([])),
    ),
    # the checkpoint is never a loadable one: refused at the latest when it is read
    "publish": st.tuples(
        st.just(["publish"]),
        st.tuples(st.one_of(st.sampled_from(["@garbage.ckpt", "@empty.ckpt", "@yaml.yaml"]),
                            path_or_word),
                  st.one_of(st.just("m"), names),
                  st.one_of(st.just("yolov3_darknet53"), names),
                  st.one_of(st.sampled_from(["@reg", "@someone", "@garbage.ckpt"]), words),
                  st.one_of(st.sampled_from(["@store", "@someone", "@empty.ckpt"]), words))
        .map(lambda t: [t[0], "--name", t[1], "--arch", t[2], "--registry", t[3],
                        "--store", t[4]]),
        options(("--version", words), ("--no-check-load", None), ("--base-url", words), ("--num-classes", numbers), ("--img-size", numbers),
                ("--depth-multiple", numbers), ("--width-multiple", numbers),
                ("--class-names", path_or_word), ("--protocol", words),
                ("--claimed", numbers), ("--recipe", path_or_word), ("--summary", words),
                ("--author", words), ("--license", words), ("--force", None), JSON),
    ),
    # at least one image is missing: refused before the network is built
    "predict": st.tuples(
        st.just(["predict"]),
        st.tuples(names, st.lists(path_or_word, max_size=2)).map(
            lambda t: [t[0], "@missing", *t[1]]),
        options(CARDS, JSON, ("--out", path_or_word), ("--conf", numbers), ("--iou", numbers),
                ("--max-det", numbers), ("--img-size", numbers), ("--weights", path_or_word),
                ("--mode", words), ("--offline", None)),
    ),
    # the dataset is never a usable one: refused before the network is built
    "eval": st.tuples(
        st.just(["eval"]),
        st.tuples(names, st.sampled_from(["@missing", "@empty", "@data", "@someone", "@cards"]))
        .map(lambda t: [t[0], "--data", t[1]]),
        options(CARDS, JSON, ("--weights", path_or_word), ("--out", path_or_word),
                ("--detections", path_or_word), ("--split", words), ("--batch-size", numbers),
                ("--mode", words), ("--update-card", None)),
    ),
    "train": st.tuples(
        st.just(["train"]),
        st.tuples(names, st.sampled_from(["@missing", "@empty", "@data", "@someone", "@cards"]))
        .map(lambda t: [t[0], "--data", t[1]]),
        options(CARDS, JSON, ("--out", path_or_word), ("--epochs", numbers),
                ("--batch-size", numbers), ("--img-size", numbers), ("--set", words),
                ("--arch", words), ("--resume", None), ("--from", names)),
    ),
    # --out is someone's directory: refused before anything runs
    "demo": st.tuples(
        st.just(["demo"]), st.just(["--out", "@someone"]),
        options(("--quick", None), ("--epochs", numbers), ("--train-images", numbers),
                ("--val-images", numbers), ("--img-size", numbers), ("--seed", numbers),
                ("--set", words), JSON),
    ),
    # sizes are never both valid and large
    "make-dataset": st.tuples(
        st.just(["make-dataset"]), st.lists(path_or_word, min_size=1, max_size=1),
        options(("--images", st.sampled_from(["-1", "0", "2", "abc", "nan", "1e3"])),
                ("--size", st.sampled_from(["-5", "0", "31", "64", "abc", "nan"])),
                ("--classes", st.sampled_from(["-1", "0", "1", "200", "x"])),
                ("--seed", numbers), ("--split", words),
                ("--format", words), ("--overwrite", None), JSON),
    ),
}
EXAMPLES = {"predict": 25, "eval": 25, "train": 25, "demo": 10, "make-dataset": 20, "env": 10, "export": 25,
            "publish": 40}


def _resolve(token: str) -> str:
    if token.startswith("@") and token in PATHS or token.startswith("@") and "/" in token[1:]:
        return str(ROOT / token[1:])
    return token


def run(argv: list[str], capsys) -> tuple[int, str]:
    argv = [_resolve(t) for t in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return code, out + err


def test_every_cli_command_is_exercised():
    from hub.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_hostile_arguments_end_in_a_documented_exit_code_without_traceback(
        command, hostile_env, capsys):
    @settings(max_examples=EXAMPLES.get(command, 40), deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow,
                                     HealthCheck.function_scoped_fixture])
    @given(COMMANDS[command])
    def check(parts):
        argv = [tok for part in parts for tok in part]
        code, output = run(argv, capsys)
        shown = [_resolve(t) for t in argv]
        assert "Traceback" not in output, (shown, output[-2000:])
        assert code in EXIT_CODES, (shown, code, output[-2000:])
        assert "internal error" not in output, (shown, output[-2000:])
        assert (hostile_env / "someone" / "thesis.txt").read_text() == "do not delete"

    check()
