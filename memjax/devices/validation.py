"""Construction-time checks of device parameters, with messages that name the parameter.

Checks run only on concrete values: inside ``jax.jit`` or ``jax.grad`` the parameters are
tracers, and a record that passed its checks when built stays valid under transformation.
"""

from __future__ import annotations

import jax
import numpy as np

from memjax.errors import MemjaxError


def _concrete(value):
    if isinstance(value, jax.core.Tracer):
        return None
    return np.asarray(value)


def require(owner: str, name: str, value, condition, expected: str) -> None:
    """Raise ``MemjaxError("<owner>.<name> = <value>: expected <expected>")`` when violated."""
    concrete = _concrete(value)
    if concrete is None:
        return
    if not np.all(condition(concrete)):
        shown = concrete.item() if concrete.size == 1 else concrete
        raise MemjaxError(f"{owner}.{name} = {shown}: expected {expected}")


def require_positive(owner: str, name: str, value) -> None:
    require(owner, name, value, lambda v: v > 0, "a positive value")


def require_non_negative(owner: str, name: str, value) -> None:
    require(owner, name, value, lambda v: v >= 0, "a value >= 0")


def require_ordered(owner: str, low_name: str, low, high_name: str, high) -> None:
    low_c, high_c = _concrete(low), _concrete(high)
    if low_c is None or high_c is None:
        return
    if not np.all(low_c < high_c):
        raise MemjaxError(
            f"{owner}: {low_name} = {low_c.item() if low_c.size == 1 else low_c} must be below "
            f"{high_name} = {high_c.item() if high_c.size == 1 else high_c}"
        )


def require_choice(owner: str, name: str, value, choices: tuple) -> None:
    if value not in choices:
        raise MemjaxError(
            f"{owner}.{name} = {value!r}: expected one of {', '.join(map(repr, choices))}"
        )


def require_ideal_output(owner: str, amp) -> None:
    """Blocks that drive their loads from the op-amp's internal output reject R_o > 0."""
    r_out = _concrete(amp.output_resistance)
    if r_out is not None and np.any(r_out > 0):
        raise MemjaxError(
            f"{owner}.opamp.output_resistance = {r_out} ohm: not modelled in this block "
            "(only the super-diode ReLU and max pool model it); use 0"
        )
