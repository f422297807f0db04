"""Chips: write-verify programming on the device equation, variation, faults, read noise, and
hardware-in-the-loop fine-tuning that resumes exactly."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.devices.programming import WriteVerify, programming_device, write_verify
from memjax.errors import MemjaxError
from memjax.hardware.chip import ChipVariation, fabricate, memristor_conductances
from memjax.hardware.config import near_ideal
from memjax.hardware.memristive import convert
from memjax.network import ShuffleNetConfig, build_model

G_MIN, G_MAX = 1e-6, 1e-4
TINY = ShuffleNetConfig(width=0.5, stage_repeats=(1, 1, 1))
SHARED_VARIATION = ChipVariation(
    variation=0.1, stuck_on_rate=0.005, stuck_off_rate=0.005, opamp_offset=1e-3
)
"""What ``memjax finetune --variation 0.1 --stuck-at 0.01 --opamp-offset 1`` draws: the
fine-tuning tests share one compiled step (a chip's variation is static under jit)."""


def test_write_verify_pulse_counts_and_energy_follow_the_device_equation():
    """Without noise, VTEAM without a window moves x by k (A/V_th - 1)^3 w per pulse (its rate
    does not depend on x), so the loop must stop at the first pulse count whose conductance is
    within the tolerance, counted here in closed form, with the energy of those pulses and
    reads summed the same way (float64: 1e-9 relative)."""
    device = programming_device(G_MIN, G_MAX, 1.0)
    config = WriteVerify(cycle_to_cycle=0.0, read_noise=0.0)
    targets = np.random.default_rng(0).uniform(G_MIN, G_MAX, 300)
    with jax.enable_x64(True):
        result = write_verify(
            device, config, jnp.asarray(targets), jnp.zeros(300), jax.random.key(0)
        )
        result = jax.tree.map(np.asarray, result)
    step = 1e8 * (config.pulse_amplitude - 1.0) ** 3 * config.pulse_width
    conductance = lambda x: G_MAX * np.exp(np.log(G_MIN / G_MAX) * (1 - x))  # noqa: E731
    tolerance = config.tolerance * (G_MAX - G_MIN)
    for target, pulses, energy in zip(targets, result.pulses, result.energy, strict=True):
        n = 0
        while abs(conductance(min(n * step, 1.0)) - target) > tolerance:
            n += 1
        assert int(pulses) == n
        visited = conductance(np.minimum(np.arange(n + 1) * step, 1.0))
        expected = np.sum(config.read_voltage**2 * visited * config.read_time)
        expected += np.sum(config.pulse_amplitude**2 * visited[:n] * config.pulse_width)
        assert energy == pytest.approx(expected, rel=1e-9, abs=0)  # pJ: no 1e-12 default
    assert np.all(result.converged)
    np.testing.assert_allclose(
        result.time, result.pulses * (config.pulse_width + config.read_time) + config.read_time
    )


def test_stuck_devices_do_not_move_and_exhaust_their_pulses():
    device = programming_device(G_MIN, G_MAX, 1.0)
    config = WriteVerify(max_pulses=50, read_noise=0.0)
    near = float(device.state_for_conductance(4.5e-5))  # a few pulses from the target
    result = write_verify(
        device,
        config,
        jnp.full(4, 5e-5),
        jnp.asarray([0.0, 1.0, near, near]),
        jax.random.key(1),
        frozen=jnp.asarray([True, True, False, False]),
    )
    np.testing.assert_array_equal(result.state[:2], [0.0, 1.0])
    np.testing.assert_array_equal(result.pulses[:2], [50, 50])
    assert not bool(jnp.any(result.converged[:2])) and bool(jnp.all(result.converged[2:]))


def test_stuck_devices_pulses_are_drawn_as_the_loop_counts_them():
    """Stuck devices are not looped but drawn: with read noise each verify read of a stuck
    device is within tolerance with a fixed probability p (normal CDF, from scipy here), so
    the loop's pulse count is geometric capped at max_pulses, mean (1-p)(1-(1-p)^M)/p. Both
    the loop run on stuck devices and the draw match that mean within 4 standard errors
    (20,000 devices), a device far from its target takes every pulse, and each device's
    energy is (pulses + 1) reads and pulses pulses at its fixed conductance (1e-6)."""
    from scipy.stats import norm

    from memjax.devices.programming import _pulse_verify_loop

    device = programming_device(G_MIN, G_MAX, 1.0)
    config = WriteVerify(max_pulses=40, read_noise=0.02)
    n, g = 20_000, 5e-5
    band = config.tolerance * (G_MAX - G_MIN)
    target = jnp.full(n, g + 1.5 * band).at[:100].set(G_MAX)  # 100 far from their target
    state = jnp.full(n, device.state_for_conductance(g))
    frozen = jnp.ones(n, bool)
    drawn = write_verify(device, config, target, state, jax.random.key(2), frozen=frozen)
    carry = (0, state, jnp.zeros(n, jnp.int32), frozen, jnp.zeros(n, state.dtype))
    looped = _pulse_verify_loop(device, config, jax.random.key(3), 4, target, 1.0, frozen, carry)
    g_read = float(device.conductance(state[0]))
    p = norm.cdf(2.5 * band / (0.02 * g_read)) - norm.cdf(0.5 * band / (0.02 * g_read))
    m = config.max_pulses
    mean = (1 - p) * (1 - (1 - p) ** m) / p
    second = sum(k * k * p * (1 - p) ** k for k in range(m)) + m * m * (1 - p) ** m
    error = np.sqrt((second - mean**2) / (n - 100))
    assert 0.05 < p < 0.5
    for pulses, energy in ((drawn.pulses, drawn.energy), (looped[2], looped[4])):
        pulses, energy = np.asarray(pulses), np.asarray(energy)
        np.testing.assert_array_equal(pulses[:100], m)
        assert abs(np.mean(pulses[100:]) - mean) < 4 * error
        read = config.read_voltage**2 * g_read * config.read_time
        pulse = config.pulse_amplitude**2 * g_read * config.pulse_width
        np.testing.assert_allclose(energy, (pulses + 1) * read + pulses * pulse, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(drawn.state), np.asarray(state))


def test_compact_re_programming_equals_the_full_loop_without_noise():
    """Re-programming where 1 % of the devices moved, and programming from OFF: the loop on
    the gathered devices gives exactly the full loop's states, pulses and energies (no noise:
    the same equations); with noise, most devices end within tolerance."""
    device = programming_device(G_MIN, G_MAX, 1.0)
    rng = np.random.default_rng(4)
    targets = jnp.asarray(rng.uniform(G_MIN, G_MAX, 20_000))
    start = device.state_for_conductance(targets)
    moved = rng.choice(20_000, 200, replace=False)
    start = start.at[moved].set(jnp.asarray(rng.uniform(0, 1, 200), start.dtype))
    quiet = WriteVerify(cycle_to_cycle=0.0, read_noise=0.0)
    full = write_verify(device, quiet, targets, start, jax.random.key(0), compact_share=0)
    compact = write_verify(device, quiet, targets, start, jax.random.key(0))
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(compact), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(jnp.sum(full.pulses > 0)) > 150
    blank = jnp.zeros_like(start)  # from OFF: the loop compacts once the bulk has converged
    full = write_verify(device, quiet, targets, blank, jax.random.key(0), compact_share=0)
    compact = write_verify(device, quiet, targets, blank, jax.random.key(0))
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(compact), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    noisy = write_verify(device, WriteVerify(), targets, start, jax.random.key(1))
    assert float(jnp.mean(noisy.converged)) > 0.8 and int(jnp.max(noisy.pulses)) > 0


def test_chip_draws_variation_and_faults_at_the_stated_rates():
    """log(G / target) of a chip written exactly has the stated sigma (20 %, within 3 %
    relative on ~60k devices) and zero mean; stuck devices appear at their rates (within
    5 binomial standard deviations) and sit at the ends of the range times their factor."""
    design = convert(build_model(TINY), near_ideal())
    variation = ChipVariation(
        variation=0.2, stuck_on_rate=0.01, stuck_off_rate=0.03, programming=None
    )
    chip, _ = fabricate(design, variation, jax.random.key(2))
    targets = np.concatenate([np.ravel(g) for g in memristor_conductances(design)])
    got = np.concatenate([np.ravel(g) for g in chip.conductances])
    factor = np.concatenate([np.ravel(f) for f in chip.factors])
    stuck = np.concatenate([np.ravel(s) for s in chip.stuck])
    working = stuck == 0
    ratio = np.log(got[working] / targets[working])
    assert np.std(ratio) == pytest.approx(0.2, rel=0.03)
    assert abs(np.mean(ratio)) < 0.01
    n = len(stuck)
    for value, rate in ((1, 0.01), (-1, 0.03)):
        assert abs(np.mean(stuck == value) - rate) < 5 * np.sqrt(rate * (1 - rate) / n)
    np.testing.assert_allclose(got[stuck == 1], G_MAX * factor[stuck == 1], rtol=1e-5)
    np.testing.assert_allclose(got[stuck == -1], G_MIN * factor[stuck == -1], rtol=1e-5)


def test_verify_that_sees_the_variation_corrects_it():
    """With variation visible to the verify reads, every working device ends within the
    tolerance of its target (noise-free reads), whatever its factor."""
    design = convert(build_model(TINY), near_ideal())
    variation = ChipVariation(
        variation=0.3,
        variation_seen_by_verify=True,
        programming=WriteVerify(read_noise=0.0, cycle_to_cycle=0.0),
    )
    chip, report = fabricate(design, variation, jax.random.key(3))
    targets = np.concatenate([np.ravel(g) for g in memristor_conductances(design)])
    got = np.concatenate([np.ravel(g) for g in chip.conductances])
    factor = np.concatenate([np.ravel(f) for f in chip.factors])
    reachable = (targets / factor >= G_MIN) & (targets / factor <= G_MAX)
    assert np.mean(reachable) > 0.5
    assert np.max(np.abs(got - targets)[reachable]) <= 0.01 * (G_MAX - G_MIN) * 1.0001
    assert float(report["converged_fraction"]) >= np.mean(reachable) - 1e-6


def test_read_noise_is_drawn_per_key():
    design = convert(build_model(TINY), near_ideal())
    variation = ChipVariation(read_noise=0.05, programming=None)
    chip, _ = eqx.filter_jit(fabricate)(design, variation, jax.random.key(4))
    first = memristor_conductances(chip.network(jax.random.key(0)))
    again = memristor_conductances(chip.network(jax.random.key(0)))
    other = memristor_conductances(chip.network(jax.random.key(1)))
    quiet = chip.conductances
    ratio = np.concatenate([np.ravel(a / q) for a, q in zip(first, quiet, strict=True)])
    assert np.std(ratio - 1) == pytest.approx(0.05, rel=0.03)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])
    with pytest.raises(MemjaxError, match="read_noise"):  # no noiseless inference
        chip.network()


