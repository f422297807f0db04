"""Every flag of ``memjax finetune``, ``evaluate``, ``train`` and ``reproduce`` that claims a
physical or numerical effect changes the outcome, and the command's JSON records it.

Each row runs the command in this process (``memjax.cli.main``) on a small model and data set,
with one flag changed from the command's baseline run, and asserts (a) that the JSON the command
writes records the flag's value where the row says, and (b) that an outcome the flag should move
(a loss, the chip's programming, a waveform, the chosen sample) differs from the baseline's.
Losses are compared rather than accuracies: on 32 random images a real change of the logits
can leave every argmax where it was. Flags that only choose files, folders, progress bars or
checkpoint bookkeeping are listed in ``NO_EFFECT`` and checked to be every flag left over, so a
new flag must join a table."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from memjax.cli import build_parser, main
from memjax.network import ShuffleNetConfig

pytestmark = pytest.mark.slow  # the main job / training on FER2013: CI's full run only

TINY = ShuffleNetConfig(width=0.5, stage_repeats=(1, 1, 1))


def _get(record, path: str):
    for part in path.split("."):
        record = record[int(part)] if isinstance(record, list) else record[part]
    return record


@dataclasses.dataclass(frozen=True)
class Row:
    """One flag: ``args`` added to the baseline; ``records`` maps JSON paths to the value the
    flag must leave there; ``outcome`` is the JSON path of a number or list it must change."""

    args: tuple[str, ...]
    records: dict
    outcome: str

    @property
    def flag(self) -> str:
        """The flag the row tests: the last in ``args`` (earlier ones enable it)."""
        return [a for a in self.args if a.startswith("--")][-1]


def _flags(command: str) -> set[str]:
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]  # noqa: SLF001
    return {o for a in sub._actions for o in a.option_strings if o.startswith("--")}  # noqa: SLF001


# finetune: flags of the chip run with --steps 0 (fabricated, programmed, evaluated);
# flags of the training with --steps 2. Outcome: the chip's loss on the evaluated images.
# Targets are written exactly (--no-write-verify: the write-verify loop's compile is the
# costliest part of a tiny run) except in the row of that flag itself.
WRITE_VERIFY_BASE = ("--variation", "0.1", "--stuck-at", "0.02", "--steps", "0")
WRITE_VERIFY_ROWS = [
    Row(("--no-write-verify",), {"write_verify": False}, "programming.pulses_total"),
]
CHIP_BASE = (*WRITE_VERIFY_BASE, "--no-write-verify")
CHIP_ROWS = [
    Row(("--preset", "paper"), {"preset": "paper"}, "loss_before"),
    Row(("--variation", "0.3"), {"variation": 0.3}, "loss_before"),
    Row(("--stuck-at", "0.1"), {"stuck_at_rate": 0.1}, "loss_before"),
    Row(("--stuck-on-share", "1.0"), {"stuck_on_rate": 0.02, "stuck_off_rate": 0.0}, "loss_before"),
    Row(("--read-noise", "0.05"), {"read_noise": 0.05}, "loss_before"),
    Row(("--levels", "4"), {"levels": 4}, "loss_before"),
    Row(("--wire-resistance", "200"), {"wire_resistance_ohm": 200.0}, "loss_before"),
    Row(("--opamp-offset", "20"), {"opamp_offset_V": 0.02}, "loss_before"),
    Row(("--opamp-gain-spread", "2.0"), {"opamp_gain_spread": 2.0}, "loss_before"),
    Row(("--chip-seed", "5"), {"chip_seed": 5}, "loss_before"),
    Row(("--eval-images", "16"), {"evaluated_on.images": 16}, "loss_before"),
]
TRAIN_BASE = ("--variation", "0.1", "--no-write-verify", "--steps", "2", "--batch-size", "8")
TRAIN_BASE += ("--lr", "2e-3")
TRAINING_ROWS = [
    Row(("--steps", "3"), {"steps": 3}, "loss_after"),
    Row(("--batch-size", "16"), {"batch_size": 16}, "loss_after"),
    Row(("--lr", "1e-2"), {"learning_rate": 1e-2}, "loss_after"),
    Row(("--seed", "3"), {"seed": 3}, "loss_after"),
    Row(("--mode", "noise"), {"mode": "noise"}, "loss_after"),
    Row(("--select-every", "1"), {"selection.every": 1}, "selection"),
]
# with selection on: the split and the sample it selects on
SELECTION_BASE = (*TRAIN_BASE, "--select-every", "1")
SELECTION_ROWS = [
    Row(("--select-split", "train"), {"selection.split": "train"}, "selection.accuracies"),
    Row(("--select-images", "16"), {"selection.images": 16}, "selection.accuracies"),
]
# the transient forward pass, evaluated (not trained: the gradient through a 48x48
# transient takes minutes; tests/test_chip.py trains through it on 8x8 inputs). Read at
# 0.5 ns, mid-transient: 18 knots instead of 137 at 300 ns (this group took 752 s in CI
# reading at 300 ns), and a read time that moves the logits. The --read-time row reads at
# 0.48 ns, whose grid also has 18 knots, so it reuses the baseline's compiled stage solvers
# (at 0.3 ns, 13 knots, it compiled all 11 again: 22 compiles, 382 s of this group's 522 s
# tracing and compiling them on one core, measured 2026-12-05).
TRANSIENT_BASE = (
    *CHIP_BASE,
    "--preset",
    "paper_plain_diode_relu",
    "--forward",
    "transient",
    "--read-time",
    "0.5",
    "--transient-eval-images",
    "1",
)
TRANSIENT_ROWS = [
    Row(("--forward", "transient"), {"forward": "transient"}, "transient"),
    Row(("--read-time", "0.48"), {"transient.read_time_s": 4.8e-10}, "transient.loss_before"),
    Row(("--transient-eval-images", "2"), {"transient.images": 2}, "transient.loss_before"),
]
FINETUNE_GROUPS = {
    "write_verify": (WRITE_VERIFY_BASE, WRITE_VERIFY_ROWS),
    "chip": (CHIP_BASE, CHIP_ROWS),
    "training": (TRAIN_BASE, TRAINING_ROWS),
    "selection": (SELECTION_BASE, SELECTION_ROWS),
    "transient": (TRANSIENT_BASE, TRANSIENT_ROWS),
}
NO_EFFECT = {
    "finetune": {
        "--help",
        "--data",
        "--checkpoint",
        "--checkpoint-every",
        "--run-dir",
        "--resume",
        "--stop-after",
        "--json",
        "--no-progress",
    },
    "evaluate": {"--help", "--checkpoint", "--data", "--json", "--width"},
    "train": {
        "--help",
        "--data",
        "--run-dir",
        "--keep",
        "--resume",
        "--stop-after",
        "--export",
        "--no-progress",
    },
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny model checkpoint and a tiny FER2013 (random images) as a .npz."""
    from conftest import random_split

    from memjax.data import save_npz
    from memjax.data.fer2013 import FER2013
    from memjax.network import build_model
    from memjax.training.checkpoint import save_model
    from memjax.training.steps import split_model

    root = tmp_path_factory.mktemp("flags")
    rng = np.random.default_rng(0)
    data = FER2013(random_split(rng, 96), random_split(rng, 32), random_split(rng, 32), "random")
    _, _, params, stats = split_model(build_model(TINY))
    save_model(root / "model", TINY, params, stats, {})
    return root, save_npz(data, root / "tiny.npz")


