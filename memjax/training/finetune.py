"""Hardware-in-the-loop fine-tuning: train the target conductances on the chip that runs them.

Each step evaluates the chip (:class:`~memjax.hardware.chip.Chip`, its programmed, varied and
faulty conductances) at steady state on a batch of Training images, differentiates the loss
with JAX through the circuit's static equations to the target conductances, updates them with
optax, and re-programs the chip through the write-verify loop from the states its devices
are in, so programming error is drawn anew every step. On request
(``FinetuneConfig.forward = "transient"``) the forward pass is instead the whole-network
transient read at a chosen time after the input step, differentiated through diffrax.

The gradient reaches the targets through the model of programming: the chip's conductance is
``factor * target`` plus what programming left (a straight-through term, constant in the
backward pass), and a stuck device passes no gradient. The forward pass is always the chip's
own conductances, so the loss is measured on the chip, not on the model.

The targets are trained in normalised form u = (G - g_min) / (g_max - g_min), clipped to
[0, 1] after every update (Adam's step is then a fraction of the conductance range).

A run lives in one folder, as a training run does: ``run.json`` (configuration),
``checkpoints/N/`` (orbax: targets, optimizer state, the chip's device states, conductances,
variation factors and faults, the PRNG key, the step), ``metrics.jsonl``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from tqdm.auto import tqdm

from memjax.devices.opamp import OpAmpErrors
from memjax.errors import MemjaxError
from memjax.hardware.chip import (
    Chip,
    ChipVariation,
    evaluation_key,
    image_keys,
    inference_logits,
    memristor_conductances,
    reprogram,
    with_memristor_conductances,
)
from memjax.hardware.chip import fabricate as fabricate_chip
from memjax.hardware.transient import TransientOptions, float64, read_logits
from memjax.provenance import code_version, provenance
from memjax.training.checkpoint import uncommitted, write_json_atomic


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """How to fine-tune.

    Attributes:
        steps: optimizer steps (one batch and one re-programming each); 0: the chip is
            only fabricated, programmed and evaluated.
        batch_size: Training images per step.
        learning_rate: Adam's step in units of the conductance range (constant after a
            linear warm-up over the first tenth of the steps).
        seed: seeds the batch order and the programming noise of every step.
        checkpoint_every: steps between checkpoints (the last step is always saved).
        keep: checkpoints kept.
        mode: "chip" (hardware in the loop: every step on the one chip, re-programmed) or
            "noise" (hardware-aware training, the baseline of aihwkit and CrossSim, here at
            the device level: every step on a fresh chip drawn from the same
            :class:`ChipVariation`, its targets written exactly, so the targets learn to
            tolerate the distribution and never see the chip they will run on).
        forward: "steady" (the chip's steady state, differentiated through its closed
            forms; the default) or "transient" (the logits read ``read_time`` after the
            input step from the whole-network transient of
            :mod:`memjax.hardware.transient`, differentiated in reverse mode through every
            neuron's adaptive implicit solve: the network is trained for what it shows at
            that time. Minutes per image on 2 CPU cores; meant for an accelerator).
        read_time: when the transient's logits are read after the input step, s (the paper
            reports 137 ns per inference; "transient" only).
        select_every: steps between evaluations of the deployed chip on the selection split
            (``run_finetune``'s ``select_split``, PublicTest by default); the run then deploys
            the step that scored best there (the earliest of ties), not simply the last, so
            that the step count is chosen without looking at the reported split. 0: no
            selection, the last step is deployed.
    """

    steps: int = 100
    batch_size: int = 64
    learning_rate: float = 2e-3
    seed: int = 0
    checkpoint_every: int = 25
    keep: int = 2
    mode: str = "chip"
    forward: str = "steady"
    read_time: float = 300e-9
    select_every: int = 0

    def __post_init__(self):
        if self.mode not in ("chip", "noise"):
            raise MemjaxError(f"FinetuneConfig.mode {self.mode!r}: expected 'chip' or 'noise'")
        if self.forward not in ("steady", "transient"):
            raise MemjaxError(
                f"FinetuneConfig.forward {self.forward!r}: expected 'steady' or 'transient'"
            )
        if not self.read_time > 0:
            raise MemjaxError("FinetuneConfig.read_time must be positive (s)")
        if self.steps < 0:
            raise MemjaxError("FinetuneConfig.steps must be 0 (evaluate only) or positive")
        for name in ("batch_size", "checkpoint_every", "keep"):
            if getattr(self, name) < 1:
                raise MemjaxError(f"FinetuneConfig.{name} must be at least 1")
        if not self.learning_rate > 0:
            raise MemjaxError("FinetuneConfig.learning_rate must be positive")
        if self.select_every < 0:
            raise MemjaxError("FinetuneConfig.select_every must be 0 (no selection) or positive")
        if self.select_every and not self.steps:
            raise MemjaxError("FinetuneConfig.select_every needs steps to select among")


def chip_logits(chip: Chip, normalised: list, images, key=None) -> jax.Array:
    """Steady-state logits of ``chip`` whose targets are ``normalised``, differentiable in
    them through the model of programming (straight-through, stuck devices frozen); each
    image one inference (with read noise, its own draw from ``key``)."""
    return inference_logits(chip, images, key, programmed_conductances(chip, normalised))


def chip_transient_logits(
    chip: Chip, normalised: list, images, options: TransientOptions, key=None
):
    """The logits of ``chip`` at ``options.t_end`` after the input step (whole-network
    transient, float64), differentiable in ``normalised`` as :func:`chip_logits` is, and the
    number of neurons whose solver failed; with read noise every image is its own inference
    (its own draw from ``key``, as :func:`inference_logits` draws it). Call under
    ``jax.enable_x64(True)``."""
    actual = programmed_conductances(chip, normalised)
    images = np.asarray(images, np.float64)
    if not chip.variation.has("read_noise"):
        return read_logits(float64(chip.computing(actual)), images, options)
    if key is None:
        chip.computing(actual)  # raises the read-noise error
    logits, failed = [], 0
    for k, image in zip(image_keys(key, len(images)), images, strict=True):
        one, fails = read_logits(float64(chip.computing(actual, k)), image[None], options)
        logits.append(one)
        failed = failed + fails
    return jnp.concatenate(logits), failed


def programmed_conductances(chip: Chip, normalised: list) -> list:
    """The conductances ``chip`` holds, differentiable in the targets ``normalised`` through
    the model of programming (straight-through, stuck devices frozen)."""
    hw = chip.design.hardware
    span = float(hw.g_max - hw.g_min)
    return [
        _programmed(u, now, factor, stuck, span)
        for u, factor, stuck, now in zip(
            normalised, chip.factors, chip.stuck, chip.conductances, strict=True
        )
    ]


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _programmed(u, now, factor, stuck, span: float):
    """The chip's conductance ``now`` in the forward pass; in the backward pass that of the
    model of programming, ``(g_min + span u) factor`` for a working device and a constant
    for a stuck one: d/du = span * factor * (stuck == 0). Written as a rule rather than as
    ``modelled + stop_gradient(now - modelled)``, whose forward arithmetic over all 2.5 M
    devices cost 134 ms of a 225 ms chip forward pass (1.0x, batch 64, measured)."""
    return now


def _programmed_forward(u, now, factor, stuck, span):
    return now, (factor, stuck)


def _programmed_backward(span, residuals, cotangent):
    factor, stuck = residuals
    return cotangent * jnp.where(stuck == 0, span * factor, 0.0), None, None, None


_programmed.defvjp(_programmed_forward, _programmed_backward)


def normalised_targets(chip: Chip) -> list:
    hw = chip.design.hardware
    span = hw.g_max - hw.g_min
    return [(g - hw.g_min) / span for g in memristor_conductances(chip.design)]


def _fresh_chip(design, variation: ChipVariation, key):
    """A new chip of ``variation`` with ``design``'s targets written exactly (noise mode)."""
    chip, report = fabricate_chip(design, dataclasses.replace(variation, programming=None), key)
    return dataclasses.replace(chip, variation=variation), report


def deployed_chip(state: dict, variation: ChipVariation, chip_key, mode: str) -> Chip:
    """The chip the trained targets run on: the fine-tuned chip itself ("chip" mode), or in
    "noise" mode the chip of ``chip_key`` programmed with them by write-verify."""
    if mode != "noise":
        return state["chip"]
    return eqx.filter_jit(fabricate_chip)(state["chip"].design, variation, chip_key)[0]


def initial_state(chip: Chip, optimizer, seed: int, mode: str = "chip") -> dict:
    """The fine-tuning state before the first step: the chip's design as the targets. In
    "noise" mode the first step runs on a fresh chip too, not on ``chip``."""
    targets = normalised_targets(chip)
    if mode == "noise":
        fresh = jax.random.fold_in(jax.random.key(seed), 1 << 30)
        chip = eqx.filter_jit(_fresh_chip)(chip.design, chip.variation, fresh)[0]
    return {
        "chip": chip,
        "targets": targets,
        "opt_state": optimizer.init(targets),
        "key": jax.random.key(seed),
        "step": jnp.zeros((), jnp.int32),
    }


def make_optimizer(config: FinetuneConfig):
    warmup = max(1, config.steps // 10)
    schedule = optax.linear_schedule(0.0, config.learning_rate, warmup)
    return optax.adam(schedule)


def make_step(optimizer, mode: str = "chip", transient: TransientOptions | None = None):
    """A ``(state, images, labels) -> (state, metrics)``; ``state`` holds ``chip``,
    ``targets`` (normalised), ``opt_state``, ``key``, ``step``. ``mode``: as
    :attr:`FinetuneConfig.mode`. The forward pass is the chip's steady state (one jitted
    step), or with ``transient`` its logits at ``transient.t_end`` after the input step: the
    stages' compiled solvers then run one after another (one program for the whole network
    would take hours to compile) and the update is jitted."""
    update = _update(optimizer, mode)
    if transient is not None:
        return _transient_step(update, transient)

    def loss_fn(targets, chip, images, labels, key):
        logits = chip_logits(chip, targets, images, key)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, jnp.sum(jnp.argmax(logits, -1) == labels)

    @eqx.filter_jit
    def step(state, images, labels):
        (loss, correct), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state["targets"], state["chip"], images, labels, read_noise_key(state)
        )
        new, report = update(state, grads)
        return new, {"loss": loss, "correct": correct, "pulses_mean": report["pulses_mean"]}

    return step


def _transient_step(update, options: TransientOptions):
    def loss_fn(targets, chip, images, labels, key):
        logits, failed = chip_transient_logits(chip, targets, images, options, key)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, (jnp.sum(jnp.argmax(logits, -1) == labels), failed)

    update = eqx.filter_jit(update)

    def step(state, images, labels):
        with jax.enable_x64(True):
            (loss, (correct, failed)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                state["targets"], state["chip"], images, labels, read_noise_key(state)
            )
        if int(failed):
            raise MemjaxError(
                f"the transient solver failed for {int(failed)} neurons within "
                f"{options.max_steps} steps each"
            )
        grads = [g.astype(t.dtype) for g, t in zip(grads, state["targets"], strict=True)]
        new, report = update(state, grads)
        return new, {"loss": loss, "correct": correct, "pulses_mean": report["pulses_mean"]}

    return step


READ_NOISE_STREAM = 0x5EAD
"""Folded into a step's key for its read noise: the key's splits for programming noise (and
so every run without read noise) stay as they were before read noise entered the steps."""


def read_noise_key(state: dict):
    """The read-noise key of the step that ``state`` is about to take."""
    return jax.random.fold_in(state["key"], READ_NOISE_STREAM)


def _update(optimizer, mode: str):
    """``(state, gradients of the targets) -> (state, programming report)``: the optimizer's
    step, the targets clipped to the conductance range, the chip re-programmed (or a fresh
    one drawn in "noise" mode)."""

    def update(state, grads):
        chip = state["chip"]
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["targets"])
        targets = [jnp.clip(t, 0.0, 1.0) for t in optax.apply_updates(state["targets"], updates)]
        hw = chip.design.hardware
        span = hw.g_max - hw.g_min
        design = with_memristor_conductances(chip.design, [hw.g_min + span * t for t in targets])
        key, k_program = jax.random.split(state["key"])
        if mode == "noise":
            chip, report = _fresh_chip(design, chip.variation, k_program)
        else:
            chip, report = reprogram(chip, design, k_program)
        new = {**state, "chip": chip, "targets": targets, "opt_state": opt_state, "key": key}
        new["step"] = state["step"] + 1
        return new, report

    return update


