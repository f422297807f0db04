"""Export blocks to ngspice netlists with their current conductances and parameters.

The op-amp becomes a behavioural macromodel with the same A0, GBW, slew rate and rails as
:class:`~memjax.devices.opamp.OpAmp`: a B source charges a 1 pF capacitor at the rate
dy/dt of the single-pole model, and a unity VCVS buffers it as the output. Memristors are
resistors at their programmed conductance (their state does not move below threshold).

``run_ngspice`` runs ``ngspice -b`` on a netlist and returns the time points and the requested
vectors.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import subprocess
import tempfile
from pathlib import Path

import equinox as eqx
import numpy as np

from memjax.circuits.crossbar import ColumnKernel, PairKernel
from memjax.circuits.diodes import DiodeClamp, DiodeMaxPool, DiodeReLU
from memjax.devices.diode import Diode
from memjax.devices.opamp import OpAmp
from memjax.errors import MemjaxError

STATE_CAPACITANCE = 1e-12
"""Capacitance of the macromodel's internal state node, F (only scales its current)."""


def opamp_subcircuit(amp: OpAmp, name: str = "opamp") -> str:
    """``.subckt name plus minus out`` implementing OpAmp.output_rate, with the output
    resistance between the buffered state and ``out`` when it is > 0."""
    slew = amp.slew_rate
    linear = (
        f"({amp.open_loop_gain:.12g}*(v(plus)-v(minus))-v(state))/{amp.pole_time_constant:.12g}"
    )
    rate = linear if math.isinf(slew) else f"{slew:.12g}*tanh({linear}/{slew:.12g})"
    soft = amp.rail_softness
    up = f"(1-exp(-max({amp.rail_high:.12g}-v(state),0)/{soft:.12g}))"
    down = f"(1-exp(-max(v(state)-{amp.rail_low:.12g},0)/{soft:.12g}))"
    gate = f"(({rate})>0 ? {up} : {down})"
    return "\n".join(
        [
            f".subckt {name} plus minus out",
            f"Bstate 0 state I={STATE_CAPACITANCE:.6g}*({rate})*{gate}",
            f"Cstate state 0 {STATE_CAPACITANCE:.6g} IC=0",
            *(
                ["Eout outi 0 state 0 1", f"Rout outi out {amp.output_resistance:.12g}"]
                if amp.output_resistance
                else ["Eout out 0 state 0 1"]
            ),
            ".ends",
        ]
    )


def _sources(inputs) -> list[str]:
    return [f"Vin{i} in{i} 0 DC {float(v):.12g}" for i, v in enumerate(np.asarray(inputs))]


def _refuse_opamp_errors(owner: str, block) -> None:
    """A chip's own op-amps (offsets, gains) are not written to netlists yet: refuse them
    rather than export the design's op-amps in their place."""
    if getattr(block, "opamp_errors", None) is not None:
        raise MemjaxError(
            f"{owner}.opamp_errors: a chip's own op-amp offsets and gains are not exported to "
            "ngspice netlists; export the design (opamp_errors=None)"
        )