@pytest.mark.slow
def test_read_noise_is_drawn_per_inference():
    """Every image is one inference with its own draw: the same image twice in a batch gives
    two logits, each equal to the network of its own key (:func:`image_keys`) alone; an
    image's draw does not depend on the batch it is in; the accuracy needs a key and is the
    same for the same key. Without read noise the batch is one network, as before."""
    from memjax.hardware.chip import image_keys, inference_logits
    from memjax.training.finetune import chip_accuracy

    design = convert(build_model(TINY), near_ideal())
    variation = ChipVariation(read_noise=0.05, programming=None)
    chip, _ = eqx.filter_jit(fabricate)(design, variation, jax.random.key(4))
    image = np.random.default_rng(0).integers(0, 256, (1, 48, 48), np.uint8)
    twice = np.concatenate([image, image, image[:, ::-1]])
    key = jax.random.key(7)
    batched = eqx.filter_jit(inference_logits)
    logits = np.asarray(batched(chip, twice, key))
    assert np.max(np.abs(logits[0] - logits[1])) > 1e-3  # two inferences, two draws
    one = eqx.filter_jit(lambda chip, k, x: chip.network(k).steady_logits(x))
    for i, k in enumerate(image_keys(key, 3)):
        alone = np.asarray(one(chip, k, twice[i : i + 1]))[0]
        np.testing.assert_allclose(logits[i], alone, rtol=1e-5, atol=1e-6)
    padded = np.asarray(batched(chip, np.concatenate([twice, twice]), key))
    np.testing.assert_allclose(padded[:3], logits, rtol=1e-5, atol=1e-6)
    labels = np.zeros(3, np.int64)
    with pytest.raises(MemjaxError, match="read_noise"):
        chip_accuracy(chip, twice, labels)
    assert chip_accuracy(chip, twice, labels, key=key) == chip_accuracy(
        chip, twice, labels, key=key
    )
    quiet, _ = eqx.filter_jit(fabricate)(design, ChipVariation(programming=None), jax.random.key(4))
    np.testing.assert_array_equal(
        batched(quiet, twice),
        eqx.filter_jit(lambda n, x: n.steady_logits(x))(quiet.network(), twice),
    )


