"""The trained network as circuits: conversion and whole-network steady state."""

from pathlib import Path

import equinox as eqx
import numpy as np
import pytest

from memjax.errors import MemjaxError
from memjax.hardware.config import HardwareConfig, near_ideal, paper
from memjax.hardware.memristive import convert
from memjax.network import ShuffleNetConfig
from memjax.network.shufflenet import build_model
from memjax.training.checkpoint import load_model

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "shufflenetv2-1.0x"


def test_near_ideal_circuit_computes_the_software_logits(fer2013):
    """With ideal op-amps, super diodes and continuous conductances, the steady state of the
    whole circuit (every crossbar, MBN, ReLU/limiter, clamp, pool from its block's static
    equations) gives the software logits: measured 1.2e-5 units worst on 512 PrivateTest
    images; 1e-3 here is 0.02 % of the logits' range and far below any argmax margin
    the 32 images have (checked)."""
    model, _ = load_model(SHIPPED)
    test = fer2013.split("private_test")
    chosen = np.random.default_rng(0).choice(len(test), 32, replace=False)  # all classes
    images = test.images[chosen]
    software = np.asarray(model(images))
    circuit = np.asarray(
        eqx.filter_jit(lambda n, x: n.steady_logits(x))(convert(model, near_ideal()), images)
    )
    np.testing.assert_allclose(circuit, software, atol=1e-3)
    margin = np.sort(software, axis=-1)
    assert np.min(margin[:, -1] - margin[:, -2]) > 2e-3  # so the argmax is a real check
    assert np.all(circuit.argmax(-1) == software.argmax(-1))


def test_conversion_refuses_what_it_cannot_map():
    model = build_model(ShuffleNetConfig(width=0.5, stage_repeats=(1, 1, 1)))
    with pytest.raises(MemjaxError, match="original"):
        convert(model, paper().replace(topology="original"))
    with pytest.raises(MemjaxError, match="parasitics"):
        convert(model, paper().replace(bitline_capacitance=1e-15))
    unclamped = build_model(ShuffleNetConfig(width=0.5, activation_limit=None))
    with pytest.raises(MemjaxError, match="activation_limit"):
        convert(unclamped, paper())
    with pytest.raises(MemjaxError, match="v_p"):
        HardwareConfig(v_p=3.0)
    with pytest.raises(MemjaxError, match="g_min"):
        HardwareConfig(g_min=1e-3, g_max=1e-4)
