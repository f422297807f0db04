"""The wiring of the memristive ShuffleNetV2: its stages in signal order and one walk of them.

Every whole-network computation (the steady state, the DC operating point, the transient, the
rows each activation drives) walks the same list of steps with :func:`propagate`, each
supplying what a stage computes and how split, concat and shuffle act on its values (arrays,
waveforms, node labels).
"""

from __future__ import annotations

UNIT_ROLES = {
    "basic": ("expand", "depthwise", "project"),
    "downsampling": (
        "left_depthwise",
        "left_project",
        "right_expand",
        "right_depthwise",
        "right_project",
    ),
}
"""The stages of each unit kind in the order the converted network holds them; a basic unit
runs them on the branch half of its channels, a down-sampling unit runs the first two on its
left branch and the rest on its right, both fed the whole input."""

DEPTH_OF_ROLE = {
    "expand": 1,
    "depthwise": 2,
    "project": 3,
    "left_depthwise": 1,
    "left_project": 2,
    "right_expand": 1,
    "right_depthwise": 2,
    "right_project": 3,
}
"""Each role's position on its unit's critical path: the calculation period it belongs to
(the two branches of a down-sampling unit run side by side)."""


def propagate(steps: list, x, run, split, concat, shuffle, repeat=None):
    """Run ``steps`` ((name, unit kind, unit index, role, stage) in signal order; unit index
    -1 outside the units) from the layer input ``x``, wired as the network is:
    ``run(name, kind, stage, x)`` gives a stage's output; ``split`` (one value into the kept
    and the branch half of the channels), ``concat`` and ``shuffle`` are the wiring for
    whatever ``x`` is. ``repeat(units, x)``, if given, runs every stretch of two or more
    consecutive basic units (``units``: each unit's steps) in place of running them one
    after the other with :func:`run_unit` (e.g. as one ``lax.scan``: a basic unit keeps
    its input's shape). Returns the last stage's output."""
    index = 0
    while index < len(steps):
        name, kind, unit, _, stage = steps[index]
        if unit < 0:
            x, index = run(name, kind, stage, x), index + 1
            continue
        units = [_unit_steps(steps, index)]
        index += len(units[0])
        while kind == "basic" and index < len(steps) and steps[index][1] == "basic":
            units.append(_unit_steps(steps, index))
            index += len(units[-1])
        if repeat is not None and len(units) > 1:
            x = repeat(units, x)
            continue
        for unit_steps in units:
            x = run_unit(unit_steps, x, run, split, concat, shuffle)
    return x


def run_unit(unit_steps: list, x, run, split, concat, shuffle):
    """One unit of :func:`propagate` (its steps, all of one unit index) from its input ``x``:
    a basic unit runs its stages on the branch half of the channels, a down-sampling unit
    its first two on the left branch and the rest on the right, both fed the whole input;
    then the halves are concatenated and shuffled."""
    if unit_steps[0][1] == "basic":
        kept, branch = split(x)
        for name, kind, _, _, stage in unit_steps:
            branch = run(name, kind, stage, branch)
        return shuffle(concat(kept, branch))
    left = right = x
    for name, kind, _, _, stage in unit_steps[:2]:
        left = run(name, kind, stage, left)
    for name, kind, _, _, stage in unit_steps[2:]:
        right = run(name, kind, stage, right)
    return shuffle(concat(left, right))


def _unit_steps(steps: list, index: int) -> list:
    """The steps of the unit whose first step is ``steps[index]``."""
    end = index
    while end < len(steps) and steps[end][2] == steps[index][2]:
        end += 1
    return steps[index:end]
