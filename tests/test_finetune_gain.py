"""The fine-tuning command wins back what a chip's errors cost, on a small fixed case held at
its recorded numbers (tests/data/finetune_gain.json): a trained tiny model
(tests/data/tiny_fer_model, made by tests/data/make_tiny_fer_model.py), a chip with 20 %
device variation, 20 hardware-in-the-loop steps, 512 PrivateTest images."""

import json
from pathlib import Path

import pytest

from memjax.cli import main

pytestmark = pytest.mark.slow  # the main job / training on FER2013: CI's full run only

DATA = Path(__file__).parent / "data"


@pytest.mark.xdist_group("tiny_chip")
def test_finetune_wins_back_accuracy_on_a_small_fixed_case(fer2013_path, tmp_path):
    recorded = json.loads((DATA / "finetune_gain.json").read_text())
    args = recorded["command"].split()[1:]
    args[args.index("tests/data/tiny_fer_model")] = str(DATA / "tiny_fer_model")
    args += ["--data", str(fer2013_path), "--run-dir", str(tmp_path / "run"), "--no-progress"]
    assert main([*args, "--json", str(tmp_path / "result.json")]) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    n, slack = recorded["images"], recorded["tolerance_images"]
    assert result["evaluated_on"]["images"] == n
    counts = {
        name: round(result[field] * n)
        for name, field in (
            ("software_correct", "software_accuracy"),
            ("before_correct", "accuracy_before"),
            ("after_correct", "accuracy_after"),
        )
    }
    for name, count in counts.items():
        assert abs(count - recorded[name]) <= slack, (name, count, recorded[name])
    for name in ("loss_before", "loss_after"):
        assert result[name] == pytest.approx(recorded[name], abs=recorded["tolerance_loss"])
    # the gain itself, not only the numbers: the chip lost accuracy and fine-tuning won it back
    assert (
        counts["software_correct"] - counts["before_correct"] >= 2 * recorded["minimum_gain_images"]
    )
    assert counts["after_correct"] - counts["before_correct"] >= recorded["minimum_gain_images"]
    assert result["loss_before"] - result["loss_after"] >= recorded["minimum_loss_drop"]
