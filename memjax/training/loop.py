"""The training loop: train on Training, select on PublicTest, report on PrivateTest.

A run lives in one folder::

    RUN/run.json         model and training configuration (a resumed run reads it back)
    RUN/checkpoints/N/   orbax, after epoch N: params, BN statistics, optimizer state, PRNG key,
                         step, the data order of the next epoch; the last ``keep`` are kept
    RUN/best/            model checkpoint of the epoch with the best PublicTest accuracy
    RUN/metrics.jsonl    one JSON line per epoch

Resuming restores the latest checkpoint and continues exactly: the run is a pure function of the
configuration, so 2 epochs + resume + 2 epochs equals 4 epochs straight.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from tqdm.auto import tqdm

from memjax.data import FER2013
from memjax.errors import MemjaxError
from memjax.network import ShuffleNetConfig, build_model
from memjax.training import steps
from memjax.training.augment import AugmentConfig
from memjax.training.checkpoint import save_model, uncommitted, write_json_atomic


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        epochs: passes over the Training split.
        batch_size: images per step; the last partial batch of an epoch is dropped so that every
            step has one shape (each epoch's shuffle drops different images).
        seed: seeds the initial weights, the PRNG key of augmentation and dropout, and the data
            order of every epoch.
        keep: number of per-epoch checkpoints kept.
        optimizer: see :class:`~memjax.training.steps.OptimizerConfig`.
        augment: see :class:`~memjax.training.augment.AugmentConfig`.
        init_from: a model checkpoint whose parameters and BN statistics start the run instead
            of a fresh initialisation (fine-tuning: a second, shorter schedule from a trained
            model); the run's model configuration must be the checkpoint's. The optimizer
            state starts fresh.
        circuit: circuit-aware training: the name of a hardware preset
            (``memjax.hardware.config.PRESETS``) whose steady-state ReLU, clamp and max-pool
            curves replace the software nonlinearities (``memjax.hardware.twin``), so that the
            weights suit that circuit; None: the software model.
        circuit_phase_epochs: with ``circuit``, the first epochs phase the circuit's forward
            drops in (``memjax.hardware.twin.circuit_activations``' blend), epoch e at
            e / (circuit_phase_epochs + 1) of them, from the next on the circuit as it is.
            Only epochs on the circuit as it is compete for the best checkpoint (selected on
            PublicTest, as always).
        circuit_recentre: with ``circuit`` and ``init_from``, the starting model's biases are
            moved onto the circuit's diode knees and its BN statistics re-estimated through
            the circuit's curves (``memjax.hardware.twin.recentre``, on
            ``recentre_images`` Training images drawn with ``seed``) before the first epoch:
            fine-tuning then starts from a network whose signals pass the diodes.
        recentre_images: the number of Training images of that re-estimation.
    """

    epochs: int = 30
    batch_size: int = 128
    seed: int = 0
    keep: int = 3
    optimizer: steps.OptimizerConfig = steps.OptimizerConfig()
    augment: AugmentConfig = AugmentConfig()
    init_from: str | None = None
    circuit: str | None = None
    circuit_phase_epochs: int = 0
    circuit_recentre: bool = False
    recentre_images: int = 4096

    def __post_init__(self):
        for name in ("epochs", "batch_size", "keep"):
            if getattr(self, name) < 1:
                raise MemjaxError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.circuit_phase_epochs < 0:
            raise MemjaxError(f"circuit_phase_epochs must be >= 0, got {self.circuit_phase_epochs}")
        if self.circuit_phase_epochs and self.circuit is None:
            raise MemjaxError("circuit_phase_epochs needs a circuit to phase into")
        if self.circuit is not None and self.circuit_phase_epochs >= self.epochs:
            raise MemjaxError(
                f"circuit_phase_epochs {self.circuit_phase_epochs} leaves no epoch of the "
                f"{self.epochs} on the circuit alone"
            )
        if self.circuit_recentre and (self.circuit is None or self.init_from is None):
            raise MemjaxError(
                "circuit_recentre needs a circuit and a model to start from (init_from)"
            )
        if self.circuit_recentre and self.circuit_phase_epochs:
            raise MemjaxError(
                "circuit_recentre moves the biases onto the circuit's knees at once; phasing the "
                "forward drops in as well (circuit_phase_epochs) would compensate them twice"
            )
        if self.recentre_images < 1:
            raise MemjaxError(f"recentre_images must be at least 1, got {self.recentre_images}")
        if self.circuit is not None:
            from memjax.hardware.config import PRESETS

            if self.circuit not in PRESETS:
                raise MemjaxError(
                    f"circuit {self.circuit!r}: expected one of {', '.join(sorted(PRESETS))}"
                )

    def circuit_share(self, epoch: int) -> float:
        """The share of the circuit's forward drops phased in at ``epoch`` (1-based)."""
        if self.circuit is None:
            return 0.0
        return min(1.0, epoch / (self.circuit_phase_epochs + 1))

    @classmethod
    def from_dict(cls, fields: dict) -> TrainConfig:
        fields = dict(fields)
        fields["optimizer"] = steps.OptimizerConfig(**fields.get("optimizer", {}))
        fields["augment"] = AugmentConfig(**fields.get("augment", {}))
        return cls(**fields)