def _pair_kernel_body(block: PairKernel, rows_in: list[str], p: str = "") -> list[str]:
    """Elements of the (M+1)x2 kernel reading word lines ``rows_in``; output node {p}yo."""
    _refuse_opamp_errors("PairKernel", block)
    c = block.conductances
    g_plus, g_minus = np.asarray(c.positive), np.asarray(c.negative)
    r_d, gain = block.difference_resistance, block.difference_gain
    r_f = float(c.transimpedance) / gain
    lines = [f"V{p}bias {p}inb 0 DC {c.bias_voltage:.12g}"]
    wired = bool(block.wire_resistance)
    rows = [*rows_in, f"{p}inb"]
    for i, row in enumerate(rows):
        cell_a, cell_b = (f"{p}ca{i}", f"{p}cb{i}") if wired else (f"{p}na", f"{p}nb")
        lines.append(f"Rp{p}{i} {row} {cell_a} {1 / g_plus[i]:.12g}")
        lines.append(f"Rm{p}{i} {row} {cell_b} {1 / g_minus[i]:.12g}")
    if wired:  # the bit line: cell 0 farthest from the TIA
        for col, tia in (("a", "na"), ("b", "nb")):
            for i in range(len(rows)):
                after = f"{p}c{col}{i + 1}" if i + 1 < len(rows) else f"{p}{tia}"
                lines.append(f"Rw{p}{col}{i} {p}c{col}{i} {after} {block.wire_resistance:.12g}")
    if block.bitline_capacitance:
        lines += [
            f"C{p}na {p}na 0 {block.bitline_capacitance:.12g}",
            f"C{p}nb {p}nb 0 {block.bitline_capacitance:.12g}",
        ]
    return lines + [
        f"R{p}fa {p}na {p}ya {r_f:.12g}",
        f"X{p}A 0 {p}na {p}ya opamp",
        f"R{p}fb {p}nb {p}yb {r_f:.12g}",
        f"X{p}B 0 {p}nb {p}yb opamp",
        f"R{p}d1 {p}ya {p}dm {r_d:.12g}",
        f"R{p}d2 {p}dm {p}yo {gain * r_d:.12g}",
        f"R{p}d3 {p}yb {p}dp {r_d:.12g}",
        f"R{p}d4 {p}dp 0 {gain * r_d:.12g}",
        f"X{p}D {p}dp {p}dm {p}yo {_difference_name(block)}",
    ]


def _difference_name(block: PairKernel) -> str:
    """The difference stage's subcircuit: "opamp", or "difference" on its own supply."""
    return "opamp" if block.output_swing is None else "difference"


def _difference_subcircuit(block: PairKernel) -> list[str]:
    """The difference stage's own subcircuit where it has one (``PairKernel.output_swing``);
    :func:`simulate_netlist` then takes its op-amp as ``{"difference": ...}``."""
    if block.output_swing is None:
        return []
    return [opamp_subcircuit(block.difference_opamp, "difference")]


def pair_kernel_netlist(block: PairKernel, inputs, t_end: float, t_step: float) -> str:
    """The (M+1)x2 kernel driven by a step of ``inputs`` at t = 0 (all nodes start at rest)."""
    m = len(np.asarray(inputs))
    lines = [f"* memjax PairKernel, M = {m}", opamp_subcircuit(block.opamp)]
    lines += _difference_subcircuit(block) + _sources(inputs)
    lines += _pair_kernel_body(block, [f"in{i}" for i in range(m)])
    return _finish(lines, t_end, t_step)


def fully_connected_netlist(block, inputs, t_end: float, t_step: float) -> str:
    """A :class:`~memjax.circuits.fully_connected.FullyConnected` layer: one (M+1)x2 read-out
    per output on shared word lines; output k at node ``k{k}yo``."""
    m = len(np.asarray(inputs))
    lines = [
        f"* memjax FullyConnected, M = {m}, K = {block.count}",
        opamp_subcircuit(block.kernels.opamp),
        *_difference_subcircuit(block.kernels),
    ]
    lines += _sources(inputs)
    rows = [f"in{i}" for i in range(m)]
    c = block.kernels.conductances
    for k in range(block.count):
        conductances = type(c)(c.positive[k], c.negative[k], c.transimpedance[k], c.bias_voltage)
        kernel = dataclasses.replace(block.kernels, conductances=conductances)
        lines += _pair_kernel_body(kernel, rows, p=f"k{k}")
    return _finish(lines, t_end, t_step)


