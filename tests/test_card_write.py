"""Writing cards back: parse(write(card)) == card, typed changes, and what a rewrite keeps."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub._paths import builtin_cards_dir
from hub.cards.card import (
    Architecture,
    Asset,
    EvalProtocol,
    EvalResult,
    free_text_claim,
    load_card,
    parse_card,
)
from hub.cards.schema import schema
from hub.cards.write import (
    card_text,
    edit_card,
    new_front_matter,
    render_card,
    update_card,
    with_changes,
)
from hub.errors import CardValidationError

BUILTIN = sorted(builtin_cards_dir().glob("*.md"))
MSHUB = Path(__file__).parent / "data" / "cards" / "mshub_yolov3_darknet53.md"


def reparsed(card):
    return parse_card(card_text(card), path=card.path, source=card.source)


@pytest.mark.parametrize("path", [*BUILTIN, MSHUB], ids=lambda p: p.stem)
def test_round_trip_keeps_content(path, tmp_path):
    card = load_card(path)
    text = render_card(card.front_matter, card.body, title=card.title)
    again = parse_card(text)
    assert again.front_matter == card.front_matter
    assert again.body == card.body and again.title == card.title
    assert again.assets == card.assets and again.eval_protocol == card.eval_protocol


@pytest.mark.parametrize("path", [*BUILTIN, MSHUB], ids=lambda p: p.stem)
def test_parse_of_write_is_the_card(path):
    card = load_card(path)
    assert reparsed(card) == card


def test_update_card_changes_one_field_and_keeps_body(tmp_path):
    path = tmp_path / "yolov3_darknet53.md"
    path.write_text((builtin_cards_dir() / "yolov3_darknet53.md").read_text())
    before = load_card(path)
    fm = before.editable_front_matter()
    fm["asset"][0]["asset-sha256"] = "ab" * 32
    after = update_card(path, {"asset": fm["asset"]})
    assert after.assets[0].sha256 == "ab" * 32 and not after.assets[0].weak
    assert load_card(path).body == before.body
    # an invalid change never reaches the file
    with pytest.raises(CardValidationError):
        update_card(path, {"module-type": "nonsense"})
    assert load_card(path).assets[0].sha256 == "ab" * 32


def test_edit_card_writes_only_the_changed_values(tmp_path):
    """A MindSpore Hub card keeps its title, body, untyped fields and the spelling of every
    untouched value (angle-bracket links, the upper-case dataset, no asset version)."""
    path = tmp_path / "mshub.md"
    path.write_text(MSHUB.read_text())
    before = load_card(path)
    full = dataclasses.replace(before.assets[0], sha256="cd" * 32, size=1234)
    after = edit_card(path, lambda now: {"assets": (full, *now.assets[1:])})
    assert after.assets[0] == full and load_card(path) == after
    assert after.body == before.body and after.title == before.title
    written = after.front_matter["asset"][0]
    assert written["asset-sha256"] == "cd" * 32 and written["size"] == 1234
    assert "version" not in written
    assert written["asset-link"] == before.front_matter["asset"][0]["asset-link"]
    for key, value in before.front_matter.items():
        if key != "asset":
            assert after.front_matter[key] == value, key
    # a change that does not validate never reaches the file; a refusal leaves it alone
    text = path.read_text()
    with pytest.raises(CardValidationError):
        edit_card(path, lambda now: {"assets": (dataclasses.replace(full, sha256="xyz"),)})
    with pytest.raises(LookupError):
        edit_card(path, lambda now: (_ for _ in ()).throw(LookupError("refused")))
    assert path.read_text() == text


def test_new_front_matter_follows_the_schema_order_and_leaves_out_nothing_given():
    fm = new_front_matter(
        name="m", version="2.5", summary="s", format="yolohub/1", license=None,
        assets=[Asset("ckpt", ("https://h.example/m.ckpt",), "ab" * 32, 10, "2.5", claimed=1.5)],
        architecture=Architecture("yolov3_darknet53", {"num_classes": 2}),
        eval_protocol={"dataset": "d", "metric": "AP", "img_size": 320},
        class_names=["a", "b"], dataset="d", update_time="2026-01-02",
    )
    order = list(schema()["properties"])
    assert list(fm) == sorted(fm, key=order.index) and "license" not in fm
    assert fm["asset"] == [{"file-format": "ckpt", "asset-link": "https://h.example/m.ckpt",
                            "asset-sha256": "ab" * 32, "size": 10, "version": "2.5",
                            "claimed": 1.5}]
    assert fm["architecture"] == {"name": "yolov3_darknet53", "args": {"num_classes": 2}}
    assert fm["eval-protocol"] == {"dataset": "d", "metric": "AP", "img-size": 320}
    card = parse_card(render_card(fm))
    assert card.version == "2.5" and card.eval_protocol.img_size == 320
    assert reparsed(card) == card


@pytest.mark.parametrize("value", ["\x85  ", "a\u2028b", "x\u2029", "line\nnext\x85", " \n lead",
                                   "tail \n", "\r\n", "yes", "null", "1e3", "0x1f", "2025-03-10"])
def test_strings_survive_the_writer(value):
    """Text YAML would fold, trim or retype comes back as written (found by the property test:
    PyYAML writes U+0085 raw into single quotes, where reading folds it to a space)."""
    fm = {"model-name": "m", "summary": value, "tags": [value], "author": value}
    card = parse_card(render_card(fm))
    assert card.summary == value and card.tags == (value,) and card.front_matter == fm


# --- generated cards ---------------------------------------------------------------------------

ident = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.+\-]{0,12}", fullmatch=True)
dataset_id = st.from_regex(r"[a-z0-9][a-z0-9_.\-]{0,10}", fullmatch=True)
sha = st.from_regex(r"[0-9a-f]{64}|[0-9a-fA-F]{8}", fullmatch=True)
link = st.builds(
    lambda path, angle: f"<https://h.example/{path}>" if angle else f"https://h.example/{path}",
    st.from_regex(r"[A-Za-z0-9_.%\-/]{0,20}", fullmatch=True), st.booleans(),
)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
line = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=20)
percent = st.floats(0, 100, allow_nan=False)
unit = st.floats(0, 1, allow_nan=False)


@st.composite
def assets(draw):
    versions = draw(st.lists(ident, min_size=1, max_size=3, unique=True))
    out = []
    for i, version in enumerate(versions):
        a = {"file-format": draw(st.sampled_from(["ckpt", "onnx", "mindir", "mslite"])),
             "asset-link": draw(link), "asset-sha256": draw(sha)}
        if i or draw(st.booleans()):  # the first may take the card's model-version instead
            a["version"] = version
        a.update(draw(st.fixed_dictionaries({}, optional={
            "size": st.integers(1, 2**40), "claimed": percent, "hardware": line,
            "mirrors": st.lists(link, max_size=2),
            "input-shape": st.lists(st.integers(1, 2048), min_size=4, max_size=4),
            "source-sha256": sha,
        })))
        out.append(a)
    return versions[0], out


protocol = st.fixed_dictionaries(
    {"dataset": dataset_id, "metric": st.sampled_from(["AP", "AP50", "APs", "AR100"])},
    optional={"split": line, "img-size": st.integers(1, 40).map(lambda n: 32 * n),
              "conf-threshold": unit, "iou-threshold": st.floats(0.01, 1),
              "max-detections": st.integers(1, 1000), "multi-label": st.booleans(),
              "batch-size": st.integers(1, 64), "tolerance": st.floats(0, 10)},
)
result = st.fixed_dictionaries(
    {"metric": st.sampled_from(["AP", "AP50"]), "value": percent, "date": st.just("2026-01-02")},
    optional={"version": ident, "dataset": dataset_id, "split": line, "yolohub-version": ident,
              "weights-sha256": sha, "settings": st.dictionaries(ident, st.integers() | line),
              "metrics": st.dictionaries(ident, percent, max_size=3)},
)


@st.composite
def card_texts(draw):
    names = draw(st.lists(line, min_size=1, max_size=4))
    version, listed = draw(assets())
    fm = {
        "model-name": draw(ident),
        "model-version": version,
        "asset": listed,
        "architecture": {"name": draw(ident), "args": {"num_classes": len(names)},
                         "head-params": draw(st.lists(line, max_size=2))},
        "class-names": draw(st.sampled_from([names, "coco80"])),
        "eval-protocol": draw(protocol),
    }
    if fm["class-names"] == "coco80":
        fm["architecture"]["args"]["num_classes"] = 80
    if draw(st.booleans()):
        fm["format"] = "yolohub/1"
    fm.update(draw(st.fixed_dictionaries({}, optional={
        "train-dataset": dataset_id.map(str.upper), "summary": text, "author": line,
        "update-time": st.just("2025-03-10"), "evaluation": st.sampled_from(["mAP46.6", "-"]),
        "tags": st.lists(text, max_size=3), "eval-results": st.lists(result, max_size=2),
        "recipe": st.fixed_dictionaries({"epochs": st.integers(1, 300)}),
    })))
    title = draw(st.sampled_from(["", "# a title\n", "# t\n\n"]))
    return render_card(fm, draw(text), title=title)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(card_texts())
def test_parse_of_write_is_the_card_for_generated_cards(text):
    card = parse_card(text, file="gen.md")
    assert reparsed(card) == card
    assert card_text(card) == text  # an unchanged card is written as it was


@st.composite
def changes(draw, card):
    out = {}
    if draw(st.booleans()):
        i = draw(st.integers(0, len(card.assets) - 1))
        # a free-text evaluation claims for the first asset when it claims nothing itself
        stated = i == 0 and free_text_claim(card.front_matter.get("evaluation")) is not None
        new = dataclasses.replace(card.assets[i], sha256=draw(sha).lower(),
                                  size=draw(st.integers(1, 2**40) | st.none()),
                                  claimed=draw(percent if stated else percent | st.none()),
                                  metric=None)
        out["assets"] = (*card.assets[:i], new, *card.assets[i + 1:])
    if draw(st.booleans()):
        p = draw(protocol)
        out["eval_protocol"] = EvalProtocol(**{k.replace("-", "_"): v for k, v in p.items()})
    if draw(st.booleans()):
        r = draw(result)
        out["eval_results"] = (*card.eval_results,
                               EvalResult(**{k.replace("-", "_"): v for k, v in r.items()}))
    if draw(st.booleans()):
        out["dataset"] = draw(dataset_id | st.none())
    return out


@SETTINGS
@given(st.data())
def test_typed_changes_are_written_and_nothing_else(data):
    card = parse_card(data.draw(card_texts()), file="gen.md")
    change = data.draw(changes(card))
    after = with_changes(card, **change)
    for field, value in change.items():
        assert getattr(after, field) == value, field
    assert reparsed(after) == after
    assert after.body == card.body and after.title == card.title
    touched = {"assets": "asset", "eval_protocol": "eval-protocol", "eval_results": "eval-results",
               "dataset": "train-dataset"}
    keys = {touched[f] for f in change}
    for key, value in card.front_matter.items():
        if key not in keys:
            assert after.front_matter[key] == value, key
    if not change:
        assert after == card