def _finetune(setup, name: str, args) -> dict:
    root, data = setup
    out = root / "finetune" / name
    common = ["finetune", "--data", str(data), "--checkpoint", str(root / "model")]
    common += ["--eval-images", "0", "--run-dir", str(out / "run"), "--no-progress"]
    assert main([*common, *args, "--json", str(out / "result.json")]) == 0
    return json.loads((out / "result.json").read_text())


def _check(row: Row, baseline: dict, result: dict) -> None:
    for path, value in row.records.items():
        assert _get(result, path) == pytest.approx(value), (row.flag, path)
    assert _get(result, row.outcome) != _get(baseline, row.outcome), row.flag


@pytest.mark.long  # `pytest -m long` (pyproject.toml)
@pytest.mark.xdist_group("flags")
@pytest.mark.parametrize("group", list(FINETUNE_GROUPS))
def test_finetune_flags_take_effect(setup, group):
    base, rows = FINETUNE_GROUPS[group]
    baseline = _finetune(setup, f"{group}-baseline", base)
    assert baseline["provenance"]["command"].startswith("memjax finetune")
    for index, row in enumerate(rows):
        # a row's flag replaces the baseline's value of it (argparse keeps the last)
        args = [*base, *row.args]
        if row.flag == "--forward":  # the group's baseline has it: compare the steady run
            steady = [a for a in base if a not in ("--forward", "transient")]
            assert _finetune(setup, f"{group}-steady", steady)["transient"] is None
            assert baseline["transient"]["accuracy_before"] is not None
            continue
        _check(row, baseline, _finetune(setup, f"{group}-{index}", args))


EVALUATE_ROWS = [
    Row(("--split", "public_test"), {"split": "public_test", "n": 32}, "loss"),
    Row(("--tta", "flip"), {"tta": "flip"}, "loss"),
]