def column_kernel_netlist(block: ColumnKernel, inputs, t_end: float, t_step: float) -> str:
    """The (2M+1)x1 kernel with its M input inverters, driven by a step of ``inputs``."""
    g = np.asarray(block.row_conductances())
    m = block.size
    c = block.conductances
    sign = np.sign(float(c.positive[-1] - c.negative[-1]))
    r_i = block.inverter_resistance
    lines = [f"* memjax ColumnKernel, M = {m}", opamp_subcircuit(block.opamp)]
    lines += _sources(inputs)
    lines.append(f"Vbias inb 0 DC {-sign * c.bias_voltage:.12g}")
    wired = bool(block.wire_resistance)
    cell = (lambda j: f"c{j}") if wired else (lambda j: "n")  # noqa: E731
    for i in range(m):
        lines += [
            f"Ri{i} in{i} im{i} {r_i:.12g}",
            f"Rj{i} im{i} inv{i} {r_i:.12g}",
            f"XI{i} 0 im{i} inv{i} opamp",
            f"Rm{i} in{i} {cell(i)} {1 / g[i]:.12g}",
            f"Rp{i} inv{i} {cell(m + i)} {1 / g[m + i]:.12g}",
        ]
    lines.append(f"Rb inb {cell(2 * m)} {1 / g[-1]:.12g}")
    if wired:  # the bit line: cell 0 farthest from the TIA, the bias row nearest
        for j in range(2 * m + 1):
            after = f"c{j + 1}" if j < 2 * m else "n"
            lines.append(f"Rw{j} c{j} {after} {block.wire_resistance:.12g}")
    if block.bitline_capacitance:
        lines.append(f"Cn n 0 {block.bitline_capacitance:.12g}")
    lines += [f"Rf n yo {float(c.transimpedance):.12g}", "XT 0 n yo opamp"]
    return _finish(lines, t_end, t_step)


def summing_amplifier_netlist(block, inputs, t_end: float, t_step: float) -> str:
    """A :class:`~memjax.circuits.amplifiers.SummingAmplifier` driven by a step of ``inputs``."""
    _refuse_opamp_errors("SummingAmplifier", block)
    prefix = "Rp" if block.memristive else "Ri"
    g_in = np.atleast_1d(np.asarray(block.input_conductances))
    lines = ["* memjax SummingAmplifier", opamp_subcircuit(block.opamp)]
    lines += _sources(inputs)
    lines += [f"{prefix}{i} in{i} n {1 / g:.12g}" for i, g in enumerate(g_in)]
    if float(block.bias_conductance) > 0:
        lines += [
            f"Vbias inb 0 DC {block.bias_voltage:.12g}",
            f"{'Rb' if block.memristive else 'Rc'}0 inb n {1 / float(block.bias_conductance):.12g}",
        ]
    if block.node_capacitance:
        lines.append(f"Cn n 0 {block.node_capacitance:.12g}")
    feedback = "Rmf" if block.memristive else "Rf"
    lines += [f"{feedback} n yo {1 / float(block.feedback_conductance):.12g}", "XS 0 n yo opamp"]
    return _finish(lines, t_end, t_step)


def diode_model(diode: Diode, name: str = "dmod") -> str:
    """``.model`` card of the Shockley diode (no junction capacitance, no breakdown)."""
    return (
        f".model {name} D(IS={diode.saturation_current:.12g} "
        f"N={diode.emission_coefficient:.12g} RS={diode.series_resistance:.12g})"
    )


def _diode_relu_body(block: DiodeReLU, input_node: str, p: str = "") -> list[str]:
    """Elements of ReLU + limiter reading ``input_node``; output node {p}o."""
    if block.reference_buffer is not None:
        raise MemjaxError(
            "SPICE export: DiodeReLU.reference_buffer (the limiter reference's follower) is not "
            "exported; export the block without it (an ideal reference)"
        )
    lines = [f"V{p}ref {p}ref 0 DC {block.clamp_reference:.12g}"]
    if block.super_diode:
        lines += [
            f"X{p}U1 {input_node} {p}o {p}y1 {_rectifier_name(block)}",
            f"D{p}1 {p}y1 {p}a dmod",
            f"R{p}s {p}a {p}o {block.series_resistance:.12g}",
        ]
        if block.active_limiter:
            lines += [f"X{p}U2 {p}ref {p}o {p}y2 opamp", f"D{p}2 {p}o {p}y2 dmod"]
        else:
            lines.append(f"D{p}2 {p}o {p}ref dmod")
    else:
        lines += [
            f"D{p}1 {input_node} {p}a dmod",
            f"R{p}s {p}a {p}o {block.series_resistance:.12g}",
            f"D{p}2 {p}o {p}ref dmod",
        ]
    lines += _node_load(block, f"{p}o", p)
    if block.node_capacitance:
        lines.append(f"C{p}o {p}o 0 {block.node_capacitance:.12g}")
    return lines


