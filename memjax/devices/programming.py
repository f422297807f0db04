"""Write-verify programming of memristors, simulated on the device's own state equation.

The loop of F. Alibart, L. Gao, B. D. Hoskins, D. B. Strukov, "High precision tuning of state
for memristive devices by adaptable variation-tolerant algorithm", Nanotechnology 23, 075201
(2012), with fixed pulses: read the device; if its conductance is within the tolerance of the
target, stop; else apply one SET (towards ON) or RESET pulse and read again, up to a maximum
number of pulses. Each pulse moves the state by integrating ``device.state_rate`` over the
pulse width, scaled by a cycle-to-cycle factor; each verify read sees the conductance with
read noise. What remains, |G - G_target| up to the tolerance (or more where the pulses ran
out or the device is stuck), is the programming error; pulses, time and energy are counted.

Every device of an array is programmed by the same vectorised loop (one iteration per pulse
for all devices that are not done), so a whole network's ~2.5 M devices take seconds.
"""

from __future__ import annotations

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from memjax.devices.memristor import VTEAM, Memristor
from memjax.devices.validation import require_non_negative, require_positive


@dataclasses.dataclass(frozen=True)
class WriteVerify:
    """Write-verify parameters. Defaults: see :func:`programming_device` for the device they
    are chosen for (one pulse moves an exponential-I-V VTEAM cell by ~0.9 % of its
    conductance, so the default tolerance is reachable everywhere in the range).

    Attributes:
        pulse_amplitude: |V| of every SET and RESET pulse, V; above the device thresholds.
        pulse_width: duration of each pulse, s.
        read_time: duration of each verify read, s.
        tolerance: accepted |G - G_target|, as a fraction of the conductance range
            g_max - g_min.
        max_pulses: pulses allowed per device before it is left as it is.
        cycle_to_cycle: relative standard deviation of the state change of a pulse
            (lognormal factor per pulse and device).
        read_noise: relative standard deviation of a verify read of the conductance.
        read_voltage: voltage of a verify read, V (for its energy).
    """

    pulse_amplitude: float = 1.2
    pulse_width: float = 2.5e-9
    read_time: float = 10e-9
    tolerance: float = 0.01
    max_pulses: int = 1000
    cycle_to_cycle: float = 0.1
    read_noise: float = 0.005
    read_voltage: float = 0.2

    def __post_init__(self):
        owner = "WriteVerify"
        for name in ("pulse_amplitude", "pulse_width", "read_time", "tolerance", "max_pulses"):
            require_positive(owner, name, getattr(self, name))
        for name in ("cycle_to_cycle", "read_noise", "read_voltage"):
            require_non_negative(owner, name, getattr(self, name))


def programming_device(g_min: float, g_max: float, v_threshold: float, rate: float = 1e8):
    """The device the chips are programmed on: VTEAM (Kvatinsky et al., IEEE TCAS-II 2015)
    with thresholds +-``v_threshold`` (V_p: the limiter protects the weights), R_on = 1/g_max,
    R_off = 1/g_min, exponential I-V (conductance exponential in the state, as filamentary
    devices are commonly fitted), alpha 3 and |k| = ``rate`` 1/s both ways (an assumption, as
    in ``experiments/read_disturb.py``: ~10 ns to switch fully at 2 V_p)."""
    return VTEAM.with_thresholds(
        v_threshold,
        r_on=1.0 / g_max,
        r_off=1.0 / g_min,
        k_off=rate,
        k_on=-rate,
        alpha_off=3.0,
        alpha_on=3.0,
        iv="exponential",
    )


class ProgrammingResult(eqx.Module):
    """What programming left behind, per device, and what it cost.

    Attributes:
        state: final state x in [0, 1].
        conductance: final read conductance (without read noise), S.
        pulses: pulses applied.
        converged: within tolerance at the last verify read.
        energy: energy of the pulses and verify reads, J.
        time: time the device spent being programmed (pulses and reads), s.
    """

    state: Float[Array, ...]
    conductance: Float[Array, ...]
    pulses: Array
    converged: Array
    energy: Float[Array, ...]
    time: Float[Array, ...]


