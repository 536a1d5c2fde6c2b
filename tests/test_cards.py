"""Cards: the built-in cards, MindSpore Hub's public format, every malformed input, round trips."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub._paths import builtin_cards_dir
from hub.cards.card import load_card, parse_card
from hub.errors import CardValidationError

BUILTIN = sorted(builtin_cards_dir().glob("*.md"))
MSHUB = Path(__file__).parent / "data" / "cards" / "mshub_yolov3_darknet53.md"


def findings_of(text: str) -> list[str]:
    with pytest.raises(CardValidationError) as info:
        parse_card(text, file="c.md")
    return [str(f) for f in info.value.findings]


def test_three_builtin_cards_cover_five_checkpoints():
    cards = [load_card(p) for p in BUILTIN]
    assert sorted(c.name for c in cards) == [
        "yolov3_darknet53",
        "yolov4_cspdarknet53",
        "yolov4_cspdarknet53_silu",
    ]
    prefixes = sorted(a.sha256 for c in cards for a in c.assets)
    assert prefixes == ["50172f93", "64b8506f", "81895f09", "adfb27af", "bdfc3205"]


@pytest.mark.parametrize("path", BUILTIN, ids=lambda p: p.stem)
def test_builtin_card_is_loadable_and_consistent(path):
    card = load_card(path)
    assert card.is_yolohub and card.path == path
    assert card.name == path.stem
    assert card.architecture is not None and card.architecture.name == card.name
    assert card.architecture.head_params, "fine-tuning needs the head parameters declared"
    assert card.eval_protocol is not None and card.eval_protocol.dataset == "coco2017"
    assert len(card.class_names) == card.architecture.args["num_classes"]
    for asset in card.assets:
        assert asset.links[0].startswith("https://") and not asset.links[0].startswith("<")
        assert asset.weak, "only sha256 prefixes are published for MindYOLO's files"
        assert asset.claimed is not None and 40 < asset.claimed < 50
        assert asset.sha256 in asset.links[0]  # MindYOLO names files by their hash prefix
    assert "## Citation" in card.body and card.title.startswith("# ")


def test_mindspore_hub_public_card_parses():
    card = load_card(MSHUB)
    assert card.name == "yolov3_darknet53"
    assert card.version == "2.5"  # YAML would say float 2.5
    assert card.front_matter["update-time"] == "2025-03-10"  # YAML would say date
    assert card.dataset == "coco2017"  # written COCO2017
    (asset,) = card.assets
    assert asset.links == (
        "https://download-mindspore.osinfra.cn/toolkits/mindyolo/yolov3/"
        "yolov3-darknet53_300e_mAP455-81895f09-910v2.ckpt",
    )
    assert asset.sha256 == "81895f09" and asset.weak
    assert asset.claimed == 46.6  # from the free-text "evaluation: mAP46.6"
    assert card.architecture is None  # a plain MindSpore Hub card cannot be loaded, only fetched


def test_all_digit_sha_prefix_keeps_its_leading_zeros():
    text = MSHUB.read_text().replace("asset-sha256: 81895f09", "asset-sha256: 00123456")
    assert parse_card(text).assets[0].sha256 == "00123456"


GOOD = """---
model-name: demo
asset:
  - file-format: ckpt
    asset-link: https://example.org/demo.ckpt
    asset-sha256: 0123abcd