def _node_load(block, node: str, prefix: str) -> list[str]:
    """A diode block's load: R_L and, where it drives crossbar rows, their conductance as
    one resistor to ground (each cell ends on a bit line at virtual ground)."""
    lines = [f"R{prefix}L {node} 0 {block.load_resistance:.12g}"]
    rows = np.asarray(block.row_conductance)
    if rows.ndim:
        raise MemjaxError(
            f"{type(block).__name__}.row_conductance: one neuron's netlist takes one value, "
            f"not an array of shape {rows.shape}"
        )
    if rows > 0:
        lines.append(f"R{prefix}rows {node} 0 {1.0 / float(rows):.12g}")
    return lines


def _rectifier_name(block: DiodeReLU) -> str:
    """U1's subcircuit: "opamp", or "rectifier" on its own low rail."""
    return "opamp" if block.rectifier_rail_low is None else "rectifier"


def _rectifier_subcircuit(block: DiodeReLU) -> list[str]:
    """U1's own subcircuit where it has one (``DiodeReLU.rectifier_rail_low``);
    :func:`simulate_netlist` then takes its op-amp as ``{"rectifier": ...}``."""
    if not block.super_diode or block.rectifier_rail_low is None:
        return []
    return [opamp_subcircuit(block.rectifier, "rectifier")]


def diode_relu_netlist(block: DiodeReLU, inputs, t_end: float, t_step: float) -> str:
    """ReLU + limiter, plain or super-diode variant, driven by a step of ``inputs[0]``."""
    lines = ["* memjax DiodeReLU", diode_model(block.diode)]
    if block.super_diode:
        lines.append(opamp_subcircuit(block.opamp))
    lines += _rectifier_subcircuit(block)
    lines += _sources(inputs[:1]) + _diode_relu_body(block, "in0")
    return _finish(lines, t_end, t_step)


def diode_clamp_netlist(block: DiodeClamp, inputs, t_end: float, t_step: float) -> str:
    """The precision symmetric limiter driven by a step of ``inputs[0]``."""
    lines = ["* memjax DiodeClamp", diode_model(block.diode), opamp_subcircuit(block.opamp)]
    driver = "opamp"
    if block.driver_swing is not None:  # U1 on its own supply
        driver = "driver"
        lines.append(opamp_subcircuit(block.driver, driver))
    lines += _sources(inputs[:1])
    lines += [
        f"Vhi hi 0 DC {block.clamp_reference:.12g}",
        f"Vlo lo 0 DC {-block.clamp_reference:.12g}",
        f"XU1 in0 o y1 {driver}",
        f"Rs y1 o {block.series_resistance:.12g}",
        "XU2 hi o y2 opamp",
        "D2 o y2 dmod",
        "XU3 lo o y3 opamp",
        "D3 y3 o dmod",
        *_node_load(block, "o", ""),
    ]
    return _finish(lines, t_end, t_step)