@functools.lru_cache(maxsize=4)
def _step_for(steps: int, learning_rate: float, mode: str, transient: TransientOptions | None):
    """One compiled step per schedule, mode and transient, shared by the runs of a process (a
    resumed run, a sweep), instead of a compile per :func:`finetune` call."""
    config = FinetuneConfig(steps=steps, learning_rate=learning_rate, mode=mode)
    return make_step(make_optimizer(config), mode, transient)


def transient_options(config: FinetuneConfig, hardware) -> TransientOptions | None:
    """How a ``forward == "transient"`` run integrates: read at ``config.read_time``, the
    step tolerances of :meth:`TransientOptions.for_hardware` (tighter with super diodes,
    whose intermediate times need them); None for a steady-state run."""
    if config.forward != "transient":
        return None
    return TransientOptions.for_hardware(hardware, t_end=config.read_time)


def chip_accuracy(chip: Chip, images, labels, batch_size: int = 256, key=None) -> float:
    """Top-1 accuracy of the chip at steady state (:func:`chip_scores`)."""
    return chip_scores(chip, images, labels, batch_size, key)["accuracy"]


def chip_scores(chip: Chip, images, labels, batch_size: int = 256, key=None) -> dict:
    """Top-1 ``accuracy`` and mean cross-entropy ``loss`` (nats) of the chip at steady state,
    each image one inference: with read noise (which needs ``key``) each image its own draw,
    from ``key`` folded with the batch index and then with the image's index, so the same
    images and key give the same draws."""
    evaluate = _evaluate_batch()
    batches = []
    for i, start in enumerate(range(0, len(images), batch_size)):
        read_key = None if key is None else jax.random.fold_in(key, i)
        batches.append(evaluate(chip, images[start : start + batch_size], read_key))
    return _scores(batches, labels)