def test_evaluate_flags_take_effect(setup):
    root, data = setup

    def run(name, args):
        out = root / "evaluate" / f"{name}.json"
        common = ["evaluate", "--data", str(data), "--checkpoint", str(root / "model")]
        assert main([*common, *args, "--json", str(out)]) == 0
        return json.loads(out.read_text())

    baseline = run("baseline", [])
    assert baseline["split"] == "private_test" and baseline["tta"] == "none"
    for index, row in enumerate(EVALUATE_ROWS):
        _check(row, baseline, run(str(index), row.args))


def test_finetune_refuses_what_it_cannot_honour(setup, capsys):
    """Combinations that would otherwise be accepted and ignored end with one line and
    status 2: a step chosen by steady-state accuracy for a run trained on the transient's
    logits, a selection without steps, an empty transient sample, a negative step count."""
    root, data = setup
    common = ["finetune", "--data", str(data), "--checkpoint", str(root / "model")]
    common += ["--run-dir", str(root / "refused"), "--no-progress"]
    cases = [
        (["--forward", "transient", "--select-every", "1"], "--forward transient"),
        (["--steps", "0", "--select-every", "1"], "select_every needs steps"),
        (["--forward", "transient", "--transient-eval-images", "0"], "transient_images"),
        (["--steps", "-1"], "steps must be 0"),
    ]
    for args, fragment in cases:
        assert main([*common, *args]) == 2, args
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("memjax: error: "), lines
        assert fragment in lines[0], (fragment, lines[0])


# train: one epoch of a small architecture at every --width (the command's widths keep
# their meaning; stage 2 holds one basic unit after its downsampling unit, the others only
# theirs: with one unit per stage --zero-init-branch has no branch to zero and changed
# nothing, measured 2026-12-05).
# Outcome: the epoch's training loss; records: run.json.
CIRCUIT = "paper_plain_diode_relu"
TRAIN_ROWS = [
    Row(("--width", "0.5"), {"model.width": 0.5}, "train_loss"),
    Row(("--epochs", "2"), {"train.epochs": 2}, "train_loss"),
    Row(("--warmup-epochs", "0.2"), {"train.optimizer.warmup_epochs": 0.2}, "train_loss"),
    Row(("--erase-probability", "0"), {"train.augment.erase_probability": 0.0}, "train_loss"),
    Row(("--zero-init-branch",), {"model.zero_init_branch": True}, "train_loss"),
    Row(("--batch-size", "16"), {"train.batch_size": 16}, "train_loss"),
    Row(("--optimizer", "sgd"), {"train.optimizer.name": "sgd"}, "train_loss"),
    Row(("--lr", "1e-2"), {"train.optimizer.learning_rate": 1e-2}, "train_loss"),
    Row(("--weight-decay", "0.5"), {"train.optimizer.weight_decay": 0.5}, "train_loss"),
    Row(("--seed", "3"), {"train.seed": 3}, "train_loss"),
    Row(("--init-from", "BASELINE"), {}, "train_loss"),
    Row(("--circuit", CIRCUIT), {"train.circuit": CIRCUIT}, "train_loss"),
    # against the same two epochs on the circuit alone (the row's own baseline, below)
    Row(
        ("--epochs", "2", "--circuit", CIRCUIT, "--circuit-phase-epochs", "1"),
        {"train.circuit_phase_epochs": 1, "train.circuit": CIRCUIT, "circuit_share": 0.5},
        "train_loss",
    ),
    # against the same start on the circuit without re-centring (the row's own baseline)
    Row(
        ("--init-from", "BASELINE", "--circuit", CIRCUIT, "--recentre"),
        {"train.circuit_recentre": True, "train.circuit": CIRCUIT},
        "train_loss",
    ),
]


@pytest.mark.long  # `pytest -m long` (pyproject.toml)
def test_train_flags_take_effect(setup, monkeypatch):
    import memjax.network

    root, data = setup
    tiny = lambda **fields: ShuffleNetConfig(stage_repeats=(2, 1, 1), **fields)  # noqa: E731
    monkeypatch.setattr(memjax.network, "ShuffleNetConfig", tiny)

    def run(name, args):
        out = root / "train" / name
        common = ["train", "--data", str(data), "--run-dir", str(out), "--no-progress"]
        assert main([*common, "--epochs", "1", "--batch-size", "32", *args]) == 0
        described = json.loads((out / "run.json").read_text())
        first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
        return {**described, **{k: first.get(k) for k in ("train_loss", "circuit_share")}}

    baseline = run("baseline", [])
    for index, row in enumerate(TRAIN_ROWS):
        args = [a.replace("BASELINE", str(root / "train" / "baseline" / "best")) for a in row.args]
        result = run(str(index), args)
        if row.flag == "--init-from":
            assert Path(result["train"]["init_from"]).name == "best"
        if row.flag == "--circuit-phase-epochs":  # its first epoch half software, half circuit
            alone = run("circuit-alone", ["--epochs", "2", "--circuit", CIRCUIT])
            _check(row, alone, result)
            continue
        if row.flag == "--recentre":
            start = str(root / "train" / "baseline" / "best")
            plain = run("not-recentred", ["--init-from", start, "--circuit", CIRCUIT])
            _check(row, plain, result)
            continue
        _check(row, baseline, result)