def write_verify(
    device: Memristor,
    config: WriteVerify,
    target: Float[Array, ...],
    start: Float[Array, ...],
    key: Array,
    scale: Float[Array, ...] | float = 1.0,
    frozen: Array | None = None,
    substeps: int = 4,
    compact_share: float = 1 / 32,
) -> ProgrammingResult:
    """Program devices of state ``start`` towards conductances ``target`` (1-d arrays).

    ``scale`` multiplies each device's conductance curve as the verify reads see it
    (device-to-device variation visible to the loop); ``frozen`` marks stuck devices whose
    state no pulse moves. A pulse integrates the device's state equation over its width
    with ``substeps`` RK4 steps (exact for VTEAM without a window, whose rate is constant).

    Once at most ``compact_share`` of the devices are still out of tolerance (at once when
    re-programming after a small update; after the bulk of the pulses when programming from
    OFF), the loop runs on those devices alone, gathered into a compact array: the same
    equations per device, its noise drawn from the same key but for a differently shaped
    array, so noisy results are another draw of the same distribution (without noise,
    identical; tested). 0 turns it off.

    A stuck device's pulses are drawn in closed form (:func:`_stuck_outcome`) rather than
    looped: the loop would pulse it until ``max_pulses`` and, with a few percent of devices
    stuck, never get below ``compact_share``, so every re-programming would take
    ``max_pulses`` iterations over the whole array.
    """
    target = jnp.asarray(target)
    frozen = jnp.zeros(target.shape, bool) if frozen is None else frozen
    scale = jnp.broadcast_to(jnp.asarray(scale, target.dtype), target.shape)
    start = jnp.asarray(start, target.dtype)
    zeros = jnp.zeros(target.shape, target.dtype)
    loop = functools.partial(_pulse_verify_loop, device, config, key, substeps)
    carry = (0, start, jnp.zeros(target.shape, jnp.int32), ~frozen, zeros)
    capacity = int(target.shape[0] * compact_share)
    carry = loop(target, scale, frozen, carry, until_at_most=capacity)
    if capacity:
        carry = _compact_loop(loop, target, scale, frozen, carry, capacity)
    _, x, pulses, _, energy = carry
    stuck_pulses, stuck_energy = _stuck_outcome(
        device, config, target, start, scale, jax.random.fold_in(key, _STUCK_STREAM)
    )
    pulses = jnp.where(frozen, stuck_pulses, pulses)
    energy = jnp.where(frozen, stuck_energy, energy)
    span = device.conductance(1.0) - device.conductance(0.0)
    conductance = device.conductance(x) * scale
    converged = jnp.abs(conductance - target) <= config.tolerance * span
    time = pulses * (config.pulse_width + config.read_time) + config.read_time
    return ProgrammingResult(x, conductance, pulses, converged, energy, time)


_STUCK_STREAM = 0x7FFFFFFF
"""The random stream of the stuck devices' draws (the loop's reads use streams 0, 1, ...)."""


def _stuck_outcome(device, config, target, state, scale, key):
    """Pulses and energy of write-verify on devices whose state no pulse moves, as the loop
    would count them: every verify read of such a device is an independent draw of
    ``G (1 + read_noise n)`` with G fixed, so the loop stops at the first read within the
    tolerance, which happens with the same probability p each time: the pulses before it
    are geometric (failures before the first success, p), capped at ``max_pulses``; reads
    are pulses + 1. Without read noise p is 0 or 1 (tested against the loop)."""
    span = device.conductance(1.0) - device.conductance(0.0)
    g = device.conductance(state) * scale
    band = config.tolerance * span
    if config.read_noise > 0:
        spread = config.read_noise * g
        cdf = lambda v: jax.scipy.stats.norm.cdf((v - g) / spread)  # noqa: E731
        p = cdf(target + band) - cdf(target - band)
    else:
        p = (jnp.abs(g - target) <= band).astype(g.dtype)
    uniform = jax.random.uniform(key, g.shape, g.dtype, minval=jnp.finfo(g.dtype).tiny)
    failures = jnp.log(uniform) / jnp.log1p(-jnp.minimum(p, 1.0 - jnp.finfo(g.dtype).eps))
    pulses = jnp.where(
        p > 0, jnp.minimum(jnp.floor(failures), config.max_pulses), config.max_pulses
    )
    pulses = jnp.where(p >= 1, 0, pulses).astype(jnp.int32)
    read = config.read_voltage**2 * g * config.read_time
    energy = (pulses + 1) * read + pulses * config.pulse_amplitude**2 * g * config.pulse_width
    return pulses, energy


