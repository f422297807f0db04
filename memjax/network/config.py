"""The configuration record of the digital ShuffleNetV2, saved beside every checkpoint."""

from __future__ import annotations

import dataclasses
import json
from typing import Literal

from memjax.errors import MemjaxError

STAGE_CHANNELS = {
    0.5: (48, 96, 192, 1024),
    1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2.0: (244, 488, 976, 2048),
}
"""Output channels of stages 2, 3, 4 and of the output unit's 1x1 convolution, per width
multiplier (N. Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
Design", ECCV 2018, Table 5)."""


@dataclasses.dataclass(frozen=True)
class ShuffleNetConfig:
    """ShuffleNetV2 for 48x48 grayscale FER2013, with the options that make it hardware-ready.

    Attributes:
        width: width multiplier, one of 0.5, 1.0, 1.5, 2.0 (Ma et al. 2018).
        num_classes: outputs of the fully connected layer (7 FER2013 emotions).
        stem_channels: output channels of the input unit's 3x3 convolution (24 in Ma et al.).
        stem_stride: stride of the input unit's 3x3 convolution. 1 keeps 48x48 before the max
            pool, so stage 2 starts at 24x24 (ImageNet's stride 2 would leave 3x3 maps at stage 3).
        stage_repeats: units per stage 2, 3, 4; the first of each is a down-sampling unit.
        activation_limit: upper clamp of every ReLU, in network units, or None for a plain ReLU.
            It stands for the circuit's output limiter: the conversion maps this value to the
            memristor threshold V_p, so clamping in hardware loses nothing the network used.
        clamp_linear: also clamp the outputs of stages without ReLU (depthwise convolutions) to
            [-activation_limit, activation_limit], so that no crossbar input can exceed V_p.
        input_range: gray levels 0..255 are mapped linearly onto [low, high] (network units),
            the bounded range the input unit's word lines see (later: [0, V_p]).
        bn_mode: "separate" keeps batch norm as its own stage (the paper's MBN circuit);
            "folded" folds it into the preceding convolution's weights and bias (deployment).
        dropout: dropout rate before the fully connected layer (training only).
        zero_init_branch: start the last batch-norm scale of every basic unit's branch at 0,
            so that each basic unit begins as its identity half plus zeros and the deep
            network starts out effectively shallow (the zero-gamma trick of P. Goyal et al.,
            "Accurate, Large Minibatch SGD", 2017, for residual blocks). Only initialisation
            changes.
        bn_momentum: decay of the running batch-norm statistics per step.
    """

    width: float = 1.0
    num_classes: int = 7
    stem_channels: int = 24
    stem_stride: int = 1
    stage_repeats: tuple[int, int, int] = (4, 8, 4)
    activation_limit: float | None = 6.0
    clamp_linear: bool = True
    input_range: tuple[float, float] = (0.0, 1.0)
    bn_mode: Literal["separate", "folded"] = "separate"
    dropout: float = 0.2
    zero_init_branch: bool = False
    bn_momentum: float = 0.9

    def __post_init__(self):
        if self.width not in STAGE_CHANNELS:
            raise MemjaxError(
                f"width {self.width} is not a ShuffleNetV2 width; expected one of "
                f"{', '.join(str(w) for w in STAGE_CHANNELS)}"
            )
        if self.bn_mode not in ("separate", "folded"):
            raise MemjaxError(f"bn_mode {self.bn_mode!r}: expected 'separate' or 'folded'")
        if self.activation_limit is not None and self.activation_limit <= 0:
            raise MemjaxError(f"activation_limit {self.activation_limit} must be > 0 or None")
        if not self.input_range[0] < self.input_range[1]:
            raise MemjaxError(f"input_range {self.input_range}: low must be below high")
        if not 0 <= self.dropout < 1:
            raise MemjaxError(f"dropout {self.dropout} must lie in [0, 1)")
        if len(self.stage_repeats) != 3 or min(self.stage_repeats) < 1:
            raise MemjaxError(f"stage_repeats {self.stage_repeats}: expected three counts >= 1")

    @property
    def stage_channels(self) -> tuple[int, int, int, int]:
        return STAGE_CHANNELS[self.width]

    def replace(self, **changes) -> ShuffleNetConfig:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, fields: dict) -> ShuffleNetConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(fields) - known
        if unknown:
            raise MemjaxError(f"unknown model configuration fields: {', '.join(sorted(unknown))}")
        fields = dict(fields)
        for key in ("stage_repeats", "input_range"):
            if key in fields:
                fields[key] = tuple(fields[key])
        return cls(**fields)
