"""The digital ShuffleNetV2 (Flax NNX) and its deployment transforms."""

from memjax.network.config import STAGE_CHANNELS, ShuffleNetConfig
from memjax.network.folding import fold_batchnorm
from memjax.network.shufflenet import ShuffleNetV2, build_model

__all__ = ["STAGE_CHANNELS", "ShuffleNetConfig", "ShuffleNetV2", "build_model", "fold_batchnorm"]