def _compact_loop(loop, target, scale, frozen, carry, capacity):
    """``loop`` on the devices still active, gathered (out-of-range slots inactive)."""
    i, x, pulses, active, energy = carry
    n = target.shape[0]
    (index,) = jnp.nonzero(active, size=capacity, fill_value=n)
    take = lambda a, fill: a.at[index].get(mode="fill", fill_value=fill)  # noqa: E731
    compact = (i, take(x, 0.0), take(pulses, 0), take(active, False), take(energy, 0.0))
    compact = loop(take(target, 1.0), take(scale, 1.0), take(frozen, True), compact)
    put = lambda a, b: a.at[index].set(b, mode="drop")  # noqa: E731
    i, x_c, pulses_c, active_c, energy_c = compact
    return i, put(x, x_c), put(pulses, pulses_c), put(active, active_c), put(energy, energy_c)


def _pulse_verify_loop(
    device, config, key, substeps, target, scale, frozen, carry, until_at_most=0
):
    """Verify reads and pulses until at most ``until_at_most`` devices are still out of
    tolerance with pulses left (at least one read of every device)."""
    span = device.conductance(1.0) - device.conductance(0.0)
    amplitude, width = config.pulse_amplitude, config.pulse_width

    def read(x, k):
        noise = 1.0 + config.read_noise * jax.random.normal(k, x.shape, x.dtype)
        return device.conductance(x) * scale * noise

    def pulse(x, v):
        h = width / substeps
        for _ in range(substeps):
            k1 = device.state_rate(x, v)
            k2 = device.state_rate(jnp.clip(x + 0.5 * h * k1, 0, 1), v)
            k3 = device.state_rate(jnp.clip(x + 0.5 * h * k2, 0, 1), v)
            k4 = device.state_rate(jnp.clip(x + h * k3, 0, 1), v)
            x = jnp.clip(x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), 0.0, 1.0)
        return x

    set_voltage, reset_voltage = _pulse_polarity(device, amplitude)

    def step(carry):
        i, x, pulses, active, energy = carry
        k_read, k_c2c = jax.random.split(jax.random.fold_in(key, i))
        error = read(x, k_read) - target
        reading = active
        active = active & (jnp.abs(error) > config.tolerance * span)
        active = active & (pulses < config.max_pulses)
        v = jnp.where(error < 0, set_voltage, reset_voltage)
        moved = pulse(x, v)
        factor = jnp.exp(config.cycle_to_cycle * jax.random.normal(k_c2c, x.shape, x.dtype))
        new = jnp.clip(x + (moved - x) * factor, 0.0, 1.0)
        g = device.conductance(x) * scale
        read_energy = jnp.where(reading, config.read_voltage**2 * g * config.read_time, 0.0)
        pulse_energy = jnp.where(active, amplitude**2 * g * width, 0.0)
        x = jnp.where(active & ~frozen, new, x)
        return i + 1, x, pulses + active, active, energy + read_energy + pulse_energy

    def keep_going(carry):
        i, _, _, active, _ = carry
        return (jnp.sum(active) > until_at_most) & (i <= config.max_pulses)

    return jax.lax.while_loop(keep_going, step, carry)


def _pulse_polarity(device: Memristor, amplitude: float):
    """(SET, RESET) voltages: the signs that move the state towards ON and OFF."""
    towards_on = device.state_rate(0.5, amplitude) > 0
    return (
        jnp.where(towards_on, amplitude, -amplitude),
        jnp.where(towards_on, -amplitude, amplitude),
    )
