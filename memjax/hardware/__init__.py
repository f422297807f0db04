"""The trained network as circuits: its analog stages and what they cost in hardware."""

from memjax.hardware.layers import Layer, network_layers
from memjax.hardware.resources import CountingOptions, Resources, network_resources

__all__ = ["CountingOptions", "Layer", "Resources", "network_layers", "network_resources"]
