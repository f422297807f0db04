"""The software twin (memjax.hardware.twin): the Flax model through a circuit's steady-state
nonlinearities computes what the converted circuit computes, so training it trains for the
circuit; and the training options that select it."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.errors import MemjaxError
from memjax.hardware.config import PRESETS
from memjax.hardware.memristive import compile_steady_logits, convert, nonlinear_blocks
from memjax.hardware.twin import circuit_activations, diode_or_output
from memjax.training.checkpoint import load_model
from memjax.training.loop import TrainConfig

TINY_MODEL = Path(__file__).parent / "data" / "tiny_fer_model"


def test_diode_or_closed_form_matches_the_node_solve():
    """The plain diode-OR in closed form (series resistance left out) against the pool's
    exact node solve, float64: within 1e-4 V on windows of ReLU outputs with zeros, ties and
    negative inputs (measured 2026-12-05: 2.9e-5 V in float32, where the series resistance's
    drop of up to ~0.06 mV is the difference)."""
    with jax.enable_x64(True):
        pool = nonlinear_blocks(PRESETS["paper_plain_diode_relu"]())[2]
        rng = np.random.default_rng(0)
        windows = rng.uniform(-0.2, 1.0, (400, 9))
        windows[rng.uniform(size=windows.shape) < 0.3] = 0.0
        windows[:50, 1] = windows[:50, 0]  # ties
        windows = jnp.asarray(windows)
        exact = pool.steady_output(windows)
        closed = diode_or_output(pool, windows)
        assert float(jnp.max(jnp.abs(closed - exact))) < 1e-4
        assert float(jnp.min(exact)) > 0.0  # the diode-OR's output is above ground


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["paper_plain_diode_relu", "paper"])
def test_twin_computes_the_converted_circuit(fer2013, preset):
    """The trained tiny model through the twin's nonlinearities against the converted
    network's steady state (continuous conductances: the twin has no conductance levels) on
    64 PrivateTest faces: the same prediction for every image and logits within 0.01 units
    (measured 2026-12-05: 2.0e-6 plain, 2.4e-3 paper, whose op-amps' finite gain the twin
    leaves out). The plain diodes take the logits 2.7 units from the software model's: the
    twin is not the software model in disguise."""
    model, _ = load_model(TINY_MODEL)
    images = fer2013.private_test.images[np.random.default_rng(0).choice(3589, 64, False)]
    hardware = PRESETS[preset]().replace(levels=0)
    activations = circuit_activations(hardware, model.config)
    twin = np.asarray(jax.jit(lambda x: model(x, None, activations))(images))
    chip = np.asarray(compile_steady_logits(convert(model, hardware))(images))
    software = np.asarray(jax.jit(lambda x: model(x))(images))
    assert np.all(twin.argmax(-1) == chip.argmax(-1))
    assert np.max(np.abs(twin - chip)) < 1e-2
    if preset == "paper_plain_diode_relu":
        assert np.max(np.abs(twin - software)) > 1.0


def test_blend_phases_in_the_diodes_forward_drop():
    """At blend 0 the plain diode's knee sits at 0 V (the software ReLU's), at 1 it is the
    circuit's, in between the input is shifted by the rest of the drop; the super diodes'
    curves have no drop to phase in."""
    from memjax.hardware.twin import curve_offsets

    model, _ = load_model(TINY_MODEL)
    hardware = PRESETS["paper_plain_diode_relu"]()
    scale = hardware.v_p / model.config.activation_limit
    offsets = curve_offsets(hardware, model.config)
    assert 0.4 < offsets["relu"] < 0.6 and 0.4 < offsets["max_pool"] < 0.6  # volts
    assert abs(curve_offsets(PRESETS["paper"](), model.config)["relu"]) < 1e-3
    y = jnp.linspace(-2.0, 8.0, 11)
    start, half, circuit = (circuit_activations(hardware, model.config, b) for b in (0, 0.5, 1))
    np.testing.assert_allclose(
        half.relu(y), circuit.relu(y + 0.5 * offsets["relu"] / scale), rtol=1e-5, atol=1e-6
    )
    # 4 units = 2/3 V: the phased-in curve passes about that, the circuit a fraction of it
    assert abs(float(start.relu(jnp.asarray(4.0))) - 4.0) < 0.6
    assert float(circuit.relu(jnp.asarray(4.0))) < 2.0
    # 2 units = 1/3 V: the plain diode passes 23 mV of it (0.14 units)
    assert float(circuit.relu(jnp.asarray(2.0))) < 0.2
    with pytest.raises(MemjaxError, match="blend"):
        circuit_activations(hardware, model.config, 1.5)
    direct = PRESETS["paper"]().replace(row_drive="direct", dc_transfer="exact")
    with pytest.raises(MemjaxError, match="row_drive"):  # one curve per kind cannot hold rows
        circuit_activations(direct, model.config)


def test_circuit_training_options_are_checked():
    config = TrainConfig(epochs=4, circuit="paper", circuit_phase_epochs=2)
    assert [config.circuit_share(e) for e in (1, 2, 3, 4)] == pytest.approx([1 / 3, 2 / 3, 1, 1])
    assert TrainConfig(epochs=2).circuit_share(1) == 0.0
    with pytest.raises(MemjaxError, match="circuit 'papr'"):
        TrainConfig(circuit="papr")
    with pytest.raises(MemjaxError, match="needs a circuit"):
        TrainConfig(circuit_phase_epochs=1)
    with pytest.raises(MemjaxError, match="leaves no epoch"):
        TrainConfig(epochs=2, circuit="paper", circuit_phase_epochs=2)
    with pytest.raises(MemjaxError, match="circuit_recentre needs"):
        TrainConfig(circuit="paper", circuit_recentre=True)  # nothing to start from
    with pytest.raises(MemjaxError, match="recentre_images"):
        TrainConfig(recentre_images=0)
    with pytest.raises(MemjaxError, match="compensate them twice"):
        TrainConfig(
            epochs=3, circuit="paper", init_from="x", circuit_recentre=True, circuit_phase_epochs=1
        )
    from memjax.hardware.twin import curve_offsets, knee_inputs

    model_config = load_model(TINY_MODEL)[0].config
    with pytest.raises(MemjaxError, match="knee 0.0 must lie in"):
        knee_inputs(PRESETS["paper_plain_diode_relu"](), model_config, 0.0)
    with pytest.raises(MemjaxError, match="at 1.5 must lie in"):
        curve_offsets(PRESETS["paper_plain_diode_relu"](), model_config, 1.5)


@pytest.mark.slow
def test_recentring_lets_the_shipped_model_classify_through_plain_diodes(fer2013):
    """The shipped model through the plain-diode curves: the diodes' drop removes the signal
    (majority class or worse); re-centred (biases raised by the knees, BN statistics
    re-estimated through the curves on 1,024 Training images), before any training, it
    classifies (measured 2026-12-05 on these 256 PublicTest images: 0.188 as it is, 0.566
    re-centred; on 768 with 4,096 calibration images, 0.189 and 0.568)."""
    from memjax.hardware.twin import knee_inputs, recentre
    from memjax.training import steps

    hardware = PRESETS["paper_plain_diode_relu"]()
    shipped = Path(__file__).resolve().parents[1] / "checkpoints" / "shufflenetv2-1.0x"
    public = fer2013.split("public_test")
    chosen = np.random.default_rng(0).choice(len(public), 256, replace=False)
    train = fer2013.split("train")
    calibration = train.images[np.random.default_rng(1).choice(len(train), 1024, False)]

    def accuracy(model):
        _, graph, params, stats = steps.split_model(model)
        predict = steps.make_predict(graph, circuit_activations(hardware, model.config))
        logits = steps.predict_logits(predict, params, stats, public.images[chosen], 128)
        return float(np.mean(logits.argmax(-1) == public.labels[chosen]))

    model, _ = load_model(shipped)
    before = {id(m): np.asarray(m.bn.bias[...]) for m in _relu_layers(model)}
    as_converted = accuracy(model)
    knees = knee_inputs(hardware, model.config)
    scale = hardware.v_p / model.config.activation_limit
    recentre(model, hardware, calibration)
    for layer in _relu_layers(model):
        rise = knees["relu"] + (knees["max_pool"] if layer.kind == "stem" else 0.0)
        np.testing.assert_allclose(
            np.asarray(layer.bn.bias[...]) - before[id(layer)], rise / scale, rtol=1e-5
        )
    recentred = accuracy(model)
    assert as_converted < 0.3 and recentred > 0.45


def _relu_layers(model):
    from flax import nnx

    from memjax.network.shufflenet import ConvBN

    return [
        m for _, m in nnx.iter_modules(model) if isinstance(m, ConvBN) and m.activation == "relu"
    ]
