"""Physical constants and unit factors. memjax computes in SI units internally.

Multiply by a factor to convert into SI (``5 * NANO`` seconds), divide to print.
"""

BOLTZMANN = 1.380649e-23
"""Boltzmann constant k_B, J/K (exact, SI 2019)."""
ELEMENTARY_CHARGE = 1.602176634e-19
"""Elementary charge q, C (exact, SI 2019)."""
ROOM_TEMPERATURE = 300.0
"""Default device temperature, K."""

PICO = 1e-12
NANO = 1e-9
MICRO = 1e-6
MILLI = 1e-3
KILO = 1e3
MEGA = 1e6
GIGA = 1e9


def thermal_voltage(temperature: float = ROOM_TEMPERATURE) -> float:
    """V_T = k_B T / q in volts (25.85 mV at 300 K)."""
    return BOLTZMANN * temperature / ELEMENTARY_CHARGE
