"""Resource counts against counts worked out by hand (ShuffleNetV2 1.0x, FER2013 48x48)."""

import pytest

from memjax.errors import MemjaxError
from memjax.hardware import CountingOptions, network_layers, network_resources
from memjax.hardware.resources import layer_resources, opamp_bias
from memjax.network.config import ShuffleNetConfig

LAYERS = network_layers(ShuffleNetConfig(width=1.0))


def _unit(prefix, options):
    total = {}
    for layer in LAYERS:
        if layer.name.startswith(prefix + "."):
            for key, value in layer_resources(layer, options).as_dict().items():
                total[key] = total.get(key, 0) + value
    return total


def test_layer_table_follows_the_network():
    names = [layer.name for layer in LAYERS]
    assert names[:2] == ["input.conv", "input.max_pool"]
    assert names[-3:] == ["output.conv", "output.average_pool", "output.fully_connected"]
    sizes = {layer.name: layer.out_height for layer in LAYERS}
    assert sizes["input.conv"] == 48 and sizes["input.max_pool"] == 24
    assert sizes["stage2.unit0.right_expand"] == 24 and sizes["stage2.unit0.left_project"] == 12
    assert sizes["stage4.unit3.project"] == 3 and sizes["output.conv"] == 3
    # 1 + 1 + 3 x 5 (down-sampling) + (3 + 7 + 3) x 3 (basic) + 3 (output)
    assert len(LAYERS) == 2 + 15 + 13 * 3 + 3


def test_basic_unit_counts_by_hand():
    """stage2.unit1 at 1.0x: 116 channels, half 58, 12x12; one crossbar set per layer.

    Proposed (M+1)x2, per 1x1 layer (M = K = 58): 2*59*58 = 6844 crossbar memristors,
    59 word lines, 3*58 op-amps of which 58 inverters; MBN 4*58 memristors and 58 op-amps;
    ReLU 2*58 diodes. Depthwise (58 crossbars of M = 9, K = 1): 58*20 memristors, 58*10 word
    lines, 58*3 op-amps, 58 inverters; MBN as above; +-V_p clamp 2*58 diodes, 3*58 op-amps.
    """
    proposed = _unit("stage2.unit1", CountingOptions(schedule="reuse"))
    pointwise = {"memristors": 6844 + 232, "word_lines": 59, "op_amps": 174 + 58}
    depthwise = {"memristors": 1160 + 232, "word_lines": 580, "op_amps": 174 + 58 + 174}
    assert proposed == {
        "memristors": 2 * pointwise["memristors"] + depthwise["memristors"],  # 15544
        "crossbars": 1 + 58 + 1,
        "word_lines": 2 * 59 + 580,
        "op_amps": 2 * 232 + 406,
        "inverters": 58 + 58 + 58,
        "diodes": 3 * 116,
    }
    # Original (2M+1)x1, an inverter per input of every kernel (the paper's count):
    # 1x1 layer: 117*58 memristors, 117 word lines, 58*58 inverters + 58 TIAs;
    # depthwise: 58 x (19 memristors, 19 word lines, 9 inverters + 1 TIA).
    original = _unit("stage2.unit1", CountingOptions(topology="original", schedule="reuse"))
    assert original == {
        "memristors": 2 * (117 * 58 + 232) + (58 * 19 + 232),  # 15370
        "crossbars": 60,
        "word_lines": 2 * 117 + 58 * 19,
        "op_amps": 2 * (58 + 58 * 58 + 58) + (58 * 10 + 58 + 174),
        "inverters": 2 * 58 * 58 + 58 * 9,
        "diodes": 3 * 116,
    }
    assert original["word_lines"] / proposed["word_lines"] == pytest.approx(1336 / 698)


def test_downsampling_unit_counts_by_hand():
    """stage3.unit0 at 1.0x, fully parallel: 116 -> 232 channels, 12x12 -> 6x6.

    Per output position: each depthwise (116 channels of M = 9) has 116 crossbars with
    20 memristors, 10 word lines, 3 op-amps, 1 inverter each, plus MBN (464 memristors,
    116 op-amps) and the clamp (232 diodes, 348 op-amps); each 1x1 layer (M = K = 116) has one
    crossbar of 2*117*116 = 27144 memristors on 117 word lines with 348 op-amps (116
    inverters), plus MBN and 232 ReLU diodes. Positions: 36 for every layer but right_expand
    (144, before the stride-2 depthwise).
    """
    counts = _unit("stage3.unit0", CountingOptions(schedule="parallel"))
    depthwise = {"m": 2320 + 464, "x": 116, "w": 1160, "o": 348 + 116 + 348, "i": 116, "d": 232}
    pointwise = {"m": 27144 + 464, "x": 1, "w": 117, "o": 348 + 116, "i": 116, "d": 232}
    positions = {"depthwise": 2 * 36, "pointwise": 2 * 36 + 144}
    expected = {
        key: depthwise[short] * positions["depthwise"] + pointwise[short] * positions["pointwise"]
        for key, short in (
            ("memristors", "m"),
            ("crossbars", "x"),
            ("word_lines", "w"),
            ("op_amps", "o"),
            ("inverters", "i"),
            ("diodes", "d"),
        )
    }
    assert counts == expected
    assert counts["memristors"] == 6_163_776


