"""The analog stages of a ShuffleNetV2, layer by layer, from its configuration alone.

Each :class:`Layer` is one sequential analog stage of the memristive network: a crossbar
convolution (with its MBN and ReLU/limiter or linear clamp), a pooling circuit or the fully
connected crossbar. Channel split, shuffle and concatenation are wiring and have no stage
(physics notes, section 2). Spatial sizes follow memjax's 'SAME' padding: 48 -> 48 (stem,
stride 1) -> 24 (max pool) -> 12 -> 6 -> 3 (the three down-sampling units).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from memjax.network.config import ShuffleNetConfig

UnitKind = Literal["input", "basic", "downsampling", "output"]
LayerKind = Literal["stem", "depthwise", "pointwise", "max_pool", "average_pool", "fully_connected"]


@dataclasses.dataclass(frozen=True)
class Layer:
    """One analog stage.

    Attributes:
        name: where it sits, e.g. "stage3.unit0.right_expand".
        unit: the paper's unit kind it belongs to.
        kind: the circuit: a crossbar convolution (stem 3x3, depthwise 3x3, pointwise 1x1),
            max pooling, global average pooling or the fully connected crossbar.
        in_channels: input channels.
        out_channels: output channels (kernels per output position).
        inputs_per_kernel: M, the weights of one kernel (k*k*C_in, 9 or C_in; the window
            size for pooling).
        out_height: rows of the output map.
        out_width: columns of the output map.
        activation: "relu" (diode ReLU + limiter at V_p), "linear" (no ReLU) or None
            (pooling, fully connected).
        batch_norm: whether a batch norm follows the convolution.
    """

    name: str
    unit: UnitKind
    kind: LayerKind
    in_channels: int
    out_channels: int
    inputs_per_kernel: int
    out_height: int
    out_width: int
    activation: Literal["relu", "linear"] | None
    batch_norm: bool

    @property
    def positions(self) -> int:
        """Output positions: the calculation periods of a time-multiplexed crossbar."""
        return self.out_height * self.out_width

    @property
    def crossbars_per_position(self) -> int:
        """Crossbars one output position needs: one holding every kernel, or one per channel
        for a depthwise convolution (its channels see different inputs)."""
        return self.out_channels if self.kind == "depthwise" else 1

    @property
    def kernels_per_crossbar(self) -> int:
        return 1 if self.kind == "depthwise" else self.out_channels


def network_layers(config: ShuffleNetConfig, image_size: int = 48) -> list[Layer]:
    """Every analog stage of the network, in signal order."""
    layers = []
    size = -(-image_size // config.stem_stride)
    stem = config.stem_channels
    layers.append(_conv("input.conv", "input", "stem", 1, stem, 9, size, "relu"))
    size = -(-size // 2)
    layers.append(
        Layer("input.max_pool", "input", "max_pool", stem, stem, 9, size, size, None, False)
    )
    channels = stem
    for stage, (repeats, out) in enumerate(zip(config.stage_repeats, config.stage_channels[:3])):
        prefix = f"stage{stage + 2}.unit0"
        half, small = out // 2, -(-size // 2)
        layers += [
            _conv(
                f"{prefix}.left_depthwise",
                "downsampling",
                "depthwise",
                channels,
                channels,
                9,
                small,
                "linear",
            ),
            _conv(
                f"{prefix}.left_project",
                "downsampling",
                "pointwise",
                channels,
                half,
                channels,
                small,
                "relu",
            ),
            _conv(
                f"{prefix}.right_expand",
                "downsampling",
                "pointwise",
                channels,
                half,
                channels,
                size,
                "relu",
            ),
            _conv(
                f"{prefix}.right_depthwise",
                "downsampling",
                "depthwise",
                half,
                half,
                9,
                small,
                "linear",
            ),
            _conv(
                f"{prefix}.right_project",
                "downsampling",
                "pointwise",
                half,
                half,
                half,
                small,
                "relu",
            ),
        ]
        size, channels = small, out
        for index in range(1, repeats):
            prefix = f"stage{stage + 2}.unit{index}"
            layers += [
                _conv(f"{prefix}.expand", "basic", "pointwise", half, half, half, size, "relu"),
                _conv(f"{prefix}.depthwise", "basic", "depthwise", half, half, 9, size, "linear"),
                _conv(f"{prefix}.project", "basic", "pointwise", half, half, half, size, "relu"),
            ]
    features = config.stage_channels[3]
    layers += [
        _conv("output.conv", "output", "pointwise", channels, features, channels, size, "relu"),
        Layer(
            "output.average_pool",
            "output",
            "average_pool",
            features,
            features,
            size * size,
            1,
            1,
            None,
            False,
        ),
        Layer(
            "output.fully_connected",
            "output",
            "fully_connected",
            features,
            config.num_classes,
            features,
            1,
            1,
            None,
            False,
        ),
    ]
    return layers


def critical_path(config: ShuffleNetConfig) -> list[Layer]:
    """The analog stages on the network's critical path, in signal order: every stage but the
    shorter (left) branch of each down-sampling unit, which runs beside the right one."""
    return [
        layer
        for layer in network_layers(config)
        if not (layer.unit == "downsampling" and ".left_" in layer.name)
    ]


def critical_path_layers(config: ShuffleNetConfig, batch_norm: str | None = None) -> list[str]:
    """The layers on the network's critical path counted one by one as the paper's calculation
    periods appear to be (physics notes, section 1): every convolution, batch norm, ReLU,
    pooling and the fully connected layer is one layer, down the longer (right) branch of each
    down-sampling unit. For the 1.0x network: stem 4 (conv, BN, ReLU, max pool) + 16 units x 8
    (1x1, BN, ReLU, depthwise 3x3, BN, 1x1, BN, ReLU) + output 5 (1x1, BN, ReLU, global pool,
    FC) = 137, the paper's 137 ns at 1 ns each. A hypothesis that the count fits exactly;
    with folded batch norm (the model's ``bn_mode``, or the circuit's ``batch_norm`` when
    given: a separate-BN model converted with "folded") the BN layers are not there."""
    separate = config.bn_mode == "separate" and batch_norm in (None, "separate")
    on_path = []
    for layer in critical_path(config):
        on_path.append(layer.name)
        if layer.batch_norm and separate:
            on_path.append(f"{layer.name}.bn")
        if layer.activation == "relu":
            on_path.append(f"{layer.name}.relu")
    return on_path


def _conv(name, unit, kind, in_channels, out_channels, inputs, size, activation) -> Layer:
    return Layer(name, unit, kind, in_channels, out_channels, inputs, size, size, activation, True)