def epoch_order(seed: int, epoch: int, size: int) -> np.ndarray:
    """The shuffled order of the Training split in ``epoch`` (1-based)."""
    return np.random.default_rng([seed, epoch]).permutation(size).astype(np.int32)


def train(
    data: FER2013,
    run_dir: Path,
    model_config: ShuffleNetConfig | None = None,
    train_config: TrainConfig | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict:
    """Train a new run or resume one; returns its best epoch and final state.

    ``stop_after`` ends this call after that many epochs, checkpointed, as an interruption
    would; ``resume=True`` later continues the run to its configured ``epochs``.
    """
    run_dir = Path(run_dir).absolute()
    # the splits training reads, asked for before anything is written or compiled
    train_split, public_split = data.split("train"), data.split("public_test")
    model_config, train_config, start_epoch = _prepare_run(
        run_dir, model_config, train_config, resume
    )
    model = build_model(model_config, seed=train_config.seed)
    train_graph, eval_graph, params, batch_stats = steps.split_model(model)
    if train_config.init_from is not None and start_epoch == 0:
        params, batch_stats = _initial_weights(
            Path(train_config.init_from), model_config, train_config, data
        )
    steps_per_epoch = len(train_split) // train_config.batch_size
    if steps_per_epoch < 1:
        raise MemjaxError(
            f"the Training split has {len(train_split)} images, fewer than one batch of "
            f"{train_config.batch_size}"
        )
    optimizer = steps.make_optimizer(train_config.optimizer, steps_per_epoch, train_config.epochs)
    state = steps.init_state(params, batch_stats, optimizer, train_config.seed)
    state["next_order"] = epoch_order(train_config.seed, 1, len(train_split))
    best = {"epoch": 0, "public_test_accuracy": -1.0}

    manager = ocp.CheckpointManager(
        run_dir / "checkpoints",
        options=ocp.CheckpointManagerOptions(max_to_keep=train_config.keep, create=True),
    )
    if start_epoch > 0:
        state, best = _restore(manager, start_epoch, state, run_dir)
        _truncate_metrics(run_dir / "metrics.jsonl", start_epoch)

    compiled = {}  # circuit share -> (train step, predict): one compile per share

    def programs(share):
        if share not in compiled:
            compiled.clear()  # shares only grow: the earlier programs are done with
            activations = twin_activations(train_config, model_config, share)
            compiled[share] = (
                steps.make_train_step(
                    train_graph,
                    optimizer,
                    train_config.augment,
                    train_config.optimizer.label_smoothing,
                    activations,
                ),
                steps.make_predict(eval_graph, activations),
            )
        return compiled[share]

    batch = train_config.batch_size
    last_epoch = train_config.epochs
    if stop_after is not None:
        last_epoch = min(last_epoch, start_epoch + stop_after)
    for epoch in range(start_epoch + 1, last_epoch + 1):
        started = time.time()
        share = train_config.circuit_share(epoch)
        train_step, predict = programs(share)
        order = np.asarray(state.pop("next_order"))
        loss_sum, correct = 0.0, 0
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch}/{train_config.epochs}",
            disable=not progress,
            leave=False,
            unit="step",
        )
        for i in bar:
            index = np.sort(order[i * batch : (i + 1) * batch])
            state, metrics = train_step(
                state, train_split.images[index], train_split.labels[index].astype(np.int32)
            )
            if progress and i % 20 == 19:
                bar.set_postfix(loss=f"{float(metrics['loss']):.3f}")
            loss_sum += metrics["loss"]
            correct += metrics["correct"]
        bar.close()
        seen = steps_per_epoch * batch
        logits = steps.predict_logits(
            predict, state["params"], state["batch_stats"], public_split.images
        )
        public_accuracy = float(np.mean(logits.argmax(-1) == public_split.labels))
        record = {
            "epoch": epoch,
            "train_loss": float(loss_sum) / steps_per_epoch,
            "train_accuracy": int(correct) / seen,
            "public_test_accuracy": public_accuracy,
            "seconds": round(time.time() - started, 2),
        }
        if train_config.circuit is not None:
            record["circuit_share"] = share
        competes = train_config.circuit is None or share == 1.0
        if competes and public_accuracy > best["public_test_accuracy"]:
            best = {"epoch": epoch, "public_test_accuracy": public_accuracy}
            save_model(
                run_dir / "best",
                model_config,
                state["params"],
                state["batch_stats"],
                {
                    "trained": {
                        "epoch": epoch,
                        "public_test_accuracy": public_accuracy,
                        "train": _as_dict(train_config),
                    }
                },
            )
        record["best_epoch"] = best["epoch"]
        with open(run_dir / "metrics.jsonl", "a") as log:
            log.write(json.dumps(record) + "\n")
        state["next_order"] = epoch_order(train_config.seed, epoch + 1, len(train_split))
        manager.save(
            epoch,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave({"best": best})
            ),
        )
        manager.wait_until_finished()
        tqdm.write(
            f"epoch {epoch}: loss {record['train_loss']:.4f}  train {record['train_accuracy']:.4f}"
            f"  public_test {public_accuracy:.4f}  (best {best['public_test_accuracy']:.4f} "
            f"@ {best['epoch']})  {record['seconds']:.0f}s"
        )
    manager.close()
    return {
        "run_dir": str(run_dir),
        "epochs_done": last_epoch,
        "best": best,
        "state": state,
        "model_config": model_config,
        "train_config": train_config,
    }