def test_network_totals_and_options():
    reuse = network_resources(LAYERS, CountingOptions(schedule="reuse"))
    parallel = network_resources(LAYERS, CountingOptions(schedule="parallel"))
    assert set(reuse["per_unit"]) == {"input", "basic", "downsampling", "output"}
    assert reuse["total"]["memristors"] < parallel["total"]["memristors"]
    folded = network_resources(LAYERS, CountingOptions(schedule="reuse", batch_norm="folded"))
    conv_neurons = sum(
        layer.out_channels for layer in LAYERS if layer.batch_norm
    )  # one MBN op-amp and four memristors each
    assert reuse["total"]["op_amps"] - folded["total"]["op_amps"] == conv_neurons
    assert reuse["total"]["memristors"] - folded["total"]["memristors"] == 4 * conv_neurons
    shared = CountingOptions(topology="original", schedule="reuse", share_input_inverters=True)
    unshared = CountingOptions(topology="original", schedule="reuse")
    assert (
        network_resources(LAYERS, shared)["total"]["inverters"]
        < network_resources(LAYERS, unshared)["total"]["inverters"]
    )
    with pytest.raises(MemjaxError, match="CountingOptions.topology"):
        CountingOptions(topology="diagonal")
    # the ReLU's op-amps: none (plain diode), U1 (super rectifier, diode limiter: the paper
    # preset), U1 and U2 (active limiter), one of each per ReLU neuron
    relu_neurons = sum(layer.out_channels for layer in LAYERS if layer.activation == "relu")
    op_amps = {
        (relu, limiter): network_resources(
            LAYERS, CountingOptions(schedule="reuse", relu=relu, limiter=limiter)
        )["total"]["op_amps"]
        for relu, limiter in (("plain", "diode"), ("super", "diode"), ("super", "active"))
    }
    assert op_amps["super", "diode"] - op_amps["plain", "diode"] == relu_neurons
    assert op_amps["super", "active"] - op_amps["super", "diode"] == relu_neurons
    with pytest.raises(MemjaxError, match="CountingOptions.limiter"):
        CountingOptions(relu="plain", limiter="active")


def test_the_papers_137_ns_is_the_critical_path_layer_count():
    """Stem 4 + 16 units x 8 + output 5 layers (conv, BN, ReLU, pooling and FC one each, the
    right branch of the down-sampling units) = 137 for the 1.0x network; folded BN drops the
    50 BN layers; the count follows the configuration."""
    from memjax.hardware.layers import critical_path_layers

    layers = critical_path_layers(ShuffleNetConfig())
    assert len(layers) == 137
    assert layers[:4] == ["input.conv", "input.conv.bn", "input.conv.relu", "input.max_pool"]
    assert layers[-2:] == ["output.average_pool", "output.fully_connected"]
    assert not any(".left_" in name for name in layers)
    assert len(critical_path_layers(ShuffleNetConfig(bn_mode="folded"))) == 137 - 50
    assert len(critical_path_layers(ShuffleNetConfig(stage_repeats=(1, 1, 1)))) == 4 + 3 * 8 + 5


def test_opamp_bias_counts_every_opamp_and_the_busiest_neuron():
    """The paper preset's circuits (super-diode ReLU and max pool, diode limiter, separate MBN,
    clamped linear stages): a super-diode max-pool output holds 9 op-amps, more than a
    clamped depthwise neuron (3 kernel + 1 MBN + 3 clamp = 7) or a ReLU neuron (3 + 1 + 1)."""
    options = CountingOptions(relu="super", limiter="diode", max_pool="super")
    bias = opamp_bias(LAYERS, options, 5e-4)
    total = network_resources(LAYERS, options)["total"]["op_amps"]
    assert bias["op_amps"] == total and bias["network_W"] == pytest.approx(total * 5e-4)
    assert bias["max_op_amps_per_neuron"] == 9 and bias["max_per_neuron_layer"] == "input.max_pool"
    assert bias["max_per_neuron_W"] == pytest.approx(9 * 5e-4)
    plain = opamp_bias(LAYERS, CountingOptions(), 5e-4)  # plain diodes: the clamp's 7 lead
    assert plain["max_op_amps_per_neuron"] == 7
    assert plain["max_per_neuron_layer"].endswith("depthwise")


def test_latency_floor_counts_the_op_amps_in_series_by_hand():
    """The 1.0x network's critical path (53 layers): 51 crossbars (stem, 33 pointwise, 16
    depthwise, the fully connected layer) x 2 read-out op-amps, 50 separate MBNs, 34 super
    ReLUs, 16 clamped linear depthwise stages, the super max pool and the average pool:
    204 op-amp stages in series; plain diodes take the 34 ReLUs and the max pool off (169),
    folded BN the 50 MBNs; the floor is that count over 2 pi GBW."""
    import dataclasses
    import math

    from memjax.hardware.config import PRESETS
    from memjax.hardware.latency import latency_floor, series_opamp_stages

    config = ShuffleNetConfig()
    paper, plain = PRESETS["paper"](), PRESETS["paper_plain_diode_relu"]()
    assert series_opamp_stages(config, paper) == 51 * 2 + 50 + 34 + 16 + 1 + 1 == 204
    assert series_opamp_stages(config, plain) == 204 - 34 - 1
    folded = dataclasses.replace(paper, batch_norm="folded")
    assert series_opamp_stages(config, folded) == 204 - 50
    floor = latency_floor(config, paper)
    tau = 1 / (2 * math.pi * paper.opamp.gain_bandwidth)
    assert floor["floor_s"] == pytest.approx(204 * tau, rel=1e-12)
    assert floor["series_opamp_stages"] == 204
