"""Registry: sources and their precedence, name@version resolution, listing and info."""

from __future__ import annotations

import pytest

from hub import info, list_models, resolve
from hub._paths import builtin_cards_dir
from hub.cards.card import load_card
from hub.cards.write import render_card
from hub.errors import AmbiguousNameError, CardNotFoundError, InputDataError


def write_card(directory, name, *, version="1.0", sha="0123abcd", summary="test card", assets=None):
    directory.mkdir(parents=True, exist_ok=True)
    fm = {
        "model-name": name,
        "model-version": version,
        "summary": summary,
        "asset": assets
        or [{"file-format": "ckpt", "asset-link": f"https://e.org/{name}.ckpt", "asset-sha256": sha}],
    }
    path = directory / f"{name}-{version}.md"
    path.write_text(render_card(fm, "body\n"))
    return path


@pytest.mark.parametrize("path", sorted(builtin_cards_dir().glob("*.md")), ids=lambda p: p.stem)
def test_every_builtin_card_resolves_to_its_default_and_pinned_versions(path):
    card = load_card(path)
    default = resolve(card.name)
    assert default.asset == card.assets[0]
    for asset in card.assets:
        assert resolve(f"{card.name}@{asset.version}").asset == asset


def test_list_shows_every_release_with_default_marked():
    rows = list_models()
    assert [r.id for r in rows] == [
        "yolov3_darknet53@910v2",
        "yolov3_darknet53@910",
        "yolov4_cspdarknet53@910v2",
        "yolov4_cspdarknet53@910",
        "yolov4_cspdarknet53_silu@910",
    ]
    assert [r.default for r in rows] == [True, False, True, False, True]
    assert all(r.weak_hash and not r.cached and r.dataset == "coco2017" for r in rows)
    assert [r.id for r in list_models("yolov4*")][0] == "yolov4_cspdarknet53@910v2"
    assert [r.id for r in list_models("silu")] == ["yolov4_cspdarknet53_silu@910"]


def test_unknown_and_ambiguous_names():
    with pytest.raises(CardNotFoundError, match=r"no card named 'yolov3_darknet'; did you mean yolov3_darknet53\?"):
        resolve("yolov3_darknet")
    with pytest.raises(AmbiguousNameError, match="starts several: yolov4_cspdarknet53, yolov4_cspdarknet53_silu"):
        resolve("yolov4")
    with pytest.raises(CardNotFoundError, match=r"has no version '9'; available: yolov3_darknet53@910v2, yolov3_darknet53@910"):
        resolve("yolov3_darknet53@9")
    with pytest.raises(CardNotFoundError, match="expected a model name or name@version"):
        resolve("yolov3_darknet53@")


def test_precedence_cli_over_env_over_builtin(tmp_path, monkeypatch):
    cli_dir, env_dir = tmp_path / "cli", tmp_path / "env"
    # same name@version as a built-in card, in both extra sources
    assets = lambda sha: [  # noqa: E731
        {"file-format": "ckpt", "asset-link": "https://e.org/x.ckpt", "asset-sha256": sha, "version": "910"}
    ]
    write_card(env_dir, "yolov4_cspdarknet53_silu", version="9.0", assets=assets("eeeeeeee"))
    write_card(cli_dir, "yolov4_cspdarknet53_silu", version="9.1", assets=assets("cccccccc"))
    monkeypatch.setenv("YOLOHUB_CARDS", str(env_dir))
    assert resolve("yolov4_cspdarknet53_silu@910").asset.sha256 == "eeeeeeee"
    rel = resolve("yolov4_cspdarknet53_silu@910", cards_dirs=[cli_dir])
    assert rel.asset.sha256 == "cccccccc" and rel.card.source == "cli"
    shadows = info("yolov4_cspdarknet53_silu@910", cards_dirs=[cli_dir]).shadowed
    assert len(shadows) == 2 and any("env" in s for s in shadows) and any(s.endswith("yolov4_cspdarknet53_silu.md") for s in shadows)


def test_unpinned_name_takes_newest_card_of_best_source(tmp_path):
    d = tmp_path / "reg"
    write_card(d, "mine", version="1.9", sha="11111111")
    write_card(d, "mine", version="1.10", sha="22222222")
    assert resolve("mine", cards_dirs=[d]).asset.sha256 == "22222222"  # 1.10 > 1.9
    assert resolve("mine@1.9", cards_dirs=[d]).asset.sha256 == "11111111"
    (d / "copy.md").write_text((d / "mine-1.10.md").read_text())
    with pytest.raises(AmbiguousNameError, match="several cards with model-version 1.10"):
        resolve("mine", cards_dirs=[d])


def test_invalid_cards_in_a_source_are_skipped_not_fatal(tmp_path, caplog):
    d = tmp_path / "reg"
    write_card(d, "fine")
    (d / "broken.md").write_text("---\nmodel-name: [\n---\n")
    assert [r.name for r in list_models("fine", cards_dirs=[d])] == ["fine"]
    assert "skipping invalid card" in caplog.text
    with pytest.raises(CardNotFoundError, match="some cards were skipped as invalid"):
        resolve("broken", cards_dirs=[d])


def test_missing_card_directory_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(InputDataError, match=r"card directory '.*nope' \(from --cards\) does not exist"):
        list_models(cards_dirs=[tmp_path / "nope"])
    monkeypatch.setenv("YOLOHUB_CARDS", str(tmp_path / "gone"))
    with pytest.raises(InputDataError, match=r"\(from YOLOHUB_CARDS\)"):
        list_models()


def test_info_is_typed_and_complete():
    i = info("yolov3_darknet53")
    assert i.summary.id == "yolov3_darknet53@910v2" and i.summary.default
    assert i.versions == ("910v2", "910")
    assert i.architecture_args == {"num_classes": 80, "img_size": 640}
    assert i.head_params == ("model.model.28.m.*",)
    assert i.eval_protocol["iou-threshold"] == 0.65
    assert i.class_count == 80 and len(i.links) == 2 and i.sha256 == "81895f09"
