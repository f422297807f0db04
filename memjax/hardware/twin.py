"""The software twin of a converted network: the Flax model with the circuit's nonlinearities.

A converted network computes the software model's linear algebra (crossbars, MBN, average
pool: linear up to the op-amps' finite gain and the conductance levels) but its own
nonlinear stages: the ReLU with its limiter, the linear stages' clamp and the input unit's
max pool, each at its steady state. :func:`circuit_activations` gives those stages' steady-state
curves in network units as :class:`~memjax.network.shufflenet.Activations`, so that the Flax
model can be trained through them (circuit-aware training, ``memjax train --circuit``): the
weights it learns then suit the circuit they will be converted onto, e.g. the plain-diode ReLU
whose forward drop removes every activation below ~0.4 V.

How exact the twin is:
- ReLU and clamp: the blocks' exact steady-state solutions (``steady_output``, the same
  equations as their vector fields) sampled on :data:`~memjax.hardware.transfer.TABLE_POINTS`
  points, as :func:`~memjax.hardware.memristive.convert` tabulates them for the steady state.
- Super-diode max pool: its tabulated curve against the largest input, as the converted
  network's steady state with ``dc_transfer="table"``.
- Plain diode-OR max pool: :func:`diode_or_output`, the node's KCL solved in closed form with the
  diodes' series resistance left out (measured against the exact node solve in
  tests/test_twin.py).
- Everything linear is the software model's: the op-amps' finite gain, the conductance levels
  and the MBN's quantised bias pairs are not in the twin. Fine-tuning the converted chip's
  conductances (``memjax finetune``) trains through all of them afterwards.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from memjax import convolution as conv
from memjax.circuits.diodes import DiodeMaxPool
from memjax.devices.diode import wright_omega
from memjax.errors import MemjaxError
from memjax.hardware.config import HardwareConfig
from memjax.hardware.memristive import _max_pool_table, nonlinear_blocks, transfer_table
from memjax.network.config import ShuffleNetConfig
from memjax.network.shufflenet import Activations, ConvBN, ShuffleNetV2


def diode_or_output(pool: DiodeMaxPool, windows: jax.Array) -> jax.Array:
    """Steady-state output (V) of the plain diode-OR max pool for inputs ``windows`` (V) of
    shape (..., N), in closed form, the diodes' series resistance taken as zero.

    KCL at the node o with load R_L: I_s sum_i (exp((v_i - o) / a) - 1) = o / R_L, a = n V_T.
    With q = o / R_L + N I_s and S = sum_i exp(v_i / a) this is q exp(q R_L / a) =
    I_s S exp(N I_s R_L / a), so q R_L / a = W(z), z = (R_L I_s / a) S exp(N I_s R_L / a): the
    Lambert function, evaluated as the Wright omega of ln z (a log-sum-exp of the inputs), which
    neither overflows nor loses the small inputs. The series resistance (0.568 ohm for the
    1N4148) would add its drop, under 0.1 mV at the 100 uA a 10 kohm load draws at 1 V.
    """
    diode = pool.diode
    a, i_s, r_l = diode.n_vt, diode.saturation_current, pool.load_resistance
    count = windows.shape[-1]
    log_z = (
        jnp.log(r_l * i_s / a)
        + jax.scipy.special.logsumexp(windows / a, axis=-1)
        + count * i_s * r_l / a
    )
    return a * wright_omega(log_z) - count * i_s * r_l


def circuit_activations(
    hardware: HardwareConfig, model: ShuffleNetConfig, blend: float = 1.0
) -> Activations:
    """The steady-state nonlinearities of a network converted under ``hardware``, in the network
    units of ``model`` (V_p / activation_limit volts per unit), as the Flax model's activations.

    ``blend`` in [0, 1] phases them in: each curve reads its input shifted up by
    (1 - blend) times its offset (:func:`curve_offsets`), so at 0 every diode's knee sits at
    0 V, where the software ReLU's is, and at 1 the curves are the circuit's. The diodes'
    shape (soft knee, gain, limiter) is there at every blend; what phases in is their forward
    drop, which the weights and biases learn to follow. (Blending the outputs instead,
    (1 - b) software + b circuit, was tried on 2026-12-05 for the plain-diode preset: PublicTest
    62.4 / 61.1 / 54.9 % at b = 1/4, 1/2, 3/4, then 24.9 % at b = 1: the software share carried
    the signal past the dead zone, so nothing had learned to live without it. Phasing the drop
    in over 5 epochs of 10 from the shipped model, the same day: 55.1 / 56.9 / 54.4 / 52.2 % at
    1/6 to 4/6 of it, then 25.0 %, the majority class, at 5/6: not yet a recipe either.)
    """
    if model.activation_limit is None:
        raise MemjaxError(
            "circuit_activations: the model has no activation_limit, so network units have no "
            "voltage (the limiter at V_p needs a clamped ReLU)"
        )
    if not 0.0 <= blend <= 1.0:
        raise MemjaxError(f"circuit_activations: blend {blend} must lie in [0, 1]")
    scale = hardware.v_p / model.activation_limit
    curves = _curves(hardware, model)  # the tables, built once
    offsets = _offsets(curves, hardware) if blend < 1.0 else {"relu": 0.0, "max_pool": 0.0}
    relu_shift = (1.0 - blend) * offsets["relu"]
    pool_shift = (1.0 - blend) * offsets["max_pool"]
    relu_curve, clamp_curve, pool_curve = curves
    return Activations(
        relu=lambda y: relu_curve(y * scale + relu_shift) / scale,
        linear=(lambda y: clamp_curve(y * scale) / scale)
        if clamp_curve is not None
        else (lambda y: y),
        max_pool=lambda x: pool_curve(x * scale + pool_shift, pool_shift) / scale,
    )


def curve_offsets(
    hardware: HardwareConfig, model: ShuffleNetConfig, at: float = 0.5
) -> dict[str, float]:
    """The forward drop of the ReLU and of the max pool, V: input minus output where the
    output first reaches ``at`` V_p (for the max pool, one input alone, the others at 0 V).
    At V_p / 2 about 0.5 V for plain diodes and the diode-OR, ~0 for super diodes."""
    return _offsets(_curves(hardware, model), hardware, at)


def knee_inputs(
    hardware: HardwareConfig, model: ShuffleNetConfig, knee: float = 0.02
) -> dict[str, float]:
    """The input (V) at which the ReLU's and the max pool's outputs first reach ``knee`` V_p:
    where the diodes' exponential knee ends and a signal starts to pass. Plain diodes
    (1N4148, 10 kohm load, measured 2026-12-05): 0.32 V for both at 2 %, 0.40 V at 5 %."""
    reached = _first_reaching(_curves(hardware, model), hardware, knee, "knee_inputs: knee")
    return {name: float(v_in) for name, (v_in, _) in reached.items()}


def _offsets(curves, hardware: HardwareConfig, at: float = 0.5) -> dict[str, float]:
    reached = _first_reaching(curves, hardware, at, "curve_offsets: at")
    return {name: float(v_in - v_out) for name, (v_in, v_out) in reached.items()}


def _first_reaching(curves, hardware: HardwareConfig, share: float, what: str) -> dict:
    """For the ReLU and the max pool (one input alone, the others at 0 V): (input, output), V,
    at the first of 20,001 inputs from 0 V to the rail whose output reaches ``share`` V_p."""
    if not 0.0 < share < 1.0:
        raise MemjaxError(f"{what} {share} must lie in (0, 1) (a share of V_p)")
    relu_curve, _, pool_curve = curves
    v = jnp.linspace(0.0, hardware.opamp.rail_high, 20_001)
    alone = jnp.zeros((1, 3, 3, v.shape[0])).at[0, 1, 1, :].set(v)  # one window per channel
    level = share * hardware.v_p
    reached = {}
    for name, out in (("relu", relu_curve(v)), ("max_pool", pool_curve(alone, 0.0)[0, 0, 0])):
        if not bool(jnp.any(out >= level)):
            raise MemjaxError(f"{what} {share}: the {name} output never reaches {level} V")
        index = int(jnp.argmax(out >= level))
        reached[name] = (v[index], out[index])
    return reached


def recentre(
    model: ShuffleNetV2,
    hardware: HardwareConfig,
    calibration_images: np.ndarray,
    knee: float = 0.02,
    batch_size: int = 256,
) -> ShuffleNetV2:
    """Move a software model's biases onto the knees of ``hardware``'s diodes, in place.

    Every ReLU stage's batch-norm bias rises by the ReLU's knee input (:func:`knee_inputs`,
    in network units), the input unit's also by the max pool's, so that a signal the software
    ReLU would pass clears the diodes' forward drop instead of dying in it; then every batch
    norm's statistics are re-estimated through the circuit's curves (the twin in training
    mode, each of the ``calibration_images`` batches weighted alike), which absorbs the
    small outputs the soft knees leave below it. This is a conversion step a designer can
    make on the chip (the MBN's bias is programmable), and the starting point of
    circuit-aware fine-tuning through the exact curves (``memjax train --circuit P
    --recentre``): on 768 PublicTest images the shipped model scores 18.9 % through the
    plain-diode curves as it is and 56.8 % recentred, before any training (2026-12-05).
    """
    if model.config.bn_mode != "separate":
        raise MemjaxError("recentre: the model's batch norm is folded; it needs separate BN")
    knees = knee_inputs(hardware, model.config, knee)
    scale = hardware.v_p / model.config.activation_limit
    for _, layer in nnx.iter_modules(model):
        if isinstance(layer, ConvBN) and layer.activation == "relu":
            rise = knees["relu"] + (knees["max_pool"] if layer.kind == "stem" else 0.0)
            layer.bn.bias[...] = layer.bn.bias[...] + rise / scale
    activations = circuit_activations(hardware, model.config)
    norms = [layer for _, layer in nnx.iter_modules(model) if isinstance(layer, nnx.BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:  # each batch's statistics replace the running ones: collected below
        norm.momentum = 0.0

    @nnx.jit
    def batch_statistics(model, images):
        model(images, jax.random.key(0), activations)  # training mode: sets the statistics
        traced = [m for _, m in nnx.iter_modules(model) if isinstance(m, nnx.BatchNorm)]
        return [(norm.mean[...], norm.var[...]) for norm in traced]

    model.train()
    sums, count = None, 0
    for start in range(0, len(calibration_images), batch_size):
        stats = batch_statistics(model, calibration_images[start : start + batch_size])
        sums = stats if sums is None else jax.tree.map(jnp.add, sums, stats)
        count += 1
    for norm, momentum, (mean, var) in zip(norms, momenta, sums, strict=True):
        norm.mean[...], norm.var[...] = mean / count, var / count  # each batch weighted alike
        norm.momentum = momentum
    model.eval()
    return model


def _curves(hardware: HardwareConfig, model: ShuffleNetConfig):
    """(ReLU curve, clamp curve or None, max pool (volts, padding)) in volts."""
    if hardware.row_drive != "ideal":
        raise MemjaxError(
            "circuit twin: its curves are each node kind's for R_L alone; "
            f"row_drive={hardware.row_drive!r} gives every node its own rows (use "
            "row_drive='ideal' for the twin, or fine-tune the chip itself)"
        )
    relu, clamp, pool = nonlinear_blocks(hardware)
    relu_curve = transfer_table(relu, hardware)
    clamp_curve = transfer_table(clamp, hardware) if model.clamp_linear else None
    tabled = hardware.replace(dc_transfer="table")
    largest_curve = _max_pool_table(pool, tabled) if pool.super_diode else None

    def pooled(volts, floor):
        """Pooled windows, the border padded at ``floor`` (0 V, the ReLU's floor, as convert
        pads; the shifted floor while a drop phases in)."""
        taps = [w for _, _, w in conv._taps(volts, 2, floor)]
        if largest_curve is not None:  # the largest of each window
            return largest_curve(functools.reduce(jnp.maximum, taps))
        return diode_or_output(pool, jnp.stack(taps, axis=-1))

    return relu_curve, clamp_curve, pooled
