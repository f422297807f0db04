"""Batch norm folded into the preceding convolution, for deployment on crossbars.

In inference BN is affine per channel: y = s * (conv(x) - mean) + beta with
s = gamma / sqrt(var + eps). Folding moves s into the kernel's output channels and the rest
into a bias, which the crossbar realises on its bias row: one circuit stage fewer per layer
(H. Ran et al., IEEE TNNLS 33(5), 2022, fold BN to halve the op-amp count).
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from memjax.network.shufflenet import ConvBN, ShuffleNetV2, build_model


def fold_batchnorm(model: ShuffleNetV2) -> ShuffleNetV2:
    """A new model with ``bn_mode="folded"`` computing the same outputs in evaluation mode."""
    if model.config.bn_mode == "folded":
        return model
    folded = build_model(model.config.replace(bn_mode="folded"))
    source = dict(_conv_layers(model))
    for path, target in _conv_layers(folded):
        layer = source[path]
        bn = layer.bn
        scale = bn.scale[...] / jnp.sqrt(bn.var[...] + bn.epsilon)
        target.kernel[...] = layer.kernel[...] * scale  # output channels are the last axis
        target.bias[...] = bn.bias[...] - bn.mean[...] * scale
    folded.output_unit.fc.kernel[...] = model.output_unit.fc.kernel[...]
    folded.output_unit.fc.bias[...] = model.output_unit.fc.bias[...]
    return folded


def _conv_layers(model: ShuffleNetV2):
    for path, node in nnx.iter_graph(model):
        if isinstance(node, ConvBN):
            yield path, node
