"""The command line: the shipped model's accuracy, reports, and one-line errors on bad input."""

import json
import shutil
import subprocess
import sys

import pytest

from memjax.cli import DEFAULT_CHECKPOINT

SHIPPED_FLOOR = 0.62
"""A regression floor for the shipped model on PrivateTest, one inference per image (it
measured 0.6436; the majority class alone gives 0.245)."""
TARGET_CORRECT = 2369
"""Issue 2's target on PrivateTest, 66 % of 3,589 images (2,368.7), as the whole number of
correct predictions that reaches it: met by the shipped model with flip test-time
augmentation (measured 2,370 of 3,589, 66.035 %: one image above it)."""


def memjax(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "memjax", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memjax: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.slow
def test_shipped_model_on_private_test(fer2013_path, tmp_path):
    """The shipped checkpoint reaches the target and reproduces the accuracy recorded with it."""
    out = tmp_path / "report.json"
    result = memjax("evaluate", "--data", str(fer2013_path), "--json", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert {
        "accuracy",
        "n",
        "per_class_accuracy",
        "confusion_matrix",
        "checkpoint",
        "split",
    } <= set(report)
    assert report["split"] == "private_test" and report["n"] == 3589
    matrix = report["confusion_matrix"]
    assert sum(map(sum, matrix)) == 3589
    assert sum(matrix[i][i] for i in range(7)) / 3589 == pytest.approx(report["accuracy"])
    assert report["accuracy"] >= SHIPPED_FLOOR
    recorded = json.loads((DEFAULT_CHECKPOINT / "config.json").read_text())["evaluation"]
    # Same weights, same data: only float reassociation across machines may flip a prediction.
    assert abs(report["accuracy"] - recorded["private_test_accuracy"]) <= 2 / 3589
    assert (tmp_path / "report.confusion.png").stat().st_size > 10_000
    assert "private_test: accuracy" in result.stdout


@pytest.mark.slow
def test_flip_averaging_reaches_the_target(fer2013):
    """The shipped model with the logits of each PrivateTest image and its mirror image
    averaged: at least 2,369 of the 3,589 images right (66 %, counted, no slack: measured
    2,370, so one prediction flipped by float reassociation on another machine still passes,
    two do not), reproducing the recorded accuracy to 2 predictions; and it helps on
    PublicTest too (the split where such choices are made: 0.6453 -> 0.6492)."""
    from memjax.training.evaluate import evaluate_model

    recorded = json.loads((DEFAULT_CHECKPOINT / "config.json").read_text())["evaluation"]
    private = evaluate_model(DEFAULT_CHECKPOINT, fer2013, "private_test", tta="flip")
    assert private["tta"] == "flip" and private["n"] == 3589
    matrix = private["confusion_matrix"]
    assert sum(map(sum, matrix)) == 3589
    correct = sum(matrix[i][i] for i in range(7))
    assert correct / 3589 == pytest.approx(private["accuracy"])
    assert abs(private["accuracy"] - recorded["private_test_accuracy_tta_flip"]) <= 2 / 3589
    assert correct >= TARGET_CORRECT, f"{correct} of 3589 right, below 66 % ({TARGET_CORRECT})"
    public = evaluate_model(DEFAULT_CHECKPOINT, fer2013, "public_test", tta="flip")
    assert public["accuracy"] > recorded["public_test_accuracy"]


def test_data_info_prints_counts(fer2013_path):
    result = memjax("data", "info", str(fer2013_path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["splits"]["private_test"]["total"] == 3589


def test_bad_input_gives_one_line_errors(tmp_path, fer2013_path):
    assert_one_line_error(
        memjax("evaluate", "--data", str(tmp_path / "missing.npz")), "missing.npz does not exist"
    )
    bad_csv = tmp_path / "fer2013.csv"
    bad_csv.write_text("emotion,pixels,Usage\n3,1 2 3,Training\n")
    assert_one_line_error(memjax("data", "info", str(bad_csv)), "line 2", "3 pixels")
    assert_one_line_error(
        memjax("evaluate", "--data", str(fer2013_path), "--width", "0.5"),
        "holds a 1.0x ShuffleNetV2, but width 0.5x was asked for",
    )
    corrupt = tmp_path / "corrupt"
    shutil.copytree(DEFAULT_CHECKPOINT, corrupt)
    for file in (corrupt / "state").rglob("*"):
        if file.is_file() and file.stat().st_size > 64:
            file.write_bytes(b"\0" * 64)
    assert_one_line_error(
        memjax("evaluate", "--checkpoint", str(corrupt), "--data", str(fer2013_path)), "corrupt"
    )
    assert_one_line_error(memjax("train", "--data", str(tmp_path / "none.csv")), "does not exist")
    assert_one_line_error(
        memjax("reproduce", "--dc-images", "0", "--out", str(tmp_path / "out")),
        "--dc-images must be at least 1, got 0",
    )
    assert_one_line_error(
        memjax("reproduce", "--rtol", "0", "--out", str(tmp_path / "out")),
        "--rtol must be > 0, got 0.0",
    )
    assert_one_line_error(
        memjax("reproduce", "--transient-crop", "49", "--out", str(tmp_path / "out")),
        "--transient-crop must be 1 to 48 pixels, got 49",
    )
    assert_one_line_error(
        memjax("reproduce", "--power-images", "-1", "--out", str(tmp_path / "out")),
        "--power-images must be >= 0, got -1",
    )
    # a latency below what the calibrated preset's op-amps allow (154 stages x 1/(2 pi GHz))
    assert_one_line_error(
        memjax(
            "reproduce",
            "--preset",
            "paper_calibrated",
            "--target-latency-ns",
            "10",
            "--out",
            str(tmp_path / "out"),
        ),
        "--target-latency-ns 10 is below what paper_calibrated can reach",
        "154 op-amp stages",
        "24.5 ns",
    )
    # a preset that does not exist, named with the ones that do, in every command taking one
    assert_one_line_error(
        memjax("reproduce", "--preset", "papr", "--out", str(tmp_path / "out")),
        "unknown preset 'papr'",
        "paper_plain_diode_relu",
    )
    assert_one_line_error(
        memjax("finetune", "--preset", "papr", "--data", str(fer2013_path)),
        "unknown preset 'papr'",
    )
    assert_one_line_error(
        memjax("train", "--circuit", "papr", "--data", str(fer2013_path)), "circuit 'papr'"
    )


@pytest.fixture(scope="module")
def test_only_csv(fer2013, tmp_path_factory):
    """The Kaggle fer2013.csv with only its PublicTest and PrivateTest rows (issue 25), written
    from the real data: 7,178 rows, 60 MB."""
    path = tmp_path_factory.mktemp("partial") / "test_only.csv"
    lines = ["emotion,pixels,Usage"]
    for usage, name in (("PublicTest", "public_test"), ("PrivateTest", "private_test")):
        split = fer2013.split(name)
        lines += [
            f"{label},{' '.join(map(str, image.ravel().tolist()))},{usage}"
            for image, label in zip(split.images, split.labels)
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_test_only_csv_evaluates_as_the_full_file(test_only_csv, fer2013_path, tmp_path):
    """`memjax evaluate` needs only the split it reads: on the CSV of the test rows the
    shipped model scores all 3,589 PrivateTest images exactly as on the full file (once ended
    with "split 'train' is missing")."""
    reports = {}
    for name, path in (("full", fer2013_path), ("test_only", test_only_csv)):
        out = tmp_path / f"{name}.json"
        result = memjax(
            "evaluate", "--data", str(path), "--split", "private_test", "--json", str(out)
        )
        assert result.returncode == 0, result.stderr
        reports[name] = json.loads(out.read_text())
    full, partial = reports["full"], reports["test_only"]
    assert partial["data"] == str(test_only_csv) and partial["n"] == full["n"] == 3589
    assert partial["accuracy"] == full["accuracy"]
    assert partial["confusion_matrix"] == full["confusion_matrix"]


def test_test_only_csv_names_the_absent_split(test_only_csv, tmp_path):
    """What needs Training fails on one line naming it, the file and the splits there, before
    any run is written; `data info` and `data convert` show only the splits present."""
    holds = (
        f"{test_only_csv}: split 'train' is not in this file (it holds public_test, private_test)"
    )
    run_dir = tmp_path / "run"
    assert_one_line_error(
        memjax("train", "--data", str(test_only_csv), "--run-dir", str(run_dir), "--no-progress"),
        holds,
    )
    assert not run_dir.exists()
    assert_one_line_error(
        memjax("evaluate", "--data", str(test_only_csv), "--split", "train"), holds
    )
    result = memjax("data", "info", str(test_only_csv))
    assert result.returncode == 0, result.stderr
    rows = [line.split()[0] for line in result.stdout.splitlines()[2:]]
    assert rows == ["public_test", "private_test", "absent"], result.stdout
    assert result.stdout.splitlines()[-1] == "absent (not in this file): train"
    converted = tmp_path / "test_only.npz"
    result = memjax("data", "convert", str(test_only_csv), str(converted))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("(public_test 3589, private_test 3589; absent: train)")
    result = memjax("data", "info", str(converted), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert list(info["splits"]) == ["public_test", "private_test"] and info["absent"] == ["train"]
    assert info["splits"]["private_test"]["per_class"] == [491, 55, 528, 879, 594, 416, 626]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("preset", "expected"),
    [("paper_plain_diode_relu", "shufflenetv2-1.0x-plain-diode"), ("paper", "shufflenetv2-1.0x")],
)
def test_finetune_and_reproduce_start_from_the_presets_shipped_model(
    preset, expected, monkeypatch, fer2013_path, tmp_path
):
    """Without --checkpoint, `finetune` starts the plain-diode preset from the model trained
    through its circuit and every other preset from the shipped model; `reproduce` gets the
    circuit-trained models, and none once --checkpoint is given. The commands' work is
    replaced by a recorder (what runs after is the library's, tested elsewhere)."""
    import memjax.reproduce
    import memjax.training.finetune
    from memjax.cli import CIRCUIT_TRAINED, main

    seen = {}
    monkeypatch.setattr(
        memjax.training.finetune,
        "run_finetune",
        lambda checkpoint, *a, **k: seen.update(c=checkpoint) or {},
    )
    args = ["finetune", "--data", str(fer2013_path), "--preset", preset, "--run-dir", str(tmp_path)]
    assert main(args) == 0
    assert seen["c"].name == expected and seen["c"].exists()
    monkeypatch.setattr(memjax.reproduce, "reproduce", lambda *a, **k: seen.update(r=k))
    assert main(["reproduce", "--data", str(fer2013_path), "--out", str(tmp_path)]) == 0
    assert seen["r"]["circuit_trained"] == CIRCUIT_TRAINED
    assert all(path.exists() for path in CIRCUIT_TRAINED.values())
    assert main(["reproduce", "--checkpoint", str(DEFAULT_CHECKPOINT), "--out", str(tmp_path)]) == 0
    assert seen["r"]["circuit_trained"] == {}
