"""Devices: memristors, op-amps and diodes as state equations in SI units (no Flax here)."""

from memjax.devices.diode import Diode
from memjax.devices.memristor import VTEAM, HPLinearDrift, Memristor, Yakopcic
from memjax.devices.opamp import OpAmp

__all__ = ["VTEAM", "Diode", "HPLinearDrift", "Memristor", "OpAmp", "Yakopcic"]
