"""MindSpore Hub parity: its checker's fields and values, free-text evaluations, uids."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hub
from hub.cards.card import parse_card
from hub.cards.mshub import parse_evaluation, uid_parts
from hub.cli import main
from hub.errors import CardNotFoundError, CardValidationError

# A card as MindSpore Hub's own 1.x catalog writes them (blank lines, Title-case booleans,
# a '-' evaluation, backends, an input shape, two formats of one model without versions).
MSHUB_CARD = """# ghostnet

---

model-name: ghostnet

backbone-name: ghostnet

module-type: cv-classification

fine-tunable: True

input-shape: [224, 224, 3]

model-version: 1.0

train-dataset: {dataset}

evaluation: {evaluation}

accuracy: 73.9

author: Noah's Ark Lab

update-time: 2020-9-8

repo-link: <https://gitee.com/mindspore/models/tree/master/research/cv/ghostnet>

user-id: noah-cvlab

used-for: inference/transfer-learning

train-backend: gpu/Ascend

infer-backend: GPU

mindspore-version: 1.0

mindspore-lite: true

allow-cache-ckpt: False

featured-image: ghostnet.png

asset:

- file-format: ckpt
  asset-link: <https://download.mindspore.cn/model_zoo/research/cv/ghostnet/ghostnet_pets.ckpt>
  asset-sha256: a37ea724eed747ef2f36961e1fdb0deec892643cb2b1d6826ea738539259c139

- file-format: mslite
  asset-link: <https://download.mindspore.cn/model_zoo/official/lite/ghostnet_lite/ghostnet.ms>
  asset-sha256: 6503b41666fd871532cdf558e9a3fe25f1d5dc0236dd116e4738c847a46e813c

license: Apache2.0

summary: ghostnet is used for cv
---

# GhostNet
"""


@pytest.mark.parametrize("dataset", ["ImageNet2012", "Oxford-IIIT Pet", "cifar10_cifar100",
                                     "coco2017", "captcha 0.1.1"])
@pytest.mark.parametrize("evaluation", ["-", "top1acc76.85 | top5acc93.24"])
def test_mindspore_hub_catalog_card_parses(dataset, evaluation):
    card = parse_card(MSHUB_CARD.format(dataset=dataset, evaluation=evaluation), file="g.md")
    assert [a.version for a in card.assets] == ["1.0", "1.0-mslite"]
    assert [a.file_format for a in card.assets] == ["ckpt", "mslite"]
    claimed = None if evaluation == "-" else 76.85
    assert card.assets[0].claimed == claimed  # the top-1 accuracy, not the 1 of "top1"
    assert card.front_matter["input-shape"] == [224, 224, 3]


@pytest.mark.parametrize("field, value, words", [
    ("module-type: cv-classification", "module-type: cvv-classification", "did you mean 'cv'"),
    ("used-for: inference/transfer-learning", "used-for: inference/sightseeing", "joined by '/'"),
    ("train-backend: gpu/Ascend", "train-backend: tpu", "cpu, gpu or ascend"),
    ("input-shape: [224, 224, 3]", "input-shape: 224x224", "expected array"),
    ("accuracy: 73.9", "accuracy: high", "expected number"),
    ("- file-format: ckpt", "- file-format: tflite", "'mslite'"),
    ("train-dataset: {dataset}", "train-dataset: ImageNet 2012", "MindSpore Hub dataset names"),
])
def test_mindspore_hub_fields_are_still_checked(field, value, words):
    text = MSHUB_CARD.replace(field, value).format(dataset="ImageNet2012", evaluation="-")
    with pytest.raises(CardValidationError) as err:
        parse_card(text, file="g.md")
    assert words in str(err.value)


def test_free_text_evaluations_become_named_metrics():
    assert parse_evaluation("top1acc76.85 | top5acc93.24") == {"top1acc": 76.85, "top5acc": 93.24}
    assert parse_evaluation("mAP46.6") == {"mAP": 46.6}
    assert parse_evaluation("acc31.3") == {"acc": 31.3}
    assert parse_evaluation("mAP@0.5: 45.2%") == {"mAP@0.5": 45.2}
    assert parse_evaluation("-") == parse_evaluation("N/A") == parse_evaluation(None) == {}


@given(st.lists(st.tuples(st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,8}[A-Za-z]", fullmatch=True),
                          st.decimals(min_value=0, max_value=100, places=2)),
                min_size=1, max_size=4, unique_by=lambda t: t[0]))
def test_parse_evaluation_reads_back_what_was_written(pairs):
    text = " | ".join(f"{name}{value}" for name, value in pairs)
    assert parse_evaluation(text) == {name: float(value) for name, value in pairs}


def test_a_card_without_assets_validates_but_lists_nothing(tmp_path, capsys):
    d = tmp_path / "cards"
    d.mkdir()
    text = MSHUB_CARD.format(dataset="ImageNet2012", evaluation="-")
    head, body = text.split("asset:", 1)
    (d / "animatediff.md").write_text(head + "license" + body.split("license", 1)[1])
    assert main(["validate", str(d)]) == 0
    assert main(["list", "ghostnet", "--cards", str(d)]) == 0
    assert "no models match" in capsys.readouterr().out


def test_translation_beside_its_card_is_not_a_second_card(tmp_path):
    d = tmp_path / "cards"
    d.mkdir()
    (d / "ghostnet.md").write_text(MSHUB_CARD.format(dataset="ImageNet2012", evaluation="-"))
    (d / "ghostnet_cn.md").write_text("# GhostNet\n\n---\n\n模型名称：GhostNet\n\n---\n")
    assert [r.id for r in hub.list_models("ghostnet", cards_dirs=[d])] == [
        "ghostnet@1.0", "ghostnet@1.0-mslite"]


def test_mindspore_hub_uids_resolve():
    assert uid_parts("mindspore/2.5/yolov3_darknet53_coco2017") == (
        "mindspore", "2.5", "yolov3_darknet53_coco2017")
    assert uid_parts("mindspore/ascend/0.2/googlenet_v1_cifar10") == (
        "mindspore", "0.2", "googlenet_v1_cifar10")
    rel = hub.resolve("mindspore/2.5/yolov3_darknet53_coco2017")
    assert rel.id == "yolov3_darknet53@910v2"
    assert hub.resolve("MindSpore/2.5/yolov4_cspdarknet53").card.name == "yolov4_cspdarknet53"
    with pytest.raises(CardNotFoundError, match="MindSpore Hub uid"):
        hub.resolve("mindspore/1.9/yolov3_darknet53_coco2017")


def test_uid_on_the_command_line(capsys):
    assert main(["info", "mindspore/2.5/yolov4_cspdarknet53_silu_coco2017"]) == 0
    assert "yolov4_cspdarknet53_silu@910" in capsys.readouterr().out
    assert main(["info", "mindspore/2.5/nothing_like_it"]) == 3