def test_fine_tuning_gradient_is_that_of_the_programming_model():
    """The fine-tuning forward pass reads the chip's own conductances (exactly), and their
    derivative in the normalised target u is the straight-through one of the model of
    programming, G = (g_min + span u) * factor for working devices and constant for stuck
    ones: equal to autodiff through ``modelled + stop_gradient(now - modelled)`` to float32
    rounding (rtol 1e-6), and exactly 0 on stuck devices."""
    from memjax.training.finetune import _programmed

    rng = np.random.default_rng(0)
    u = jnp.asarray(rng.uniform(0, 1, (64, 9)), jnp.float32)
    now = jnp.asarray(rng.uniform(G_MIN, G_MAX, u.shape), jnp.float32)
    factor = jnp.asarray(rng.lognormal(0, 0.1, u.shape), jnp.float32)
    stuck = jnp.asarray(rng.choice([-1, 0, 0, 0, 1], u.shape), jnp.int8)
    weights = jnp.asarray(rng.normal(size=u.shape), jnp.float32)
    span = G_MAX - G_MIN

    def by_autodiff(u):
        modelled = (G_MIN + span * u) * factor * (stuck == 0)
        return jnp.sum(weights * (modelled + jax.lax.stop_gradient(now - modelled)) ** 2)

    ours = lambda u: jnp.sum(weights * _programmed(u, now, factor, stuck, span) ** 2)  # noqa: E731
    np.testing.assert_array_equal(np.asarray(_programmed(u, now, factor, stuck, span)), now)
    got, expected = jax.grad(ours)(u), jax.grad(by_autodiff)(u)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * float(jnp.max(expected)))
    assert np.all(np.asarray(got)[np.asarray(stuck) != 0] == 0)
    assert np.all(np.asarray(got)[np.asarray(stuck) == 0] != 0)


