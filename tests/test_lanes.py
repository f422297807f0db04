"""A stage's neurons on refilled lanes (memjax.hardware.lanes) against tight per-neuron solves."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.circuits.waveform import Waveform, hermite
from memjax.hardware.config import PRESETS
from memjax.hardware.lanes import solve_on_lanes
from memjax.hardware.memristive import convert
from memjax.hardware.stages import channel_axes, plan
from memjax.hardware.transient import (
    TransientOptions,
    _chunk_outputs,
    _chunks,
    _integrator,
    _prepare,
    float64,
    traced_opamps,
)
from memjax.network import ShuffleNetConfig
from memjax.network.shufflenet import build_model


def _outputs(block, values, slopes, drive_ts, grid, states):
    """Every neuron's output on the grid from its states."""

    def one(b, vals, slps, ys):
        return jax.vmap(lambda t, y: b.observe(y, hermite(drive_ts, vals, slps, t)[0])[0][0])(
            grid, ys
        )

    return jax.vmap(one, in_axes=(channel_axes(block), 0, 0, 0))(block, values, slopes, states)


@pytest.mark.slow
@pytest.mark.parametrize("role", ["stem", "depthwise"])
def test_refilled_lanes_match_a_tight_per_neuron_solve(role):
    """384 stem neurons (kernel, MBN, tabulated plain ReLU) or 96 depthwise neurons (kernel,
    MBN, active clamp: 7 states, the clamp's node solved in every evaluation) of a random
    0.5x network, `paper_plain_diode_relu`, driven by a held step of random voltages, on a
    third as many lanes (each lane takes three neurons in turn): every neuron completes, and
    its output on the grid is within 2e-3 V of diffrax's Kvaerno3 at rtol 1e-7 (the
    per-neuron transient's bar against a tight solve, tests/test_transient.py), ending on
    the same steady state. At rtol 3e-4, atol 3e-5: Rodas4's order-3 error estimate lets it
    take longer steps than Kvaerno3 at the same tolerances, and at the transient's rtol 1e-3,
    atol 1e-4 the depthwise outputs strayed 5.8e-3 V (Kvaerno3 8e-4 V; 3e-4 / 3e-5:
    6.5e-4 V, 23 steps a neuron against 18; measured 2026-12-08)."""
    options = TransientOptions(t_end=40e-9)
    model = build_model(ShuffleNetConfig(width=0.5, stage_repeats=(1, 1, 1)), seed=4)
    with jax.enable_x64(True):
        net = traced_opamps(float64(convert(model, PRESETS["paper_plain_diode_relu"]())))
        # the input layer's convolution, or the first unit's right-branch depthwise stage
        wanted = "stem" if role == "stem" else "right_depthwise"
        stage = next(s for _, _, _, r, s in plan(net) if r == wanted)
        channels = 1 if role == "stem" else stage.crossbar.weight_shape[-1]
        grid = jnp.asarray(options.grid())
        rng = np.random.default_rng(5)
        v = jnp.asarray(rng.uniform(0.0, 0.8, (1, 4, 4, channels)))
        source = Waveform(
            jnp.asarray([0.0, grid[-1]]), jnp.stack([v, v]), jnp.zeros((2,) + v.shape)
        )
        prepared = _prepare(stage, source, jnp.zeros_like(v), grid, False)
        block, values, slopes, before, rows = prepared
        count = values.shape[0]
        states, steps_taken, failed, iterations = solve_on_lanes(
            block,
            values,
            slopes,
            before,
            rows,
            source.ts,
            grid,
            jnp.asarray([3e-4, 3e-5]),
            options.first_interval / options.time_unit / 20,
            count // 3,
            options.time_unit,
            options.max_steps,
        )
        assert not bool(jnp.any(failed)) and int(jnp.min(steps_taken)) > 0
        assert int(iterations) < int(jnp.sum(steps_taken))  # the lanes ran side by side
        lanes = np.asarray(_outputs(block, values, slopes, source.ts, grid, states))
        tight = _integrator(TransientOptions(max_steps=20000))
        chunk, mask, _ = next(_chunks(prepared, count, count))
        reference, _, bad = _chunk_outputs(
            *chunk, mask, source.ts, grid, tight, jnp.asarray([1e-7, 1e-9])
        )
        assert int(bad) == 0
        assert count == (384 if role == "stem" else 96)
        np.testing.assert_allclose(lanes, np.asarray(reference), atol=2e-3)
        # the rest settles onto the same steady state
        np.testing.assert_allclose(lanes[:, -1], np.asarray(reference)[:, -1], atol=1e-5)


def test_lane_options_take_their_own_tolerances_and_refuse_what_they_cannot_honour():
    """The lanes step Rodas4 at their own default tolerances (tighter than the diffrax
    stepping's), take a given rtol / atol as given, refuse another solver and the
    differentiable read-out by name, and ``lanes`` is refused for another stepping; stages
    are padded to chunk x 4^k neurons."""
    import diffrax

    from memjax.errors import MemjaxError
    from memjax.hardware.transient import (
        DEFAULT_TOLERANCES,
        TransientOptions,
        lane_bucket,
        read_logits,
    )

    assert (TransientOptions(stepping="lanes").rtol, TransientOptions(stepping="lanes").atol) == (
        DEFAULT_TOLERANCES["lanes"]
    )
    assert DEFAULT_TOLERANCES["lanes"][0] < DEFAULT_TOLERANCES["per_neuron"][0]
    assert TransientOptions().rtol == DEFAULT_TOLERANCES["per_neuron"][0]
    assert TransientOptions(stepping="lanes", rtol=1e-5, atol=1e-6).atol == 1e-6
    TransientOptions(stepping="lanes", lanes=64, chunk=64, memristor_envelopes=True)
    with pytest.raises(MemjaxError, match="TransientOptions.solver is for"):
        TransientOptions(stepping="lanes", solver=diffrax.Kvaerno5())
    for stepping, lanes in (("per_neuron", 64), ("lanes", 0)):
        with pytest.raises(MemjaxError, match="TransientOptions.lanes is for"):
            TransientOptions(stepping=stepping, lanes=lanes)
    with pytest.raises(MemjaxError, match="not differentiable"):
        read_logits(None, None, TransientOptions(stepping="lanes"))
    sizes = {count: lane_bucket(count, 256) for count in (1, 256, 257, 3456, 8352, 55296)}
    assert sizes == {1: 256, 256: 256, 257: 1024, 3456: 4096, 8352: 16384, 55296: 65536}