def _scores(logits: list, labels) -> dict:
    logits = np.concatenate([np.asarray(x, np.float64) for x in logits])
    labels = np.asarray(labels)
    shifted = logits - logits.max(-1, keepdims=True)
    log_p = shifted - np.log(np.sum(np.exp(shifted), -1, keepdims=True))
    return {
        "accuracy": float(np.mean(logits.argmax(-1) == labels)),
        "loss": float(-np.mean(log_p[np.arange(len(labels)), labels])),
    }


def chip_transient_scores(
    chip: Chip, images, labels, options: TransientOptions, batch_size: int = 256, key=None
) -> dict:
    """:func:`chip_scores` of the chip's logits read ``options.t_end`` after the input step
    (the whole-network transient, float64): what ``forward == "transient"`` trains for. Read
    noise is drawn as :func:`chip_scores` draws it, so an image sees the same draw in both."""
    normalised = normalised_targets(chip)  # the forward pass is the chip's conductances
    batches = []
    with jax.enable_x64(True):
        for i, start in enumerate(range(0, len(images), batch_size)):
            read_key = None if key is None else jax.random.fold_in(key, i)
            batch = images[start : start + batch_size]
            logits, failed = chip_transient_logits(chip, normalised, batch, options, read_key)
            if int(failed):
                raise MemjaxError(
                    f"the transient solver failed for {int(failed)} neurons within "
                    f"{options.max_steps} steps each"
                )
            batches.append(logits)
    return _scores(batches, labels)