def test_chip_variation_rejects_non_physical_values():
    with pytest.raises(MemjaxError, match="variation"):
        ChipVariation(variation=-0.1)
    with pytest.raises(MemjaxError, match="stuck_on_rate"):
        ChipVariation(stuck_on_rate=0.7, stuck_off_rate=0.5)
    with pytest.raises(MemjaxError, match="tolerance"):
        WriteVerify(tolerance=0.0)


@pytest.mark.slow
@pytest.mark.xdist_group("finetune_step")
@pytest.mark.parametrize("mode", ["chip", "noise"])
def test_finetune_resumes_exactly(tmp_path, mode):
    """2 steps, stop, resume, 2 more == 4 steps straight, bit for bit: targets, optimizer
    state and the chip's device states, conductances and op-amps (programming noise and, in
    noise mode, the fresh chip of every step included)."""
    from memjax.training.finetune import FinetuneConfig, finetune

    design = convert(build_model(TINY), near_ideal())
    chip, _ = eqx.filter_jit(fabricate)(design, SHARED_VARIATION, jax.random.key(5))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (48, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 7, 48)
    config = FinetuneConfig(
        steps=4, batch_size=8, learning_rate=2e-3, checkpoint_every=2, mode=mode
    )
    straight = finetune(chip, images, labels, tmp_path / "a", config, progress=False)
    finetune(chip, images, labels, tmp_path / "b", config, progress=False, stop_after=2)
    resumed = finetune(chip, images, labels, tmp_path / "b", config, progress=False, resume=True)
    pick = lambda s: (s["targets"], s["opt_state"], s["chip"].states, s["chip"].conductances)  # noqa: E731
    pick_all = lambda s: (pick(s), s["chip"].factors, s["chip"].opamp_errors)  # noqa: E731
    a, b = jax.tree.leaves(pick_all(straight)), jax.tree.leaves(pick_all(resumed))
    assert len(a) == len(b) > 100
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    start = [np.asarray(g) for g in memristor_conductances(design)]
    trained = [np.asarray(g) for g in memristor_conductances(straight["chip"].design)]
    assert max(np.max(np.abs(t - s)) for t, s in zip(trained, start, strict=True)) > 1e-8
    moved = not np.array_equal(straight["chip"].factors[0], chip.factors[0])
    assert moved == (mode == "noise")  # noise mode: never the chip it will be deployed on
    log = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [int(line.split('"step": ')[1].split(",")[0]) for line in log] == [1, 2, 3, 4]
    with pytest.raises(MemjaxError, match="already holds a run"):
        finetune(chip, images, labels, tmp_path / "a", config, progress=False)


