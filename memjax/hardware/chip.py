"""Chips: one fabricated instance of a memristive network, non-idealities drawn from a PRNG key.

A :class:`Chip` holds the design (the converted network, whose conductances are the
*targets*), what is persistent about its devices (device-to-device variation, stuck cells),
and what programming left in them (states, conductances). :func:`fabricate` draws a chip and
programs it from the formed OFF state through the write-verify loop
(:mod:`memjax.devices.programming`); :func:`reprogram` writes new targets starting from the
states the devices are in, drawing programming error anew; :meth:`Chip.network` is the
network the chip computes at one inference, and :func:`inference_logits` runs a batch of
images as one inference each (with read noise, each image its own draw).

Every memristor is covered: both lines of every crossbar kernel (bias rows included) and the
MBN's input, bias and feedback memristors.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from memjax.circuits.crossbar import wire_effective_conductances
from memjax.devices.opamp import OpAmpErrors
from memjax.devices.programming import WriteVerify, programming_device, write_verify
from memjax.devices.validation import require, require_non_negative
from memjax.errors import MemjaxError
from memjax.hardware.memristive import MemristiveShuffleNet


def _size(value):
    """A non-ideality's size as :class:`ChipVariation` stores it: a number becomes a 0-d
    float64 NumPy array (exact in the JSON records; JAX takes it as float32 unless x64 is
    on), an array (a tracer inside jit) stays as it is."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return np.asarray(value, np.float64)
    return value