---
body
"""


def _with(line_old: str, line_new: str) -> str:
    assert line_old in GOOD
    return GOOD.replace(line_old, line_new)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "c.md:1: expected a card (front-matter between '---' lines), found an empty file"),
        ("just text\n", "c.md:1: expected a '---' line opening the front-matter (only a '# title' "
         "may come before it), found 'just text'"),
        ("# title\n\nno fences here\n", "c.md:3: expected a '---' line opening the front-matter "
         "(only a '# title' may come before it), found 'no fences here'"),
        ("---\nmodel-name: x\n", "c.md:1: expected a closing '---' line for the front-matter "
         "opened here, found end of file"),
        ("---\n---\n", "c.md:1: expected front-matter fields, found an empty block"),
        ("---\n- a\n- b\n---\n", "c.md:2: expected front-matter of 'key: value' lines, found a list"),
        ("---\nmodel-name: [unclosed\n---\n", "c.md:3: invalid YAML in front-matter: did not find "
         "expected ',' or ']'; check indentation and quoting"),
        (_with("model-name: demo", "model-name: demo\nmodel-name: again"),
         "c.md:3: model-name: duplicate key 'model-name' (first on line 2); keep one"),
        (_with("model-name: demo", "model-name: [a, b]"),
         "c.md:2: model-name: expected string, found list ['a', 'b']"),
        (_with("model-name: demo", "model-name: demo\nfine-tunable: maybe"),
         "c.md:3: fine-tunable: expected boolean, found string 'maybe'"),
        (_with("model-name: demo", "model-name: demo\nmodel-nmae: x"),
         "c.md:3: model-nmae: unknown field 'model-nmae'; did you mean 'model-name', "
         "'model-version'?"),
        (_with("model-name: demo", "model-name: demo\nmodule-type: cvv"),
         "c.md:3: module-type: expected one of cv, nlp, audio, recommend, gnn, multimodal, other, "
         "rl, cvtmodel, cross, hpc, mm (the task family), optionally followed by a '-subtype' such "
         "as cv-classification, found string 'cvv'; did you mean 'cv'?"),
        (_with("asset-sha256: 0123abcd", "asset-sha256: 0123abc"),
         "c.md:6: asset[0].asset-sha256: expected 8 to 64 hex digits (a full sha256 has 64; legacy "
         "MindSpore Hub cards carry an 8-digit prefix), found string '0123abc'"),
        (_with("asset-sha256: 0123abcd", "asset-sha256: 0123abcz"),
         "c.md:6: asset[0].asset-sha256: expected 8 to 64 hex digits (a full sha256 has 64; legacy "
         "MindSpore Hub cards carry an 8-digit prefix), found string '0123abcz'"),
        (_with("https://example.org/demo.ckpt", "http://example.org/demo.ckpt"),
         "c.md:5: asset[0].asset-link: expected an https:// link (http:// only to loopback hosts "
         "such as 127.0.0.1, or file://), optionally in <angle brackets>, found string "
         "'http://example.org/demo.ckpt'"),
        (_with("https://example.org/demo.ckpt", "ftp://example.org/demo.ckpt"),
         "c.md:5: asset[0].asset-link: expected an https:// link (http:// only to loopback hosts "
         "such as 127.0.0.1, or file://), optionally in <angle brackets>, found string "
         "'ftp://example.org/demo.ckpt'"),
        (_with("    asset-sha256: 0123abcd\n", ""),
         "c.md:4: asset[0].asset-sha256: missing required field 'asset-sha256'"),
        (_with("model-name: demo", "model-name: demo\nformat: yolohub/1"),
         "c.md:2: architecture: missing required field 'architecture' (required by format: yolohub/1)"),
        (_with("model-name: demo", "model-name: demo\nupdate-time: yesterday"),
         "c.md:3: update-time: expected a date YYYY-MM-DD (optionally followed by a time), found "
         "string 'yesterday'"),
    ],
    ids=[
        "empty", "no-front-matter", "title-then-text", "unclosed", "empty-block", "list",
        "invalid-yaml", "duplicate-key", "wrong-type-str", "wrong-type-bool", "unknown-field",
        "enum-typo", "sha-too-short", "sha-not-hex", "http-not-loopback", "ftp", "missing-field",
        "strict-format", "bad-date",
    ],
)
def test_malformed_card_gives_exact_error(text, expected):
    assert expected in findings_of(text)


def test_http_to_loopback_is_allowed():
    for host in ("127.0.0.1:8080", "localhost", "[::1]:9000"):
        card = parse_card(_with("https://example.org/demo.ckpt", f"http://{host}/demo.ckpt"))
        assert card.assets[0].links[0] == f"http://{host}/demo.ckpt"


def test_all_errors_are_reported_at_once():
    text = GOOD.replace("model-name: demo", "model-name: ok\nmodule-type: x\nbogus: 1").replace(
        "0123abcd", "xyz"
    )
    found = findings_of(text)
    assert len(found) == 3, found
    assert [int(re.match(r"c\.md:(\d+):", f).group(1)) for f in found] == [3, 4, 8]


def test_semantic_rules(tmp_path):
    twice = GOOD.replace(
        "---\nbody", "  - file-format: ckpt\n    asset-link: https://e.org/b\n    asset-sha256: 0123abce\n---\nbody"
    )
    assert any("expected each asset to have its own version" in f for f in findings_of(twice))


def test_non_utf8_and_huge_files(tmp_path):
    bad = tmp_path / "bad.md"
    bad.write_bytes(GOOD.encode() + b"\n\xff\xfe rest")
    with pytest.raises(CardValidationError, match=r"bad.md:10: expected UTF-8 text, found byte 0xff"):
        load_card(bad)
    huge = tmp_path / "huge.md"
    huge.write_text(GOOD + "x" * (3 << 20))
    with pytest.raises(CardValidationError, match=r"expected a card of at most 1048576 bytes"):
        load_card(huge)
    with pytest.raises(CardValidationError, match="cannot read file"):
        load_card(tmp_path / "missing.md")


yaml_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400
) | st.lists(
    st.sampled_from(
        ["---", "model-name: x", "asset:", "  - file-format: ckpt", "    asset-sha256: 12345678",
         "    asset-link: <https://a.b/c>", "# t", "", "key: [", "- x", "  bad: : :", "\t", "&a *a",
         "!!python/object:os.system x", "format: yolohub/1", "model-version: 2.5", "{", "'"]
    ),
    max_size=12,
).map("\n".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(yaml_text)
def test_parser_raises_only_validation_errors(text):
    """Whatever the text, parsing returns a card or raises CardValidationError (nothing else)."""
    try:
        parse_card(text)
    except CardValidationError as exc:
        assert exc.findings and all(f.message for f in exc.findings)


# --- bounded parsing: aliases, nesting, non-finite numbers, whole-string patterns ---------------

BOMB = "\n".join(
    [GOOD.split("---\nbody")[0] + "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
) + "\n---\nbody\n"  # ~600 bytes that expand to 10**9 values


@pytest.mark.timeout(30)
def test_alias_expansion_bomb_is_a_card_error_with_bounded_memory():
    import tracemalloc

    assert len(BOMB) < 1000
    tracemalloc.start()
    try:
        found = findings_of(BOMB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert any("expected at most 20000 values" in f and "aliases" in f for f in found), found
    assert peak < 50 << 20, f"parsing a {len(BOMB)}-byte card peaked at {peak >> 20} MiB"


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "extra, expected",
    [
        ("tags: &r [*r]", "c.md:7: tags[0]: expected plain values, found a recursive YAML alias"),
        ("recipe: &r {optimizer: *r}", "recursive YAML alias"),
        ("tags:" + "".join("\n" + "  " * i + "-" for i in range(1, 300)),
         "expected front-matter nested at most 32 levels deep"),
        ("tags: " + "[" * 300 + "]" * 300, "expected front-matter nested at most 32 levels deep"),
        ("tags: [" + ", ".join(["x"] * 30000) + "]", "expected front-matter of at most 20000"),
    ],
    ids=["recursive-sequence", "recursive-mapping", "deep-block", "deep-flow", "too-many-values"],
)
def test_pathological_yaml_is_a_card_error(extra, expected):
    found = findings_of(GOOD.replace("---\nbody", extra + "\n---\nbody"))
    assert any(expected in f for f in found), found


YOLOHUB_CARD = (builtin_cards_dir() / "yolov3_darknet53.md").read_text()


@pytest.mark.parametrize(
    "old, new, field",
    [
        ("    claimed: 46.6", "    claimed: .nan", "asset[0].claimed"),
        ("    claimed: 46.6", "    claimed: .inf", "asset[0].claimed"),
        ("  tolerance: 0.3", "  tolerance: .inf", "eval-protocol.tolerance"),
        ("  conf-threshold: 0.001", "  conf-threshold: .NaN", "eval-protocol.conf-threshold"),
        ("  iou-threshold: 0.65", "  iou-threshold: -.inf", "eval-protocol.iou-threshold"),
        ("  tolerance: 0.3", "  tolerance: 1.0e+999", "eval-protocol.tolerance"),
    ],
)
def test_nan_and_infinities_are_refused_where_numbers_are_expected(old, new, field):
    assert old in YOLOHUB_CARD
    found = findings_of(YOLOHUB_CARD.replace(old, new, 1))
    assert any(f": {field}: expected a finite number, found" in f for f in found), found


@pytest.mark.parametrize(
    "old, new, field",
    [
        ("model-name: demo", 'model-name: "demo\\n"', "model-name"),
        ("model-name: demo", 'model-name: demo\nmodel-version: "1.0\\n"', "model-version"),
        ("asset-sha256: 0123abcd", 'asset-sha256: "0123abcd\\n"', "asset[0].asset-sha256"),
        ("asset-link: https://example.org/demo.ckpt",
         'asset-link: "https://example.org/demo.ckpt\\n"', "asset[0].asset-link"),
        ("model-name: demo", 'model-name: demo\ntrain-dataset: "coco\\n"', "train-dataset"),
    ],
)
def test_patterns_match_whole_strings_not_up_to_a_final_newline(old, new, field):
    found = findings_of(_with(old, new))
    assert any(f": {field}: expected " in f for f in found), found


nested_yaml = st.recursive(
    st.sampled_from(["x", "1", ".nan", "*a", "*b", "&a x", "~", "'q'"]),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(inner, max_size=4).map(lambda xs: "&b [" + ", ".join(xs) + "]"),
        st.lists(st.tuples(st.sampled_from(["k", "tags", "*a"]), inner), max_size=3).map(
            lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"
        ),
    ),
    max_leaves=40,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["tags", "a", "b", "recipe", "asset"]), nested_yaml),
                max_size=4))
def test_anchors_aliases_and_nesting_raise_only_validation_errors(fields):
    """Anchors, aliases (recursive ones too) and nesting end in a card or a CardValidationError."""
    text = GOOD.replace("---\nbody", "".join(f"{k}: {v}\n" for k, v in fields) + "---\nbody")
    try:
        parse_card(text)
    except CardValidationError as exc:
        assert exc.findings and all(f.message for f in exc.findings)