@pytest.mark.xdist_group("finetune_step")
def test_finetune_command_writes_its_json(tiny_data, tmp_path):
    """``memjax finetune`` end to end on a small model and data set: the JSON holds what
    scripts read, accuracies are fractions, the chip was programmed, and the run resumes."""
    import json

    from memjax.cli import main
    from memjax.data import save_npz
    from memjax.training.checkpoint import save_model
    from memjax.training.steps import split_model

    _, _, params, stats = split_model(build_model(TINY))
    save_model(tmp_path / "model", TINY, params, stats, {})
    data = save_npz(tiny_data, tmp_path / "tiny.npz")
    common = ["finetune", "--data", str(data), "--checkpoint", str(tmp_path / "model")]
    # the chip and schedule of test_finetune_resumes_exactly[chip]: its compiled step serves
    common += ["--variation", "0.1", "--stuck-at", "0.01", "--opamp-offset", "1"]
    common += ["--steps", "4", "--batch-size", "8", "--lr", "2e-3"]
    common += ["--eval-images", "0", "--run-dir", str(tmp_path / "run"), "--no-progress"]
    assert main([*common, "--stop-after", "2", "--json", str(tmp_path / "a.json")]) == 0
    assert main([*common, "--resume", "--json", str(tmp_path / "b.json")]) == 0
    result = json.loads((tmp_path / "b.json").read_text())
    for name in ("software_accuracy", "accuracy_before", "accuracy_after"):
        assert 0.0 <= result[name] <= 1.0
    assert result["variation"] == 0.1 and result["stuck_at_rate"] == pytest.approx(0.01)
    assert result["steps"] == 4 and result["evaluated_on"]["images"] == 32
    assert result["programming"]["pulses_total"] > 0
    assert json.loads((tmp_path / "a.json").read_text())["steps"] == 2