@functools.cache
def _evaluate_batch():
    # without read noise the network, not the chip, goes through jit: the chip's states,
    # factors and fault maps are not needed to compute it
    logits = eqx.filter_jit(lambda net, x: net.steady_logits(x))
    noisy = eqx.filter_jit(inference_logits)

    def evaluate(chip, x, key):
        if chip.variation.has("read_noise"):
            return noisy(chip, x, key)
        return logits(chip.network(), x)

    return evaluate


def batch_order(seed: int, step: int, size: int, batch: int) -> np.ndarray:
    """The Training images of ``step`` (1-based): a pure function of seed and step, so a
    resumed run draws the same batches."""
    return np.sort(np.random.default_rng([seed, step]).choice(size, batch, replace=False))


def _saved_arrays(state: dict) -> dict:
    chip = state["chip"]
    return {
        "targets": state["targets"],
        "opt_state": state["opt_state"],
        "states": chip.states,
        "conductances": chip.conductances,
        "factors": chip.factors,
        "stuck": chip.stuck,
        **_opamp_arrays(chip.opamp_errors),
        "key": jax.random.key_data(state["key"]),
        "step": state["step"],
    }


def _opamp_arrays(errors) -> dict:
    if errors is None:
        return {}
    return {
        "opamp_offsets": [e.offset for e in errors],
        "opamp_gains": [e.open_loop_gain for e in errors],
    }