# reproduce: the tiny model, 8 images for the steady states, one image's transient on its
# central 8x8 pixels (a super-diode preset's transient of the whole 48x48 image of this model
# ran past 15 min on 2 cores, measured 2026-12-05), no GBW sweep. The paper preset's plain
# diodes stop this model's signal early (its logits at t_end are nearly its biases), so the
# outcomes are the energy (which the image and the circuit set) and the layers' solver steps
# (which the tolerances set). The rows that change only numbers (tolerances, seed, GBW, the
# steady states' sample) reuse the baseline's compiled stage solvers, and so, since every
# chunk of neurons has one size, do most stages of an image count and a crop (their drives
# compile again, and a crop's average pool); a preset compiles its own (this test: 1,202 s
# in the suite before, 575 s alone on one core after, measured 2026-12-05). near_ideal's
# ideal op-amps behind super diodes left 10 neurons of this random model unconverged in
# 20,000 steps, so the row uses paper_super_diodes.
REPRODUCE_BASE = (
    "--dc-images",
    "8",
    "--transient-crop",
    "8",
    "--gbw",
    "--compile-cache",
    "",
    "--power-images",
    "0",
)
REPRODUCE_ROWS = [
    Row(("--power-images", "1"), {"presets.paper.dc_power.images": 1}, "presets.paper.dc_power"),
    Row(("--target-latency-ns", "1e6"), {"latency_target.target_ns": 1e6}, "latency_target"),
    Row(("--rtol", "3e-4"), {"transient_options.rtol": 3e-4}, "layers"),
    Row(("--atol", "3e-5"), {"transient_options.atol_V": 3e-5}, "layers"),
    Row(("--stepping", "per_stage"), {"transient_options.stepping": "per_stage"}, "layers"),
    Row(("--stepping", "per_neuron"), {"transient_options.stepping": "per_neuron"}, "layers"),
    Row(("--seed", "1"), {"seed": 1}, "energy_per_inference_J"),
    Row(("--dc-images", "12"), {"accuracy.images": 12}, "accuracy.images"),
    Row(("--gbw", "2"), {"gbw_sweep.1.gain_bandwidth_Hz": 2e9}, "gbw_sweep"),
    Row(("--transient-images", "2"), {"transient_images": 2}, "argmax_settle_ns_per_image"),
    Row(("--transient-crop", "12"), {"transient_crop": 12}, "energy_per_inference_J"),
    Row(
        ("--preset", "paper_super_diodes"),
        {"preset": "paper_super_diodes"},
        "energy_per_inference_J",
    ),
]
_SHARED_RUN = ("--power-images", "--target-latency-ns", "--dc-images", "--gbw")
REPRODUCE_RUNS = [
    [row for row in REPRODUCE_ROWS if row.flag in _SHARED_RUN],
    *([row] for row in REPRODUCE_ROWS if row.flag not in _SHARED_RUN),
]
"""One run for the flags whose outcomes no other flag of the run can change (--power-images:
the DC power exists only with it; --target-latency-ns: latency_target exists only with it;
--dc-images: the count of images; --gbw: the sweep's rows exist only with it), one run for
each of the others (each changes the transient, which the others' outcomes read): 8 runs
of the main job instead of 11 (in CI ~70 s each, 2026-12-06)."""
NO_EFFECT["reproduce"] = {"--help", "--out", "--checkpoint", "--data", "--compile-cache"}


@pytest.mark.long  # `pytest -m long` (pyproject.toml)
def test_reproduce_flags_take_effect(setup):
    root, data = setup

    def run(name, args):
        out = root / "reproduce" / name
        common = ["reproduce", "--data", str(data), "--checkpoint", str(root / "model")]
        assert main([*common, "--out", str(out), *REPRODUCE_BASE, *args]) == 0
        return json.loads((out / "results.json").read_text())

    baseline = run("baseline", [])
    assert baseline["provenance"]["command"].startswith("memjax reproduce")
    for index, rows in enumerate(REPRODUCE_RUNS):
        result = run(str(index), [arg for row in rows for arg in row.args])
        for row in rows:
            _check(row, baseline, result)


@pytest.mark.parametrize("command", ["finetune", "evaluate", "train", "reproduce"])
def test_every_flag_is_in_a_table(command):
    rows = {
        "finetune": [row for _, group in FINETUNE_GROUPS.values() for row in group],
        "evaluate": EVALUATE_ROWS,
        "train": TRAIN_ROWS,
        "reproduce": REPRODUCE_ROWS,
    }[command]
    assert _flags(command) == {row.flag for row in rows} | NO_EFFECT[command]