def test_wire_resistance_as_effective_conductances_matches_the_resistive_line():
    """A kernel with resistive bit lines (its own tridiagonal KCL in the vector field), solved
    at DC by the block's steady-state solver, equals the closed-form read-out of an ideal-wire
    kernel with the effective conductances, to 1e-9 V (float64), and differs from the
    kernel without wires by more than 1 mV (the IR drop is real at 50 ohm per cell)."""
    from memjax.circuits import PairKernel
    from memjax.circuits.crossbar import pair_kernel_dc, wire_effective_conductances
    from memjax.circuits.mapping import KernelConductances
    from memjax.circuits.simulate import steady_outputs

    hw = near_ideal()
    rng = np.random.default_rng(6)
    with jax.enable_x64(True):
        weights = rng.normal(0, 0.3, (1, 40))
        c = hw.mapping.to_conductances(jnp.asarray(weights), jnp.asarray([0.1]))
        c = KernelConductances(c.positive[0], c.negative[0], c.transimpedance[0], c.bias_voltage)
        inputs = jnp.asarray(rng.uniform(0, 1, 40))
        wired = PairKernel(c, hw.opamp, difference_gain=hw.difference_gain, wire_resistance=50.0)
        reference = float(steady_outputs(wired, inputs)[0])
        ideal = PairKernel(c, hw.opamp, difference_gain=hw.difference_gain)
        effective = KernelConductances(
            wire_effective_conductances(c.positive, ideal.g_f, 50.0),
            wire_effective_conductances(c.negative, ideal.g_f, 50.0),
            c.transimpedance,
            c.bias_voltage,
        )
        rows = jnp.append(inputs, c.bias_voltage)
        reduced = PairKernel(effective, hw.opamp, difference_gain=hw.difference_gain)
        ours = float(
            pair_kernel_dc(
                reduced, jnp.sum(effective.positive * rows), jnp.sum(effective.negative * rows)
            )
        )
        no_wires = float(steady_outputs(ideal, inputs)[0])
    assert ours == pytest.approx(reference, abs=1e-9)
    assert abs(no_wires - reference) > 1e-3


def test_chip_with_wires_reads_every_crossbar_line_through_its_wires():
    from memjax.circuits.crossbar import wire_effective_conductances

    design = convert(build_model(TINY), near_ideal())
    plain, _ = fabricate(design, ChipVariation(programming=None), jax.random.key(8))
    wired, _ = fabricate(
        design, ChipVariation(programming=None, wire_resistance=5.0), jax.random.key(8)
    )
    for before, after in zip(
        (plain.network().input_stage, plain.network().fully_connected),
        (wired.network().input_stage, wired.network().fully_connected),
        strict=True,
    ):
        expected = wire_effective_conductances(
            before.kernel.conductances.positive, before.kernel.g_f, 5.0
        )
        np.testing.assert_allclose(after.kernel.conductances.positive, expected, rtol=1e-6)
        assert not np.allclose(
            after.kernel.conductances.positive, before.kernel.conductances.positive
        )
    mbn = lambda n: n.network().units[0][0].mbn.input_conductances  # noqa: E731
    np.testing.assert_array_equal(mbn(plain), mbn(wired))