def kernel_relu_netlist(chain, inputs, t_end: float, t_step: float) -> str:
    """A :class:`~memjax.circuits.chain.Chain` of a PairKernel and a DiodeReLU: one neuron."""
    kernel, relu = chain.blocks
    if relu.opamp is not None and relu.opamp != kernel.opamp:
        raise MemjaxError(
            "kernel_relu_netlist: the ReLU's op-amp differs from the kernel's (e.g. a bounded "
            "ReLU supply); one op-amp subcircuit serves both here: export them apart"
        )
    m = len(np.asarray(inputs))
    lines = [
        "* memjax kernel + ReLU/limiter",
        opamp_subcircuit(kernel.opamp),
        *_difference_subcircuit(kernel),
        *_rectifier_subcircuit(relu),
        diode_model(relu.diode),
    ]
    lines += _sources(inputs) + _pair_kernel_body(kernel, [f"in{i}" for i in range(m)], "k")
    lines += _diode_relu_body(relu, "kyo", "r")
    return _finish(lines, t_end, t_step)


def two_layer_netlist(first: list, second: list, inputs, t_end: float, t_step: float) -> str:
    """A small network of :class:`~memjax.circuits.chain.Chain` neurons (each a PairKernel
    and a DiodeReLU): every ``first`` neuron reads ``inputs``; every ``second`` neuron reads
    the first layer's outputs on its rows, which those outputs drive themselves (the cells,
    not a stand-in: the first layer's ``row_conductance`` is left out here, as the rows are
    there). Output nodes r{i}o (first layer) and t{j}o (second)."""
    kernel, relu = first[0].blocks
    for chain in (*first, *second):
        other_kernel, other = chain.blocks
        if other_kernel.opamp != kernel.opamp or other.opamp not in (None, kernel.opamp):
            raise MemjaxError("two_layer_netlist: one op-amp subcircuit serves every block")
        if other_kernel.output_swing is not None or other.rectifier_rail_low is not None:
            raise MemjaxError(
                "two_layer_netlist: a kernel's difference stage or a rectifier on its own "
                "supply (PairKernel.output_swing, DiodeReLU.rectifier_rail_low) is exported "
                "by the one-neuron netlists, not here"
            )
        if other.diode != relu.diode:
            raise MemjaxError("two_layer_netlist: one diode model serves every block")
    for j, chain in enumerate(second):
        rows = chain.blocks[0].conductances.positive.shape[-1] - 1
        if rows != len(first):
            raise MemjaxError(
                f"two_layer_netlist: second[{j}] has {rows} rows for {len(first)} first-layer "
                "outputs"
            )
    lines = ["* memjax two-layer network", opamp_subcircuit(kernel.opamp), diode_model(relu.diode)]
    lines += _sources(inputs)
    rows = [f"in{i}" for i in range(len(np.asarray(inputs)))]
    for i, chain in enumerate(first):
        kernel, relu = chain.blocks
        relu = eqx.tree_at(lambda r: r.row_conductance, relu, 0.0)
        lines += _pair_kernel_body(kernel, rows, f"k{i}") + _diode_relu_body(
            relu, f"k{i}yo", f"r{i}"
        )
    outputs = [f"r{i}o" for i in range(len(first))]
    for j, chain in enumerate(second):
        kernel, relu = chain.blocks
        lines += _pair_kernel_body(kernel, outputs, f"s{j}") + _diode_relu_body(
            relu, f"s{j}yo", f"t{j}"
        )
    return _finish(lines, t_end, t_step)


def diode_max_pool_netlist(block: DiodeMaxPool, inputs, t_end: float, t_step: float) -> str:
    """Diode-OR or super-diode max pooling of ``inputs``."""
    lines = ["* memjax DiodeMaxPool", diode_model(block.diode)]
    lines += _sources(inputs)
    if block.super_diode:
        lines.append(opamp_subcircuit(block.opamp))
    for i in range(block.count):
        if block.super_diode:
            lines += [
                f"XU{i} in{i} o y{i} opamp",
                f"D{i} y{i} a{i} dmod",
                f"Rs{i} a{i} o {block.series_resistance:.12g}",
            ]
        else:
            lines.append(f"D{i} in{i} o dmod")
    lines += _node_load(block, "o", "")
    if block.node_capacitance:
        lines.append(f"Co o 0 {block.node_capacitance:.12g}")
    return _finish(lines, t_end, t_step)