def _opamp_errors(saved: dict):
    if "opamp_offsets" not in saved:
        return None
    pairs = zip(saved["opamp_offsets"], saved["opamp_gains"], strict=True)
    return [OpAmpErrors(offset, gain) for offset, gain in pairs]


def _from_saved(saved: dict, design, variation: ChipVariation) -> dict:
    hw = design.hardware
    span = hw.g_max - hw.g_min
    targets = list(saved["targets"])
    design = with_memristor_conductances(design, [hw.g_min + span * t for t in targets])
    chip = Chip(
        design,
        list(saved["factors"]),
        list(saved["stuck"]),
        list(saved["states"]),
        list(saved["conductances"]),
        _opamp_errors(saved),
        variation,
    )
    return {
        "chip": chip,
        "targets": targets,
        "opt_state": saved["opt_state"],
        "key": jax.random.wrap_key_data(saved["key"]),
        "step": saved["step"],
    }


def finetune(
    chip: Chip,
    train_images,
    train_labels,
    run_dir: Path,
    config: FinetuneConfig,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    describe: dict | None = None,
    select=None,
) -> dict:
    """Fine-tune ``chip`` (freshly fabricated; on ``resume`` only its design and variation are
    used, everything else comes from the latest checkpoint). Returns the final state.

    ``select``: with ``config.select_every``, a function of the state giving its selection
    accuracy (the deployed chip on the selection split), called every ``select_every`` steps
    and at the last; the best state is saved in ``run_dir/selected`` (:func:`load_selected`)
    and every evaluation is logged in ``metrics.jsonl``."""
    if config.select_every and select is None:
        raise MemjaxError("FinetuneConfig.select_every needs a selection function")
    run_dir = Path(run_dir).absolute()
    optimizer = make_optimizer(config)
    state = initial_state(chip, optimizer, config.seed, config.mode)
    manager = ocp.CheckpointManager(
        run_dir / "checkpoints",
        options=ocp.CheckpointManagerOptions(max_to_keep=config.keep, create=True),
    )
    start = 0
    if resume:
        latest = manager.latest_step()
        if latest is None:
            raise MemjaxError(f"cannot resume: no checkpoint in {run_dir / 'checkpoints'}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _saved_arrays(state))
        try:
            saved = manager.restore(latest, args=ocp.args.StandardRestore(abstract))
        except Exception as error:  # orbax raises many types for truncated or foreign files
            raise MemjaxError(
                f"checkpoint {run_dir / 'checkpoints' / str(latest)} is unreadable or corrupt "
                f"({type(error).__name__})"
            ) from None
        state = _from_saved(uncommitted(saved), chip.design, chip.variation)
        start = int(latest)
        _truncate_log(run_dir / "metrics.jsonl", start)
        _record_code_version(run_dir, start)
    else:
        if manager.latest_step() is not None:
            raise MemjaxError(f"{run_dir} already holds a run: pass --resume to continue it")
        write_json_atomic(
            run_dir / "run.json",
            {
                "finetune": dataclasses.asdict(config),
                **(describe or {}),
                "code_versions": [{"from_step": 0, **code_version()}],
            },
        )
    transient = transient_options(config, chip.design.hardware)
    step_fn = _step_for(config.steps, config.learning_rate, config.mode, transient)
    last = config.steps if stop_after is None else min(config.steps, start + stop_after)
    bar = tqdm(range(start + 1, last + 1), desc="fine-tuning", disable=not progress, unit="step")
    log = run_dir / "metrics.jsonl"
    best = _selection_so_far(log, start) if config.select_every else None
    for step in bar:
        started = time.time()
        index = batch_order(config.seed, step, len(train_images), config.batch_size)
        state, metrics = step_fn(
            state, jnp.asarray(train_images[index]), jnp.asarray(train_labels[index], jnp.int32)
        )
        record = {
            "step": step,
            "loss": float(metrics["loss"]),
            "batch_accuracy": int(metrics["correct"]) / config.batch_size,
            "pulses_mean": float(metrics["pulses_mean"]),
            "seconds": round(time.time() - started, 3),
        }
        if config.select_every and (step % config.select_every == 0 or step == config.steps):
            record["selection_accuracy"] = float(select(state))
            if best is None or record["selection_accuracy"] > best["selection_accuracy"]:
                best = {"step": step, "selection_accuracy": record["selection_accuracy"]}
                _save_selected(run_dir, step, state)
        bar.set_postfix(loss=f"{record['loss']:.3f}")
        with open(log, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if step % config.checkpoint_every == 0 or step == last:
            manager.save(step, args=ocp.args.StandardSave(_saved_arrays(state)))
            manager.wait_until_finished()
    manager.close()
    return state


def _record_code_version(run_dir: Path, step: int) -> None:
    """Append the code version a resumed run continues with to ``run.json``, so that a run
    spliced across commits says so."""
    path = run_dir / "run.json"
    if not path.exists():
        return
    described = json.loads(path.read_text())
    versions = described.setdefault("code_versions", [])
    now = code_version()
    if not versions or {k: versions[-1].get(k) for k in now} != now:
        versions.append({"from_step": step, **now})
        write_json_atomic(path, described)


def _save_selected(run_dir: Path, step: int, state: dict) -> None:
    """The state of ``step``, the best on the selection split so far, replacing the last."""
    manager = ocp.CheckpointManager(
        run_dir / "selected", options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True)
    )
    manager.save(step, args=ocp.args.StandardSave(_saved_arrays(state)), force=True)
    manager.wait_until_finished()
    manager.close()


def _selection_so_far(log: Path, start: int) -> dict | None:
    """The best selection evaluation logged up to ``start`` (a resumed run), or None."""
    best = None
    if log.exists():
        for line in log.read_text().splitlines():
            record = json.loads(line) if line.strip() else {}
            if record.get("step", start + 1) > start or "selection_accuracy" not in record:
                continue
            if best is None or record["selection_accuracy"] > best["selection_accuracy"]:
                best = {"step": record["step"], "selection_accuracy": record["selection_accuracy"]}
    return best


def load_selected(run_dir: Path, chip: Chip) -> tuple[dict, int]:
    """The state a selecting run deploys (the best on the selection split) and its step;
    ``chip`` supplies the design and variation, as for a resumed run."""
    manager = ocp.CheckpointManager(Path(run_dir).absolute() / "selected")
    step = manager.latest_step()
    if step is None:
        raise MemjaxError(f"no selected state in {Path(run_dir) / 'selected'}")
    optimizer = make_optimizer(FinetuneConfig())
    template = initial_state(chip, optimizer, 0)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _saved_arrays(template))
    saved = manager.restore(step, args=ocp.args.StandardRestore(abstract))
    manager.close()
    return _from_saved(uncommitted(saved), chip.design, chip.variation), step