def _kernel_circuit_by_hand(stage, errors, v_rows):
    """One (M+1)x2 kernel and its MBN, each op-amp with its own offset (in series with v+) and
    A0, node equations solved per op-amp: y = A (V_os - n), n the KCL node of its inputs and
    feedback. Line: y = (V_os T - S) / (T / A + g_f); difference stage (inputs R_d, feedback
    g R_d, v+ = g y_b / (1 + g)): y = (g (y_b - y_a) + (1 + g) V_os) / ((1 + g) / A + 1)."""
    c = stage.kernel.conductances
    g = stage.kernel.difference_gain
    offset, gain = np.asarray(errors.offset), np.asarray(errors.open_loop_gain)
    out = []
    for k in range(offset.shape[0]):
        g_f = float(np.asarray(stage.kernel.g_f)[k])
        lines = []
        for column, cells in enumerate((c.positive[k], c.negative[k])):
            s, t = float(np.sum(np.asarray(cells) * v_rows)), float(np.sum(cells)) + g_f
            a = gain[k, column]
            lines.append((offset[k, column] * t - s) / (t / a + g_f))
        y_a, y_b = lines
        y = (g * (y_b - y_a) + (1 + g) * offset[k, 2]) / ((1 + g) / gain[k, 2] + 1)
        g_mbn = np.asarray(stage.mbn.input_conductances[k])
        f = float(np.asarray(stage.mbn.feedback_conductance)[k])
        s = g_mbn[0] * y + (g_mbn[1] - g_mbn[2]) * stage.mbn.bias_voltage
        t = float(np.sum(g_mbn)) + f
        out.append((offset[k, 3] * t - s) / (t / gain[k, 3] + f))
    return np.asarray(out)


def test_opamp_offsets_and_gains_match_each_op_amp_solved_by_hand():
    """A 1x1 stage (with MBN) of a chip whose op-amps have their own offsets (sigma 5 mV) and
    low, spread gains (A0 50..500, so that the gain error is visible): both read-outs (two
    bit-line sums, and one convolution) equal the node equations solved op-amp by op-amp, to 1e-9 V
    (float64), and differ from the design's by more than 1 mV."""
    import dataclasses

    from memjax.circuits.amplifiers import summing_amplifier_dc
    from memjax.devices.opamp import OpAmpErrors

    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        design = convert(build_model(TINY), near_ideal())
        stage = dataclasses.replace(design.units[0][1], relu=None, clamp=None, transfer=None)
        k, m = stage.kernel.conductances.positive.shape
        errors = OpAmpErrors(
            jnp.asarray(rng.normal(0, 5e-3, (k, 4))), jnp.asarray(rng.uniform(50, 500, (k, 4)))
        )
        chip_stage = dataclasses.replace(stage, opamp_errors=errors)
        v = jnp.asarray(rng.uniform(0, 0.3, (1, 1, 1, m - 1)))
        assert bool(chip_stage.lines_cannot_saturate(v))
        one_convolution = np.asarray(chip_stage.steady(v))[0, 0, 0]
        g = chip_stage.mbn.input_conductances
        drive = g[:, 0] * chip_stage._readout(v) + (g[:, 1] - g[:, 2]) * chip_stage.mbn.bias_voltage
        two_sums = np.asarray(
            summing_amplifier_dc(
                chip_stage.mbn, drive, errors.offset[:, 3], errors.open_loop_gain[:, 3]
            )
        )[0, 0, 0]
        design_output = np.asarray(stage.steady(v))[0, 0, 0]
        rows = np.append(np.asarray(v).ravel(), float(stage.kernel.conductances.bias_voltage))
        expected = _kernel_circuit_by_hand(stage, errors, rows)
    np.testing.assert_allclose(one_convolution, expected, atol=1e-9)
    np.testing.assert_allclose(two_sums, expected, atol=1e-9)
    assert np.max(np.abs(design_output - expected)) > 1e-3


