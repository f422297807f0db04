"""Circuit blocks built from devices: vector fields, steady states, power (no Flax here)."""

from memjax.circuits.block import Block, Power
from memjax.circuits.chain import Chain
from memjax.circuits.crossbar import ColumnKernel, PairKernel
from memjax.circuits.fully_connected import FullyConnected
from memjax.circuits.mapping import ConductanceMapping, KernelConductances
from memjax.circuits.simulate import TransientResult, steady_outputs, steady_state, transient

__all__ = [
    "Block",
    "Chain",
    "ColumnKernel",
    "ConductanceMapping",
    "FullyConnected",
    "KernelConductances",
    "PairKernel",
    "Power",
    "TransientResult",
    "steady_outputs",
    "steady_state",
    "transient",
]