def _optional_size(value):
    """As :func:`_size`, except that exactly 0 stays a Python 0.0: the non-ideality is
    absent (no draw, ideal wires or op-amps), a different program."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and value == 0:
        return 0.0
    return _size(value)


def _present(size) -> bool:
    return not (isinstance(size, float) and size == 0.0)


SIZES = (
    "variation",
    "stuck_on_rate",
    "stuck_off_rate",
    "read_noise",
    "wire_resistance",
    "opamp_offset",
    "opamp_gain_spread",
)


class ChipVariation(eqx.Module):
    """The non-idealities of a chip. Defaults: an ideal chip programmed by write-verify.

    The sizes of the non-idealities (variation, stuck rates, read noise, wire resistance,
    op-amp offset and gain spread) are pytree leaves, 0-d float64 arrays traced under jit, so
    chips that differ only in sizes (a sweep's points, the rows of a flag table) share every
    compiled program: each distinct chip structure compiled fabrication for 13-19 s on the
    0.5x test model (2 CPU cores, measured 2026-12-05), now once. A read noise, wire
    resistance, op-amp offset or gain spread of exactly 0 stays a Python 0.0 and selects the
    chip without it (no per-inference draw, ideal wires, the design's op-amps): another
    program. ``levels``, ``programming``, ``variation_seen_by_verify`` and
    ``switching_rate`` select the structure and are static.

    Attributes:
        variation: device-to-device conductance variation, the standard deviation sigma of a
            persistent lognormal factor exp(sigma n) on each device's conductance
            (0.1 = 10 %).
        variation_seen_by_verify: False (default, a reconstruction): the factor acts after
            programming, as a device-specific relaxation that the verify reads did not see;
            the convention of simulators in which variation is what programming leaves
            (aihwkit, CrossSim). True: the verify reads see the varied device and correct it
            to within the tolerance, so variation costs pulses, not accuracy.
        stuck_on_rate: fraction of devices stuck at the ON state (g_max times their factor).
        stuck_off_rate: fraction of devices stuck at the OFF state.
        levels: conductance levels the targets are rounded to before programming
            (0: a continuum); 256 for the 8 bits of Ran et al., IEEE TNNLS 2022.
        programming: the write-verify loop, or None to write the targets exactly (then only
            variation and faults remain).
        read_noise: relative standard deviation of every conductance during an inference:
            each device reads as G (1 + read_noise n), n standard normal, drawn anew for every
            inference (every image: :func:`inference_logits`), one value per device for the
            whole inference (the output positions of a layer, which the transient computes at
            once, share it), in steady state and transient alike. Per-read noise that differs
            between the positions of one inference (aihwkit's and CrossSim's per-MVM draw) is
            not modelled. Costs one normal draw per device per image (2.5 M for the 1.0x
            network: ~55 ms per image on 2 CPU cores, measured 2026-12-05).
        switching_rate: |k| of the VTEAM programming device, 1/s
            (:func:`~memjax.devices.programming.programming_device`).
        wire_resistance: bit-line resistance between neighbouring cells of every crossbar
            line, ohm (0: ideal wires); exact at steady state through effective conductances
            (:func:`~memjax.circuits.crossbar.wire_effective_conductances`). The MBN's three
            inputs have no long lines and keep ideal wires.
        opamp_offset: standard deviation of every op-amp's input offset voltage, V (0: none);
            a persistent per-op-amp draw, normal with zero mean. Covers the linear op-amps
            that carry the signal: both line amplifiers and the difference stage of every
            kernel, every MBN, the average pool, in the steady state and in the whole-network
            transient alike (``hardware.stages`` puts each on its neuron's blocks). The
            op-amps inside super-diode ReLUs, clamps and max pool keep the design's: not
            modelled, although in the ``paper`` preset U1's offset would shift the ReLU's
            knee.
        opamp_gain_spread: sigma of a persistent lognormal factor exp(sigma n) on every such
            op-amp's open-loop gain A0 (0.3 = 30 %), its gain-bandwidth product held
            (:mod:`memjax.devices.opamp`). Neither error is exported to ngspice netlists
            (refused there).
    """

    variation: float | Array = eqx.field(default=0.0, converter=_size)
    variation_seen_by_verify: bool = eqx.field(default=False, static=True)
    stuck_on_rate: float | Array = eqx.field(default=0.0, converter=_size)
    stuck_off_rate: float | Array = eqx.field(default=0.0, converter=_size)
    levels: int = eqx.field(default=0, static=True)
    programming: WriteVerify | None = eqx.field(default=WriteVerify(), static=True)
    read_noise: float | Array = eqx.field(default=0.0, converter=_optional_size)
    switching_rate: float = eqx.field(default=1e8, static=True)
    wire_resistance: float | Array = eqx.field(default=0.0, converter=_optional_size)
    opamp_offset: float | Array = eqx.field(default=0.0, converter=_optional_size)
    opamp_gain_spread: float | Array = eqx.field(default=0.0, converter=_optional_size)

    def __check_init__(self):
        owner = "ChipVariation"
        for name in (*SIZES, "levels"):
            require_non_negative(owner, name, getattr(self, name))
        require(
            owner,
            "stuck_on_rate + stuck_off_rate",
            self.stuck_on_rate + self.stuck_off_rate,
            lambda r: r <= 1,
            "at most 1",
        )
        require(owner, "levels", self.levels, lambda n: n != 1, "0 or at least 2")

    def has(self, name: str) -> bool:
        """Whether the chip has the non-ideality ``name`` (read_noise, wire_resistance,
        opamp_offset or opamp_gain_spread) at all: a static fact, also under jit."""
        return _present(getattr(self, name))

    def sizes(self) -> dict:
        """The sizes as Python floats (concrete variations only), for JSON records."""
        return {name: float(getattr(self, name)) for name in SIZES}


def memristor_conductances(net: MemristiveShuffleNet) -> list[Array]:
    """Every memristor conductance array of the network, in a fixed order."""
    return [get(net) for get in _getters(net)]


def with_memristor_conductances(net: MemristiveShuffleNet, arrays) -> MemristiveShuffleNet:
    """The network with its memristor conductance arrays replaced (same order and shapes)."""
    getters = _getters(net)
    return eqx.tree_at(lambda n: [g(n) for g in getters], net, list(arrays))


def _stage_getters(net: MemristiveShuffleNet):
    stages = [lambda n: n.input_stage]
    for u, unit in enumerate(net.units):
        stages += [lambda n, u=u, s=s: n.units[u][s] for s in range(len(unit))]
    return stages + [lambda n: n.output_stage, lambda n: n.fully_connected]


def _getters(net: MemristiveShuffleNet):
    getters = []
    for stage in _stage_getters(net):
        getters += [
            lambda n, s=stage: s(n).kernel.conductances.positive,
            lambda n, s=stage: s(n).kernel.conductances.negative,
        ]
        if stage(net).mbn is not None and stage(net).mbn.memristive:
            getters += [
                lambda n, s=stage: s(n).mbn.input_conductances,
                lambda n, s=stage: s(n).mbn.feedback_conductance,
            ]
    return getters


class Chip(eqx.Module):
    """One chip.

    Attributes:
        design: the converted network; its conductances are the programming targets.
        factors: per device, the persistent variation factor (one array per memristor array).
        stuck: per device, +1 stuck ON, -1 stuck OFF, 0 working.
        states: per device, the state x in [0, 1] that programming left.
        conductances: per device, its conductance now, S (variation and faults included).
        opamp_errors: per crossbar stage (in :func:`memristor_conductances`' stage order) the
            offsets and gains of its op-amps, arrays (K, 4), then the average pool's (C, 1);
            None when the chip's op-amps are as designed.
        variation: the non-idealities it was drawn with (their sizes traced under jit).
    """

    design: MemristiveShuffleNet
    factors: list[Array]
    stuck: list[Array]
    states: list[Array]
    conductances: list[Array]
    opamp_errors: list[OpAmpErrors] | None
    variation: ChipVariation

    def network(self, key: Array | None = None) -> MemristiveShuffleNet:
        """The network this chip computes at one inference: with read noise, the draw of
        ``key`` (required then: a chip with read noise has no noiseless inference)."""
        return self.computing(self.conductances, key)

    def computing(self, arrays: list[Array], key: Array | None = None) -> MemristiveShuffleNet:
        """The network of this chip at one inference with its memristors at ``arrays`` (same
        order and shapes as :attr:`conductances`): wires, op-amps and read noise (drawn from
        ``key``, required when ``variation.read_noise > 0``) as the chip's."""
        if self.variation.has("read_noise"):
            if key is None:
                raise MemjaxError(
                    "ChipVariation.read_noise > 0: every inference of the chip needs a PRNG key "
                    "for its read noise (inference_logits, chip_accuracy(..., key=...))"
                )
            keys = jax.random.split(key, len(arrays))
            arrays = [
                g * (1.0 + self.variation.read_noise * jax.random.normal(k, g.shape, g.dtype))
                for g, k in zip(arrays, keys, strict=True)
            ]
        net = with_memristor_conductances(self.design, arrays)
        if self.variation.has("wire_resistance"):
            net = _with_wires(net, self.variation.wire_resistance)
        if self.opamp_errors is not None:
            net = _with_opamp_errors(net, self.opamp_errors)
        return net


def evaluation_key(chip_key: Array) -> Array:
    """The read-noise key for evaluating the chip fabricated from ``chip_key``: every tool
    that measures a chip's accuracy (``memjax finetune``, Monte Carlo) draws the same noise
    for the same images in the same batches."""
    return jax.random.fold_in(chip_key, 0xE7A1)


def image_keys(key: Array, count: int) -> Array:
    """One read-noise key per image of a batch: ``key`` folded with the image's index, so an
    image's draw does not depend on the batch size (a padded batch draws the same)."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(count))


def inference_logits(
    chip: Chip, gray_levels: Array, key: Array | None = None, arrays: list[Array] | None = None
) -> Array:
    """Steady-state logits of ``chip`` for images (N, 48, 48), each image one inference; with
    its memristors at ``arrays`` (default: its conductances; differentiable in them). With
    read noise every image gets its own draw (:func:`image_keys`), and the images
    run one after another (``lax.map``), each recomputed in the backward pass rather than
    stored (a network's worth of noisy conductances per image)."""
    arrays = chip.conductances if arrays is None else arrays
    if not chip.variation.has("read_noise"):
        return chip.computing(arrays).steady_logits(gray_levels)
    if key is None:
        chip.computing(arrays)  # raises the read-noise error
    keys = image_keys(key, gray_levels.shape[0])

    def one(inference):
        k, image = inference
        return chip.computing(arrays, k).steady_logits(image[None])[0]

    return jax.lax.map(jax.checkpoint(one), (keys, jnp.asarray(gray_levels)))


def _with_opamp_errors(net: MemristiveShuffleNet, errors: list[OpAmpErrors]):
    stages = _stage_getters(net)
    where = lambda n: [s(n).opamp_errors for s in stages] + [n.average_pool_errors]  # noqa: E731
    return eqx.tree_at(where, net, list(errors), is_leaf=lambda x: x is None)


def draw_opamp_errors(
    net: MemristiveShuffleNet, variation: ChipVariation, key: Array
) -> list[OpAmpErrors] | None:
    """One chip's op-amps: per crossbar stage (K, 4), then the average pool (C, 1)."""
    if not (variation.has("opamp_offset") or variation.has("opamp_gain_spread")):
        return None
    a0 = net.hardware.opamp.open_loop_gain
    shapes = [(s(net).kernel.conductances.positive.shape[0], 4) for s in _stage_getters(net)]
    shapes.append((net.fully_connected.kernel.conductances.positive.shape[1] - 1, 1))
    errors = []
    for shape, k in zip(shapes, jax.random.split(key, len(shapes)), strict=True):
        k_offset, k_gain = jax.random.split(k)
        offset = variation.opamp_offset * jax.random.normal(k_offset, shape)
        gain = a0 * jnp.exp(variation.opamp_gain_spread * jax.random.normal(k_gain, shape))
        errors.append(OpAmpErrors(offset, gain))
    return errors


def _with_wires(net: MemristiveShuffleNet, resistance: float) -> MemristiveShuffleNet:
    """Every crossbar line's conductances replaced by its wire-effective ones."""
    stages = _stage_getters(net)
    lines = []
    for stage in stages:
        kernel = stage(net).kernel
        for g in (kernel.conductances.positive, kernel.conductances.negative):
            lines.append(wire_effective_conductances(g, kernel.g_f, resistance))
    where = lambda n: [  # noqa: E731
        getattr(s(n).kernel.conductances, side) for s in stages for side in ("positive", "negative")
    ]
    return eqx.tree_at(where, net, lines)


def fabricate(
    design: MemristiveShuffleNet, variation: ChipVariation, key: Array
) -> tuple[Chip, dict]:
    """Draw a chip of ``design`` and program it from the formed OFF state (x = 0)."""
    k_factor, k_stuck, k_program, k_opamps = jax.random.split(key, 4)
    targets = memristor_conductances(design)
    factor_keys = jax.random.split(k_factor, len(targets))
    stuck_keys = jax.random.split(k_stuck, len(targets))
    factors, stuck = [], []
    for g, kf, ks in zip(targets, factor_keys, stuck_keys, strict=True):
        factors.append(jnp.exp(variation.variation * jax.random.normal(kf, g.shape, g.dtype)))
        u = jax.random.uniform(ks, g.shape)
        on = u < variation.stuck_on_rate
        off = (u >= variation.stuck_on_rate) & (
            u < variation.stuck_on_rate + variation.stuck_off_rate
        )
        stuck.append(on.astype(jnp.int8) - off.astype(jnp.int8))
    states = [jnp.zeros_like(g) for g in targets]
    opamps = draw_opamp_errors(design, variation, k_opamps)
    blank = Chip(design, factors, stuck, states, list(targets), opamps, variation)
    return reprogram(blank, design, k_program)


def reprogram(chip: Chip, design: MemristiveShuffleNet, key: Array) -> tuple[Chip, dict]:
    """Write the conductances of ``design`` into ``chip``, starting from its devices' states;
    returns the chip and a programming report (pulses, convergence, energy, time)."""
    variation = chip.variation
    hw = design.hardware
    device = programming_device(hw.g_min, hw.g_max, hw.v_p, variation.switching_rate)
    targets = [
        _quantize(g, hw.g_min, hw.g_max, variation.levels) for g in memristor_conductances(design)
    ]
    flat = lambda arrays: jnp.concatenate([jnp.ravel(a) for a in arrays])  # noqa: E731
    target, factor, stuck = flat(targets), flat(chip.factors), flat(chip.stuck)
    start = jnp.where(stuck > 0, 1.0, jnp.where(stuck < 0, 0.0, flat(chip.states)))
    start = start.astype(target.dtype)
    verify_scale = factor if variation.variation_seen_by_verify else 1.0
    if variation.programming is None:
        state = jnp.where(stuck != 0, start, device.state_for_conductance(target / verify_scale))
        pulses = jnp.zeros(target.shape, jnp.int32)
        energy = time = jnp.zeros_like(target)
        converged = stuck == 0
    else:
        result = write_verify(
            device,
            variation.programming,
            target,
            start,
            key,
            verify_scale,
            frozen=stuck != 0,
            substeps=1 if device.window_p == 0 else 4,  # without a window the rate is constant
        )
        state, pulses, energy, time = result.state, result.pulses, result.energy, result.time
        converged = result.converged
    conductance = device.conductance(state).astype(target.dtype) * factor
    sizes = [a.size for a in targets]
    split = lambda v: [  # noqa: E731
        part.reshape(a.shape)
        for part, a in zip(jnp.split(v, _offsets(sizes)), targets, strict=True)
    ]
    chip = Chip(
        design,
        chip.factors,
        chip.stuck,
        split(state),
        split(conductance),
        chip.opamp_errors,
        variation,
    )
    report = {
        "devices": target.size,
        "pulses_total": jnp.sum(pulses),
        "pulses_mean": jnp.mean(pulses),
        "pulses_max": jnp.max(pulses),
        "converged_fraction": jnp.mean(converged),
        "energy_J": jnp.sum(energy),
        "serial_time_s": jnp.sum(time),
        "longest_device_time_s": jnp.max(time),
        "relative_error_rms": jnp.sqrt(jnp.mean(((conductance - target) / target) ** 2)),
    }
    return chip, report


def _offsets(sizes):
    total, offsets = 0, []
    for size in sizes[:-1]:
        total += size
        offsets.append(total)
    return offsets


def _quantize(g, g_min, g_max, levels):
    if not levels:
        return g
    step = (g_max - g_min) / (levels - 1)
    return jnp.clip(g_min + jnp.round((g - g_min) / step) * step, g_min, g_max)