def test_chip_draws_op_amp_errors_and_places_them_in_its_network():
    """Offsets normal with the stated sigma (within 5 % on ~3k op-amps), log A0 with the
    stated spread around the design's; every crossbar stage and the average pool carry their
    chip's errors, and they change the logits."""
    design = convert(build_model(TINY), near_ideal())
    variation = ChipVariation(programming=None, opamp_offset=2e-3, opamp_gain_spread=0.3)
    chip, _ = fabricate(design, variation, jax.random.key(2))
    plain, _ = fabricate(design, ChipVariation(programming=None), jax.random.key(2))
    offsets = np.concatenate([np.ravel(e.offset) for e in chip.opamp_errors])
    gains = np.concatenate([np.ravel(e.open_loop_gain) for e in chip.opamp_errors])
    assert offsets.size > 2000
    assert np.std(offsets) == pytest.approx(2e-3, rel=0.05)
    a0 = design.hardware.opamp.open_loop_gain
    assert np.std(np.log(gains / a0)) == pytest.approx(0.3, rel=0.05)
    net = chip.network()
    stages = [net.input_stage, *(s for unit in net.units for s in unit)]
    stages += [net.output_stage, net.fully_connected]
    for stage, errors in zip(stages, chip.opamp_errors[:-1], strict=True):
        np.testing.assert_array_equal(stage.opamp_errors.offset, errors.offset)
        np.testing.assert_array_equal(stage.opamp_errors.open_loop_gain, errors.open_loop_gain)
        assert errors.offset.shape == (stage.kernel.conductances.positive.shape[0], 4)
    np.testing.assert_array_equal(net.average_pool_errors.offset, chip.opamp_errors[-1].offset)
    images = np.random.default_rng(0).integers(0, 256, (4, 48, 48))
    difference = np.abs(
        np.asarray(net.steady_logits(images) - plain.network().steady_logits(images))
    )
    assert np.max(difference) > 1e-3
    assert plain.opamp_errors is None


@pytest.mark.slow
@pytest.mark.compile_bound  # all of it compiling and tracing (docstring)
def test_fine_tuning_through_the_settled_transient_takes_the_steady_step():
    """Fine-tuning with the transient forward pass (the logits read after the input step,
    reverse mode through every neuron's implicit solve and the waveforms between stages)
    takes the step of the steady-state forward pass once the network has settled: one
    physical description, two solvers, and their gradients too. A tiny random network on the
    paper preset, two 8x8 inputs (the average pool rebuilt for a 1x1 map), 10 % variation
    written exactly, plain SGD so that the step is the gradient, read at 100 ns (the paper
    preset's whole network settles in ~13 ns). Tolerance: the steady step is float32
    (relative rounding ~1e-6 of the largest component per layer), the transient's float64
    to the solver's tolerance (atol 1e-4 V on 1.6 V outputs): 1e-3 of the largest update
    (measured at 300 ns: 3e-6). On the shipped 1.0x network the two gradients agreed to
    9e-9 relative (one 8x8 input, 300 ns). ~4 min, all of it compilation and tracing: a
    second step takes 8 s."""
    import optax

    from memjax.hardware.config import paper_plain_diode_relu
    from memjax.hardware.memristive import with_pool_inputs
    from memjax.hardware.transient import TransientOptions
    from memjax.training.finetune import FinetuneConfig, initial_state, make_step

    design = with_pool_inputs(convert(build_model(TINY), paper_plain_diode_relu()), 1)
    variation = ChipVariation(variation=0.1, programming=None)
    chip, _ = eqx.filter_jit(fabricate)(design, variation, jax.random.key(3))
    images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (2, 8, 8)), jnp.uint8)
    labels = jnp.asarray([1, 4], jnp.int32)
    optimizer = optax.sgd(1e-2)
    state = initial_state(chip, optimizer, seed=0)
    steady, steady_metrics = make_step(optimizer)(state, images, labels)
    # one chunk shape: fewer compiles; 200 steps per neuron suffice and compile ~25 % faster
    settled = TransientOptions(t_end=100e-9, chunk=64, max_steps=200)
    transient, metrics = make_step(optimizer, transient=settled)(state, images, labels)
    assert float(metrics["loss"]) == pytest.approx(float(steady_metrics["loss"]), rel=1e-5)
    before = np.concatenate([np.ravel(t) for t in state["targets"]])
    moved = [
        np.concatenate([np.ravel(t) for t in s["targets"]]) - before for s in (steady, transient)
    ]
    largest = np.max(np.abs(moved[0]))
    assert largest > 1e-4  # the step is not empty
    np.testing.assert_allclose(moved[1], moved[0], atol=1e-3 * largest)
    with pytest.raises(MemjaxError, match="forward"):
        FinetuneConfig(forward="spice")