def _truncate_log(path: Path, last_step: int) -> None:
    """Drop log lines of steps after the checkpoint a run resumes from."""
    if path.exists():
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        kept = [line for line in lines if json.loads(line)["step"] <= last_step]
        path.write_text("".join(line + "\n" for line in kept))


def run_finetune(
    checkpoint: Path,
    data,
    run_dir: Path,
    preset: str,
    variation: ChipVariation,
    config: FinetuneConfig,
    chip_seed: int = 0,
    evaluate_images: int = 512,
    split: str = "private_test",
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    say=print,
    select_split: str = "public_test",
    select_images: int = 0,
    transient_images: int = 8,
) -> dict:
    """What ``memjax finetune`` does: fabricate the chip of the model on the preset, measure
    its accuracy, fine-tune it on Training, measure again; returns the JSON result.

    Accuracies are on a fixed random sample of ``evaluate_images`` images of ``split``
    (all of it when 0), the same for the software model and the chip before and after. With
    ``config.select_every`` the chip is also evaluated on ``select_images`` of
    ``select_split`` during the run, and the step that scored best there is the one deployed
    and reported (``accuracy_after``; the last step's is ``accuracy_last``). With
    ``config.forward == "transient"`` the accuracy of the logits at ``config.read_time`` (what
    the run trains for) is reported beside the steady state's, before and after, on the first
    ``transient_images`` images of the sample (the transient takes minutes per image on a
    CPU)."""
    from memjax.hardware.config import PRESETS
    from memjax.hardware.memristive import convert
    from memjax.training import steps
    from memjax.training.checkpoint import load_model
    from memjax.training.evaluate import own_activations

    if preset not in PRESETS:
        raise MemjaxError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    for name, count in (("evaluate_images", evaluate_images), ("select_images", select_images)):
        if count < 0:
            raise MemjaxError(f"{name} must be 0 (the whole split) or positive, not {count}")
    if transient_images < 1:
        raise MemjaxError(f"transient_images must be at least 1, not {transient_images}")
    if config.select_every and config.forward == "transient":
        raise MemjaxError(
            "selecting the deployed step (--select-every) is by steady-state accuracy, not "
            "by the transient's logits that --forward transient trains for; use one or the other"
        )
    if config.select_every and select_split == split:
        raise MemjaxError(f"the selection split must differ from the reported one ({split!r})")
    # fine-tuning steps read Training; measuring the chip only (no steps) does not
    train = data.split("train") if config.steps else None
    model, payload = load_model(checkpoint)
    images, labels = _sample(data.split(split), evaluate_images)
    # a model trained through a circuit is scored through that circuit's twin
    activations = own_activations(model, payload)
    _, eval_graph, params, batch_stats = steps.split_model(model)
    predict = steps.make_predict(eval_graph, activations)
    logits = steps.predict_logits(predict, params, batch_stats, images, 256)
    software = float(np.mean(logits.argmax(-1) == labels))
    through = "" if activations is None else " (through the circuit it was trained for)"
    say(f"software model{through}: {software:.4f} on {len(images)} {split} images")
    design = convert(model, PRESETS[preset]())
    say(f"fabricating and programming the chip (seed {chip_seed}) ...")
    chip_key = jax.random.key(chip_seed)
    chip, programming = eqx.filter_jit(fabricate_chip)(design, variation, chip_key)
    # read noise (if any): the same draws for the same images before and after
    reads = evaluation_key(chip_key)
    before = chip_scores(chip, images, labels, key=reads)
    say(f"chip before fine-tuning: {before['accuracy']:.4f}")
    transient = transient_options(config, design.hardware)
    if transient is not None:  # what the run trains for, on a subset: minutes per image
        subset = (images[:transient_images], labels[:transient_images])
        transient_before = chip_transient_scores(chip, *subset, transient, key=reads)
        say(
            f"chip before fine-tuning, logits at {config.read_time * 1e9:g} ns: "
            f"{transient_before['accuracy']:.4f} on the first {len(subset[0])} images"
        )
    select = None
    if config.select_every:
        chosen_images, chosen_labels = _sample(data.split(select_split), select_images)

        def select(state):
            deployed = deployed_chip(state, variation, chip_key, config.mode)
            return chip_accuracy(deployed, chosen_images, chosen_labels, key=reads)

    started = time.time()
    state = finetune(
        chip,
        None if train is None else train.images,
        None if train is None else train.labels,
        run_dir,
        config,
        resume=resume,
        progress=progress,
        stop_after=stop_after,
        describe={"checkpoint": str(checkpoint), "preset": preset, "chip_seed": chip_seed},
        select=select,
    )
    seconds = time.time() - started
    deployed = deployed_chip(state, variation, chip_key, config.mode)
    # without a step the deployed chip is the one measured before (as programmed)
    untouched = int(state["step"]) == 0 and config.mode == "chip"
    last = before if untouched else chip_scores(deployed, images, labels, key=reads)
    say(f"chip after {int(state['step'])} steps: {last['accuracy']:.4f}")
    transient_report = None
    if transient is not None:
        transient_after = (
            transient_before
            if untouched
            else chip_transient_scores(deployed, *subset, transient, key=reads)
        )
        say(
            f"chip after, logits at {config.read_time * 1e9:g} ns: "
            f"{transient_after['accuracy']:.4f}"
        )
        transient_report = {
            "read_time_s": config.read_time,
            "rtol": transient.rtol,
            "atol_V": transient.atol,
            "images": len(subset[0]),
            "subset": f"the first {len(subset[0])} images of the evaluated sample",
            "accuracy_before": transient_before["accuracy"],
            "accuracy_after": transient_after["accuracy"],
            "loss_before": transient_before["loss"],
            "loss_after": transient_after["loss"],
        }
    selection = None
    after = last
    if config.select_every:
        selected, step = load_selected(run_dir, chip)
        deployed = deployed_chip(selected, variation, chip_key, config.mode)
        after = chip_scores(deployed, images, labels, key=reads)
        log = [
            json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").open() if line.strip()
        ]
        selection = {
            "split": select_split,
            "images": len(chosen_images),
            "every": config.select_every,
            "step": step,
            "accuracies": {
                r["step"]: r["selection_accuracy"] for r in log if "selection_accuracy" in r
            },
        }
        say(f"chip at step {step}, selected on {select_split}: {after['accuracy']:.4f}")
    described = json.loads((Path(run_dir) / "run.json").read_text())
    sizes = variation.sizes()
    return {
        "software_accuracy": software,
        "software_through_circuit": activations is not None,
        "accuracy_before": before["accuracy"],
        "accuracy_after": after["accuracy"],
        "accuracy_last": last["accuracy"],
        "loss_before": before["loss"],
        "loss_after": after["loss"],
        "loss_last": last["loss"],
        "selection": selection,
        "transient": transient_report,
        "variation": sizes["variation"],
        "stuck_at_rate": sizes["stuck_on_rate"] + sizes["stuck_off_rate"],
        "stuck_on_rate": sizes["stuck_on_rate"],
        "stuck_off_rate": sizes["stuck_off_rate"],
        "read_noise": sizes["read_noise"],
        "wire_resistance_ohm": sizes["wire_resistance"],
        "opamp_offset_V": sizes["opamp_offset"],
        "opamp_gain_spread": sizes["opamp_gain_spread"],
        "levels": variation.levels,
        "write_verify": variation.programming is not None,
        "steps": int(state["step"]),
        "mode": config.mode,
        "forward": config.forward,
        "read_time_s": config.read_time if config.forward == "transient" else None,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "seed": config.seed,
        "evaluated_on": {"split": split, "images": len(images)},
        "preset": preset,
        "checkpoint": str(checkpoint),
        "chip_seed": chip_seed,
        "programming": {k: float(v) for k, v in programming.items()},
        "finetune_seconds": round(seconds, 1),
        "run_dir": str(Path(run_dir).absolute()),
        "code_versions": described.get("code_versions"),
        "provenance": provenance(),
    }


def _sample(split, count: int):
    """A fixed random sample of ``count`` images of ``split`` (all of it when 0)."""
    if count and count < len(split):
        chosen = np.sort(np.random.default_rng(0).choice(len(split), count, False))
        return split.images[chosen], split.labels[chosen]
    return split.images, split.labels