def twin_activations(train_config: TrainConfig, model_config: ShuffleNetConfig, share: float = 1.0):
    """The nonlinearities of the twin at this circuit share (None: the software ones)."""
    if train_config.circuit is None:
        return None
    from memjax.hardware.config import PRESETS
    from memjax.hardware.twin import circuit_activations

    return circuit_activations(PRESETS[train_config.circuit](), model_config, share)


def _prepare_run(run_dir: Path, model_config, train_config, resume: bool):
    run_file = run_dir / "run.json"
    if resume:
        if not run_file.exists():
            raise MemjaxError(f"cannot resume: {run_file} does not exist (no run in {run_dir})")
        try:
            saved = json.loads(run_file.read_text())
            model_config = ShuffleNetConfig.from_dict(saved["model"])
            train_config = TrainConfig.from_dict(saved["train"])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise MemjaxError(f"{run_file} is malformed ({error})") from None
        manager = ocp.CheckpointManager(run_dir / "checkpoints")
        latest = manager.latest_step()
        manager.close()
        return model_config, train_config, int(latest or 0)
    if (run_dir / "checkpoints").exists() and any((run_dir / "checkpoints").iterdir()):
        raise MemjaxError(
            f"{run_dir} already holds a run: pass --resume to continue it, "
            "or choose a new --run-dir"
        )
    model_config = model_config or ShuffleNetConfig()
    train_config = train_config or TrainConfig()
    write_json_atomic(
        run_file, {"model": json.loads(model_config.to_json()), "train": _as_dict(train_config)}
    )
    return model_config, train_config, 0


def _restore(manager, epoch: int, template: dict, run_dir: Path):
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    try:
        restored = manager.restore(
            epoch,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
            ),
        )
    except Exception as error:  # orbax raises many types for truncated or foreign files
        raise MemjaxError(
            f"checkpoint {run_dir / 'checkpoints' / str(epoch)} is unreadable or corrupt "
            f"({type(error).__name__})"
        ) from None
    return uncommitted(dict(restored["state"])), restored["meta"]["best"]


def _initial_weights(
    checkpoint: Path, model_config: ShuffleNetConfig, train_config: TrainConfig, data: FER2013
):
    from memjax.training.checkpoint import load_model

    model, _ = load_model(checkpoint)
    if model.config != model_config:
        raise MemjaxError(
            f"--init-from {checkpoint}: its model configuration differs from the run's "
            f"({model.config} vs {model_config})"
        )
    if train_config.circuit_recentre:
        from memjax.hardware.config import PRESETS
        from memjax.hardware.twin import recentre

        images = data.split("train").images
        count = min(train_config.recentre_images, len(images))
        chosen = np.random.default_rng([train_config.seed, 0]).choice(len(images), count, False)
        recentre(model, PRESETS[train_config.circuit](), images[np.sort(chosen)])
    _, _, params, batch_stats = steps.split_model(model)
    return params, batch_stats


def _truncate_metrics(path: Path, last_epoch: int) -> None:
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line)["epoch"] <= last_epoch]
    path.write_text("".join(line + "\n" for line in kept))


def _as_dict(config) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))