def _finish(lines: list[str], t_end: float, t_step: float) -> str:
    diodes = [line.split()[0].lower() for line in lines if line[:1] == "D"]
    if diodes:  # device currents are saved only on request
        lines.append(".save all " + " ".join(f"@{d}[id]" for d in diodes))
    lines += [
        # memjax's diode is at 300 K: the model's nominal temperature too, so IS is not rescaled
        ".options temp=26.85 tnom=26.85",
        ".options reltol=1e-6 abstol=1e-15 vntol=1e-9 method=gear maxord=2",
        f".tran {t_step:.6g} {t_end:.6g} 0 {t_step:.6g} uic",
        ".end",
    ]
    return "\n".join(lines) + "\n"


def ngspice_available() -> bool:
    return shutil.which("ngspice") is not None


def run_ngspice(netlist: str, vectors: list[str], timeout: float = 600.0) -> dict:
    """Run a transient netlist in batch mode; returns {"time": ..., vector: ...} as arrays."""
    if not ngspice_available():
        raise MemjaxError("ngspice is not installed (Debian: apt-get install ngspice)")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        data = folder / "out.txt"
        control = "\n".join(
            [
                ".control",
                "set wr_singlescale",
                "set wr_vecnames",
                "option numdgt=12",
                "run",
                f"wrdata {data} {' '.join(vectors)}",
                "quit",
                ".endc",
            ]
        )
        circuit = netlist.replace("\n.end\n", f"\n{control}\n.end\n")
        path = folder / "circuit.cir"
        path.write_text(circuit)
        result = subprocess.run(
            ["ngspice", "-b", str(path)], capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0 or not data.exists():
            tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
            raise MemjaxError(f"ngspice failed on {path.name}: {' | '.join(tail)}")
        table = np.loadtxt(data, skiprows=1)
    columns = {"time": table[:, 0]}
    for i, name in enumerate(vectors):
        columns[name] = table[:, 1 + i]
    return columns


def simulate_netlist(netlist: str, amp: OpAmp | dict[str, OpAmp], outputs: list[str]) -> dict:
    """Run ngspice and compute the power of the run from its own node voltages and currents.
    ``amp``: the op-amp whose rails supply every op-amp instance's output stage, or one per
    subcircuit name (e.g. a clamp's ``driver`` on its own supply).

    Resistors named R<p|m|b>... are memristors (crossbar cells), other R elements resistors
    (including a diode's external series resistor); diodes dissipate V_D I_D;
    each op-amp instance X... dissipates in its class-B output stage (supplies at the rails;
    its static bias power is reported apart, as memjax's blocks do) for the current its
    output source delivers. Resistors named ...rows stand for the crossbar rows a block's
    output drives (:func:`_node_load`): their dissipation is the next stage's, returned apart
    as ``driven_rows``. Returns ``time``, the ``outputs``, ``power`` {memristors, resistors,
    opamps, diodes} and ``driven_rows``, sampled at ngspice's time points.
    """
    resistors, opamps, diodes = [], [], []
    for line in netlist.splitlines():
        parts = line.split()
        if (
            not parts
            or line.startswith((".", "*"))
            or parts[0] in ("Bstate", "Cstate", "Eout", "Rout")
        ):
            continue
        if parts[0][0] == "R":
            resistors.append((parts[0], parts[1], parts[2], float(parts[3])))
        elif parts[0][0] == "X":
            if isinstance(amp, dict) and parts[4] not in amp:
                raise MemjaxError(
                    f"simulate_netlist: no op-amp given for subcircuit {parts[4]!r} "
                    f"(instance {parts[0]}); amp names {sorted(amp)}"
                )
            if not isinstance(amp, dict) and parts[4] != "opamp":
                raise MemjaxError(
                    f"simulate_netlist: instance {parts[0]} uses subcircuit {parts[4]!r}, whose "
                    "rails may differ from the op-amp given; pass amp as {subcircuit: OpAmp}"
                )
            supply = amp[parts[4]] if isinstance(amp, dict) else amp
            opamps.append((parts[0].lower(), parts[3], supply))
        elif parts[0][0] == "D":
            diodes.append((parts[0].lower(), parts[1], parts[2]))
    node = lambda n: "0" if n == "0" else f"v({n})"  # noqa: E731
    vectors = list(outputs)
    for _, a, b, _ in resistors:
        vectors += [node(a) for a in (a, b) if node(a) != "0" and node(a) not in vectors]
    for name, out, _ in opamps:
        vectors += [f"i(e.{name}.eout)"] + ([f"v({out})"] if f"v({out})" not in vectors else [])
    for name, a, k in diodes:
        vectors += [f"@{name}[id]"] + [
            node(n) for n in (a, k) if node(n) != "0" and node(n) not in vectors
        ]
    data = run_ngspice(netlist, vectors)
    voltage = lambda n: 0.0 if n == "0" else data[f"v({n})"]  # noqa: E731
    memristors = resistors_power = rows = 0.0
    for name, a, b, r in resistors:
        power = (voltage(a) - voltage(b)) ** 2 / r
        if name.endswith("rows"):
            rows = rows + power
        elif name[:2] in ("Rp", "Rm", "Rb"):
            memristors = memristors + power
        else:
            resistors_power = resistors_power + power
    opamp_power = 0.0
    for name, out, supply in opamps:
        y, i_out = voltage(out), -data[f"i(e.{name}.eout)"]
        high, low = supply.rail_high, supply.rail_low
        stage = np.where(i_out > 0, (high - y) * i_out, (y - low) * -i_out)
        opamp_power = opamp_power + stage
    diode_power = sum((voltage(a) - voltage(k)) * data[f"@{name}[id]"] for name, a, k in diodes)
    zeros = np.zeros_like(data["time"])
    return {
        "time": data["time"],
        **{name: data[name] for name in outputs},
        "power": {
            "memristors": memristors + zeros,
            "resistors": resistors_power + zeros,
            "opamps": opamp_power + zeros,
            "diodes": diode_power + zeros,
        },
        "driven_rows": rows + zeros,
    }


def vteam_write_netlist(block, amplitude, start, width, rise, t_end, t_step) -> str:
    """A :class:`~memjax.circuits.disturb.WriteCircuit` with a VTEAM device as a behavioural
    subcircuit: the state x is the voltage of a 1 nF capacitor charged at dx/dt (scaled by
    1e-9 A per 1/s), the device a B source drawing i(x, v)."""
    from memjax.devices.memristor import VTEAM

    d = block.device
    if not isinstance(d, VTEAM) or d.iv != "linear" or d.window_p:
        raise MemjaxError("vteam_write_netlist: a linear-I-V VTEAM device without window")
    rate = (
        f"(-{d.k_off:.12g}*pow(max(v(m)/{d.v_off:.12g}-1,0),{d.alpha_off:.12g})"
        f"-({d.k_on:.12g})*pow(max(v(m)/({d.v_on:.12g})-1,0),{d.alpha_on:.12g}))"
    )
    held = f"((v(x)>=1 && {rate}>0) || (v(x)<=0 && {rate}<0)) ? 0 : {rate}"
    lines = [
        "* memjax WriteCircuit, VTEAM",
        f"Vs s 0 PULSE(0 {amplitude:.12g} {start:.12g} {rise:.12g} {rise:.12g} {width:.12g} 1)",
        f"Rs s m {block.series_resistance:.12g}",
        f"Bm m 0 I=v(m)/({d.r_on:.12g}*v(x)+{d.r_off:.12g}*(1-v(x)))",
        f"Bx 0 x I=1e-9*({held})",
        f"Cx x 0 1e-9 IC={block.initial:.12g}",
    ]
    return _finish(lines, t_end, t_step)
