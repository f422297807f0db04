"""Training: exact resume, checkpoint housekeeping, augmentation, bad checkpoints."""

import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest

from memjax.errors import MemjaxError
from memjax.network import ShuffleNetConfig
from memjax.training.augment import AugmentConfig, augment_batch
from memjax.training.checkpoint import load_model
from memjax.training.loop import TrainConfig, train
from memjax.training.steps import OptimizerConfig, split_model

TINY_MODEL = ShuffleNetConfig(width=0.5, stage_repeats=(1, 1, 1))


def test_resume_continues_exactly(tiny_data, tmp_path):
    """2 epochs, stop, resume, 2 more == 4 epochs straight, bit for bit."""
    config = TrainConfig(epochs=4, batch_size=32, keep=2)
    straight = train(tiny_data, tmp_path / "a", TINY_MODEL, config, progress=False)
    first = train(tiny_data, tmp_path / "b", TINY_MODEL, config, progress=False, stop_after=2)
    assert first["epochs_done"] == 2
    resumed = train(tiny_data, tmp_path / "b", resume=True, progress=False)
    assert resumed["epochs_done"] == 4
    a, b = jax.tree.leaves(straight["state"]), jax.tree.leaves(resumed["state"])
    assert len(a) == len(b) > 50
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    log_a = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    log_b = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k != "seconds"}  # noqa: E731
    assert [strip(x) for x in log_a] == [strip(x) for x in log_b]
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == ["3", "4"]
    best_epoch = straight["best"]["epoch"]
    model, payload = load_model(tmp_path / "a" / "best")
    assert payload["trained"]["epoch"] == best_epoch
    assert model.config == TINY_MODEL


def test_a_finished_run_refuses_a_fresh_start(tiny_data, tmp_path):
    config = TrainConfig(epochs=1, batch_size=32)
    train(tiny_data, tmp_path, TINY_MODEL, config, progress=False)
    with pytest.raises(MemjaxError, match="already holds a run"):
        train(tiny_data, tmp_path, TINY_MODEL, config, progress=False)
    with pytest.raises(MemjaxError, match="cannot resume"):
        train(tiny_data, tmp_path / "other", resume=True, progress=False)


def test_init_from_starts_at_the_checkpoint_weights(tiny_data, tmp_path):
    """Fine-tuning starts from the checkpoint: at learning rate 0 its parameters stay as saved."""
    train(
        tiny_data, tmp_path / "a", TINY_MODEL, TrainConfig(epochs=1, batch_size=32), progress=False
    )
    frozen = TrainConfig(
        epochs=1,
        batch_size=32,
        seed=1,
        optimizer=OptimizerConfig(learning_rate=0.0),
        init_from=str(tmp_path / "a" / "best"),
    )
    tuned = train(tiny_data, tmp_path / "b", TINY_MODEL, frozen, progress=False)
    saved, _ = load_model(tmp_path / "a" / "best")
    _, _, params, _ = split_model(saved)
    a, b = jax.tree.leaves(params), jax.tree.leaves(tuned["state"]["params"])
    assert len(a) == len(b) > 50
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    other = dataclasses.replace(TINY_MODEL, dropout=0.0)
    with pytest.raises(MemjaxError, match="--init-from .* differs from the run's"):
        train(tiny_data, tmp_path / "c", other, frozen, progress=False)


def test_bad_checkpoints_give_clear_errors(tiny_data, tmp_path):
    train(
        tiny_data,
        tmp_path / "run",
        TINY_MODEL,
        TrainConfig(epochs=1, batch_size=32),
        progress=False,
    )
    best = tmp_path / "run" / "best"
    with pytest.raises(MemjaxError, match="holds a 0.5x ShuffleNetV2, but width 1.0x"):
        load_model(best, expected_width=1.0)
    with pytest.raises(MemjaxError, match="does not exist"):
        load_model(tmp_path / "nothing")

    truncated = tmp_path / "truncated"
    shutil.copytree(best, truncated)
    for file in (truncated / "state").rglob("*"):
        if file.is_file() and file.stat().st_size > 64:
            file.write_bytes(file.read_bytes()[: file.stat().st_size // 3])
    with pytest.raises(MemjaxError, match="unreadable, truncated or corrupt"):
        load_model(truncated)

    no_config = tmp_path / "no_config"
    shutil.copytree(best, no_config)
    (no_config / "config.json").write_text("{ not json")
    with pytest.raises(MemjaxError, match="config.json is malformed"):
        load_model(no_config)


def test_augmentation_keeps_range_and_flip_is_exact():
    images = np.random.default_rng(0).integers(0, 256, (16, 48, 48)).astype(np.uint8)
    out = augment_batch(jax.random.key(0), images, AugmentConfig())
    assert out.shape == (16, 48, 48)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 255.0
    # No rotation, scale or erasing: every image is either itself or its mirror, shifted.
    plain = AugmentConfig(max_shift=0, max_rotation_deg=0, max_scale=0, erase_probability=0)
    out = np.asarray(augment_batch(jax.random.key(1), images, plain))
    same = [np.allclose(o, x, atol=1e-3) for o, x in zip(out, images)]
    mirrored = [np.allclose(o, x[:, ::-1], atol=1e-3) for o, x in zip(out, images)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 0 < sum(mirrored) < 16
    shift_only = AugmentConfig(
        max_shift=4, flip=False, max_rotation_deg=0, max_scale=0, erase_probability=0
    )
    out = np.asarray(augment_batch(jax.random.key(2), images, shift_only))
    for o, x in zip(out, images):  # a crop of the zero-padded image: some shift reproduces it
        padded = np.pad(x.astype(np.float32), 4)
        assert any(
            np.allclose(o, padded[4 + dy : 52 + dy, 4 + dx : 52 + dx], atol=1e-3)
            for dy in range(-4, 5)
            for dx in range(-4, 5)
        )
