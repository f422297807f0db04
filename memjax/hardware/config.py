"""Every physical choice of a memristive ShuffleNetV2 in one record, with named presets.

The paper (Wang et al., IEEE TCAD 2021) publishes the circuit structure but not the device
parameters, V_p, the op-amp model or the diode (physics notes, section 1); the "paper" preset
fills them with stated assumptions, listed in :data:`PAPER_ASSUMPTIONS`.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from memjax.circuits import ConductanceMapping
from memjax.devices import Diode, OpAmp
from memjax.devices.validation import (
    require_choice,
    require_non_negative,
    require_ordered,
    require_positive,
)
from memjax.errors import MemjaxError


@dataclasses.dataclass(frozen=True)
class HardwareConfig:
    """The physical description of the memristive network.

    Attributes:
        v_p: memristor threshold voltage V_p, V: the ReLU's limiter level, the largest
            activation and input voltage. Network activations map onto volts at
            V_p / activation_limit per unit.
        g_min: lowest programmable memristor conductance 1 / R_off, S.
        g_max: highest programmable memristor conductance 1 / R_on, S.
        levels: programmable conductance levels (0: a continuum; 256 for 8 bits).
        bias_voltage: reference driving the crossbars' bias rows and the MBN bias, V.
        opamp: the op-amp of every stage.
        difference_gain: gain g of each kernel's difference stage (R_f = k / g).
        difference_resistance: R_d, ohm: the difference stage's input resistors (its feedback
            and ground resistors are g R_d). It loads the two TIAs and dissipates in every
            kernel; it does not change the steady state.
        diode: the diodes of the ReLU, limiter and max pool.
        relu: "plain" diode rectifier (the literal "ReLU by diode") or "super" diode (op-amp
            precision rectifier, no forward drop).
        limiter: the output limiter at V_p behind the ReLU: "diode" (a diode from the output to
            the reference V_p - V_D: the paper's "output limiter ... implemented by diode") or
            "active" (an op-amp drives that diode to hold the output at V_p exactly; super
            ReLU only).
        max_pool: "plain" diode-OR or "super" diodes.
        relu_load_resistance: R_L of each ReLU, clamp and max-pool output node, ohm: a
            resistor from the node to ground (with ``row_drive`` "ideal", the stand-in for
            everything the node drives).
        row_drive: how an activation reaches the rows of the crossbars that read it.
            "direct": the node drives them itself; each ReLU, clamp and max-pool node carries
            the conductance of every row it feeds, from the network's wiring and the cells'
            conductances now (``memjax.hardware.loads``), in parallel with R_L, in the steady
            state, the operating point and the transient alike, and the average pool's
            op-amps (any op-amp output that drives rows) supply their current (needs
            ``dc_transfer``
            "exact": a table cannot follow a node's rows across the kink where its driver
            reaches a rail, measured 3.8 mV off at V_p = 0.1 V with 8 load rows per decade,
            2026-12-06; and ``max_pool`` "super": a diode-OR would pass unit 0's rows
            through its diodes to the stem, which the blocks do not model). The bounded
            supplies are sized for R_L and ``supply_load_conductance`` and a diode limiter's
            reference for R_L alone, so with rows a heavily loaded node may not reach V_p
            unless ``supply_load_conductance`` covers its rows. "ideal", a stated assumption
            (until 2026-12-06 the only model): the rows are held at the node's voltage by
            ideal drivers, so the node sees R_L alone and the rows' current comes from
            nothing the power reports count (their memristors' dissipation is counted in
            their crossbar either way).
        relu_series_resistance: resistance in series with each ReLU / super-diode D1 and
            with each clamp's driver U1, ohm.
        relu_supply: the positive supply of a super-diode ReLU's op-amps (U1, and U2 of an
            active limiter): "shared", the op-amp's ``rail_high``; "bounded",
            :attr:`relu_rail_high`, V_p plus what D1 and the series resistances drop at the
            load's current V_p / R_L, so that the rectifier cannot lift its output above V_p
            while the limiter is still swinging in from its rail (measured 2026-12-06, the
            calibrated input layer on an 8x8 crop: peak output 0.186 V shared, 0.1003 V
            bounded; README, "Memristors within V_p during inference"). Super ReLU only.
        relu_low_rail: the negative supply of a super-diode ReLU's rectifier U1
            (``DiodeReLU.rectifier_rail_low``): "shared", the op-amp's ``rail_low``;
            "ground", 0 V (U1 a single-supply op-amp with rail-to-rail input and output; U2
            keeps the op-amp's rail_low; the max pool's super diodes are not changed). Needs
            ``preactivation_supply`` "bounded": U1's input then stays within -V_p, a tenth
            of a volt below its supply, where a rail-to-rail input stage still works (on the
            shared kernel supply it would reach -1 V). U1 rests on this rail while its input is
            negative, and must swing from it to the node plus D1's drop, open loop at 2 pi
            GBW v_in, before D1 conducts: from -1 V ~1.5 V, from 0 V ~0.5 V, so the
            rectifier's dead zone, which sets the tail of every ReLU stage's settling, is
            crossed ~3x sooner. The steady state does not move (U1 on its rail has D1 off
            either way). Super ReLU only.
        clamp_supply: the supply of U1, the driver of each linear stage's clamp
            (``DiodeClamp.driver_swing``): "shared", the op-amp's rails; "bounded", +-(V_p +
            I (R_s + R_o)) with I = V_p (1 / R_L + :attr:`supply_load_conductance`), so that
            U1 on its rail pushes into the clamp's limiters no more than its heaviest node
            takes at V_p (on the shared +-1 V with R_s = 1 kohm it pushes 0.9 mA: 1.8 mW in
            one neuron of unit 3's depthwise stage, measured 2026-12-06). U2 and U3 stay on
            the shared rails.
        supply_load_conductance: conductance besides R_L that the bounded supplies
            (``relu_supply``, ``clamp_supply``) are sized to hold at V_p, S (0: R_L alone).
            With ``row_drive`` "direct" a ReLU or clamp also drives its rows, and a supply
            sized for R_L alone leaves a heavily loaded node short of V_p (measured
            2026-12-06: 0 of 36 of the calibrated preset's ReLU stages hold 99 % of V_p).
            Set it to the network's heaviest row load
            (:func:`memjax.hardware.loads.heaviest_row_load`) so that every node reaches
            V_p; a lighter node's driver then sits on its rail and the limiter takes the
            difference, which its power counts (with "ideal" rows every node is such a
            lighter one). One value sizes both supplies: the clamps' for the heavier of the
            two kinds' nodes. Bounded supplies only.
        preactivation_supply: the supply of the difference stage of every kernel that feeds a
            ReLU or a clamp (``PairKernel.output_swing``): "shared", the op-amp's rails;
            "bounded", +-V_p, so that no pre-activation leaves +-V_p. A rectifier or clamp
            driver following its input then cannot lift its node above V_p while its limiter
            swings in, whatever the node's load; the steady state is unchanged (a ReLU and its
            limiter, or a clamp, map clip(v, -V_p, V_p) as they map v). With ``row_drive``
            "direct" the bounded ReLU supply is sized for the heaviest node, and a lighter
            node's D1 drops less (n V_T ln of the load ratio): on the shared supply the
            calibrated design's nodes reached 0.158 V at V_p = 0.1 V in the transient
            (measured 2026-12-06, central 8x8 pixels of the main job's image). The TIAs keep
            the shared rails. Needs ``batch_norm`` "folded" (a separate MBN, not the
            kernel, feeds the ReLU) and a super-diode ReLU with an active limiter. An op-amp
            on a 2 V_p supply with its output reaching its rails is a guess (rail-to-rail
            output stage; the op-amp model's rail softness, 0.01 V, is 10 % of V_p = 0.1 V).
        batch_norm: "separate" (an MBN stage after each convolution) or "folded" into the
            kernels and their bias rows (``convert`` folds a model's batch norm for it;
            a model trained folded needs "folded").
        topology: "proposed" (M+1)x2 or "original" (2M+1)x1 kernels.
        dc_transfer: how the whole-network steady state evaluates the ReLUs and clamps:
            "table" interpolates their exact steady-state curve sampled once on a fine grid
            (error measured at build time, ~3e-5 V), "exact" solves every neuron's node.
        bitline_capacitance: capacitance to ground of every node where memristors meet an
            op-amp's input, F (0: algebraic nodes): each crossbar bit line (its cells, wire
            and the TIA's input) and each MBN and average-pool summing node. It slows the
            transient (the node's pole against its conductances, in series with the
            op-amp's) and leaves every steady state unchanged. The difference stages' and
            the diode blocks' nodes stay algebraic (their resistors are fixed, not
            memristors).
        wire_resistance: bit-line wire resistance between adjacent cells, ohm (0 here: a
            chip's wires are ``ChipVariation.wire_resistance``).
    """

    v_p: float = 1.0
    g_min: float = 1e-6
    g_max: float = 1e-4
    levels: int = 0
    bias_voltage: float = 1.0
    opamp: OpAmp = OpAmp()
    difference_gain: float = 4.0
    difference_resistance: float = 10e3
    diode: Diode = Diode.d1n4148()
    relu: Literal["plain", "super"] = "super"
    limiter: Literal["active", "diode"] = "active"
    max_pool: Literal["plain", "super"] = "super"
    relu_load_resistance: float = 10e3
    relu_series_resistance: float = 1e3
    relu_supply: Literal["shared", "bounded"] = "shared"
    relu_low_rail: Literal["shared", "ground"] = "shared"
    clamp_supply: Literal["shared", "bounded"] = "shared"
    supply_load_conductance: float = 0.0
    preactivation_supply: Literal["shared", "bounded"] = "shared"
    row_drive: Literal["ideal", "direct"] = "ideal"
    batch_norm: Literal["separate", "folded"] = "separate"
    topology: Literal["proposed", "original"] = "proposed"
    dc_transfer: Literal["table", "exact"] = "table"
    bitline_capacitance: float = 0.0
    wire_resistance: float = 0.0

    def __post_init__(self):
        owner = "HardwareConfig"
        for name in (
            "v_p",
            "bias_voltage",
            "difference_gain",
            "difference_resistance",
            "relu_load_resistance",
        ):
            require_positive(owner, name, getattr(self, name))
        require_positive(owner, "relu_series_resistance", self.relu_series_resistance)
        require_ordered(owner, "g_min", self.g_min, "g_max", self.g_max)
        choices = {
            "relu": ("plain", "super"),
            "limiter": ("active", "diode"),
            "max_pool": ("plain", "super"),
            "batch_norm": ("separate", "folded"),
            "topology": ("proposed", "original"),
            "dc_transfer": ("table", "exact"),
            "relu_supply": ("shared", "bounded"),
            "relu_low_rail": ("shared", "ground"),
            "clamp_supply": ("shared", "bounded"),
            "preactivation_supply": ("shared", "bounded"),
            "row_drive": ("ideal", "direct"),
        }
        for name, allowed in choices.items():
            require_choice(owner, name, getattr(self, name), allowed)
        if self.row_drive == "direct" and self.max_pool == "plain":
            raise MemjaxError(
                f"{owner}.max_pool: a diode-OR pool carries unit 0's rows through its diodes "
                "out of the stem's ReLUs, a load the blocks do not model; row_drive='direct' "
                "needs max_pool='super'"
            )
        if self.preactivation_supply == "bounded" and self.batch_norm != "folded":
            raise MemjaxError(
                f"{owner}.preactivation_supply: bounds the kernel's difference stage, which "
                "feeds the ReLU only with batch_norm='folded' (a separate MBN stage sits "
                "between)"
            )
        if self.preactivation_supply == "bounded" and (
            self.relu != "super" or self.limiter != "active"
        ):
            raise MemjaxError(
                f"{owner}.preactivation_supply: a kernel on +-V_p leaves the steady state "
                "unchanged only for a super-diode ReLU with an active limiter (a plain ReLU's "
                "or a diode limiter's level depends on how far its driver can push); got "
                f"relu={self.relu!r}, limiter={self.limiter!r}"
            )
        if self.row_drive == "direct" and self.dc_transfer == "table":
            raise MemjaxError(
                f"{owner}.dc_transfer: a table holds one curve per node kind, for R_L alone; "
                "row_drive='direct' loads every node with its own rows: use dc_transfer='exact'"
            )
        if self.relu == "plain" and self.limiter == "active":
            raise MemjaxError(
                f"{owner}.limiter: an active limiter behind a plain diode ReLU is not built; "
                "use limiter='diode' (or relu='super')"
            )
        reference = self.limiter_reference if self.limiter == "diode" else None
        if reference is not None and reference <= 0.0:
            raise MemjaxError(
                f"{owner}.limiter: a diode limiter at v_p = {self.v_p} V needs its reference at "
                f"V_p - V_D = {reference:.3f} V, below 0 V, where it would conduct "
                "at a 0 V output; use limiter='active' (or a larger v_p)"
            )
        require_non_negative(owner, "supply_load_conductance", self.supply_load_conductance)
        if self.supply_load_conductance and "bounded" not in (
            self.relu_supply,
            self.clamp_supply,
        ):
            raise MemjaxError(
                f"{owner}.supply_load_conductance: sizes the bounded supplies; neither "
                "relu_supply nor clamp_supply is bounded"
            )
        if self.bitline_capacitance < 0 or self.wire_resistance < 0:
            raise MemjaxError(f"{owner}: bitline_capacitance and wire_resistance must be >= 0")
        if self.v_p > min(self.opamp.rail_high, -self.opamp.rail_low):
            raise MemjaxError(
                f"{owner}.v_p = {self.v_p} V lies beyond the op-amp rails "
                f"({self.opamp.rail_low}, {self.opamp.rail_high}) V"
            )
        swing = self.clamp_driver_swing
        if swing is not None and swing > min(self.opamp.rail_high, -self.opamp.rail_low):
            raise MemjaxError(
                f"{owner}.clamp_supply: the bounded clamp supply +-{swing:.3f} V (V_p + I "
                "(R_s + R_o), I from relu_load_resistance and supply_load_conductance) lies "
                f"beyond the op-amps' rails ({self.opamp.rail_low}, {self.opamp.rail_high}) V"
            )
        if self.relu_supply == "bounded" and self.relu != "super":
            raise MemjaxError(
                f"{owner}.relu_supply: a bounded supply is for a super-diode ReLU's op-amps; "
                f"relu={self.relu!r} has none"
            )
        if self.relu_low_rail == "ground" and self.relu != "super":
            raise MemjaxError(
                f"{owner}.relu_low_rail: the negative supply of a super-diode ReLU's "
                f"rectifier U1; relu={self.relu!r} has none"
            )
        if self.relu_low_rail == "ground" and self.preactivation_supply != "bounded":
            raise MemjaxError(
                f"{owner}.relu_low_rail: a rectifier on 0 V takes its input only down to "
                "about -V_p (rail-to-rail input); needs preactivation_supply='bounded' (the "
                "kernel on +-V_p), else its input reaches the op-amps' low rail"
            )
        if self.relu_supply == "bounded" and self.relu_rail_high > self.opamp.rail_high:
            raise MemjaxError(
                f"{owner}.relu_supply: the bounded ReLU supply {self.relu_rail_high:.3f} V "
                f"lies above the op-amps' rail_high {self.opamp.rail_high} V"
            )

    @property
    def limiter_reference(self) -> float:
        """The reference of a diode limiter, V: V_p less the diode's forward voltage at the
        largest current the limiter must take, so that the ReLU's output never exceeds V_p.

        That current: the ReLU's driver (the stage's op-amp for a plain ReLU, U1 for a super
        diode) at its positive rail, pushing through D1 and the series resistance into the
        node held at V_p, less the load's V_p / R_L. (Until 2026-12-05 the reference used the
        load's current alone, 100 uA at 1 V and 10 kohm: 0.520 V against 0.425 V now; the
        rail drives ~0.8 mA, so outputs could reach V_p + n V_T ln 8 ~ 1.09 V.) The driver's
        output resistance is left out (the series resistance of ~1 kohm dominates).
        """
        diode = self.diode
        series = self.relu_series_resistance
        rail = self.opamp.rail_high
        if self.relu == "super":
            series = series + self.opamp.output_resistance
            rail = self.relu_rail_high
        drive = float(diode.current_through(rail - self.v_p, series))
        current = max(drive - self.v_p / self.relu_load_resistance, 0.0)
        return self.v_p - float(diode.voltage_at(current))

    @property
    def relu_rail_high(self) -> float:
        """The positive supply of a super-diode ReLU's op-amps, V: the op-amp's ``rail_high``
        when ``relu_supply`` is "shared"; when "bounded", V_p + V_D(I_L) + I_L (R_s + R_o)
        with I_L = V_p (1 / R_L + :attr:`supply_load_conductance`), the highest output U1
        needs to hold its node at V_p against that load (D1's forward voltage at that
        current, the series resistor and the op-amp's output resistance). On that supply
        the node cannot exceed V_p at any time; the limiter (which then only has to take
        what U1 pushes beyond the load) still sets the level at steady state."""
        if self.relu_supply == "shared":
            return self.opamp.rail_high
        current = self._sized_current
        return self.v_p + float(self.diode.voltage_at(current)) + current * self._driver_series

    @property
    def clamp_driver_swing(self) -> float | None:
        """U1's rails of a linear stage's clamp, +-V, or None on the shared supply
        (``clamp_supply``): V_p + I (R_s + R_o), I = V_p (1 / R_L + supply load)."""
        if self.clamp_supply == "shared":
            return None
        return self.v_p + self._sized_current * self._driver_series

    @property
    def _sized_current(self) -> float:
        """What a bounded supply is sized to drive at V_p, A: R_L and the supply load."""
        return self.v_p * (1.0 / self.relu_load_resistance + self.supply_load_conductance)

    @property
    def _driver_series(self) -> float:
        """From a driver's state to its node, ohm: the series resistor and the op-amp's
        output resistance."""
        return self.relu_series_resistance + self.opamp.output_resistance

    @property
    def relu_opamp(self) -> OpAmp:
        """The op-amp of a super-diode ReLU (U1, U2): :attr:`opamp` on
        :attr:`relu_rail_high`."""
        if self.relu_supply == "shared":
            return self.opamp
        return dataclasses.replace(self.opamp, rail_high=self.relu_rail_high)

    @property
    def mapping(self) -> ConductanceMapping:
        return ConductanceMapping(self.g_min, self.g_max, self.bias_voltage, self.levels)

    def replace(self, **changes) -> HardwareConfig:
        return dataclasses.replace(self, **changes)


PAPER_ASSUMPTIONS = {
    "v_p": "1.0 V. Paper: names V_p as the memristor threshold the limiter clamps to, no value. "
    "Guess: the order of common bipolar oxide thresholds. Physics notes section 4: 137 ns and "
    "2.8 uW fit together only at V_p ~ 0.1-0.2 V, so this is not the paper's operating point",
    "g_min, g_max": "1 uS .. 100 uS (R_off 1 Mohm, R_on 10 kohm). Paper: not published. Guess",
    "levels": "256 (8 bits). Sibling paper (Ran et al., TNNLS 2022): 2^8 states with 8-bit data "
    "was their best power/accuracy trade-off",
    "opamp": "A0 1e5, GBW 1 GHz, slew 1 V/ns, rails +-2.5 V. Paper: not "
    "published; the group simulated in Simulink (their FCN and CKFO papers), whose stock op-amp "
    "is ideal. Guess: 137 ns over ~50 stages needs GBW of the order of 1 GHz (physics notes, "
    "section 4). Bias power: the estimate from GBW (OpAmp.bias_power, 0.5 mW each at 1 GHz "
    "into 50 fF), reported apart; the paper's 2.8 uW per neuron cannot include it",
    "diode": "1N4148-like Shockley diode (I_s 2.52 nA, n 1.752, R_s 0.568 ohm). Paper: 'diode', "
    "no model. Guess: the common SPICE small-signal diode",
    "relu": "super: an op-amp precision rectifier. Paper: 'an output limiter circuit is added "
    "behind the ReLU layer implemented by diode'; sibling paper: 'a diode is added after the ReLU "
    "layer to limit the output below the threshold voltage'. Read together: the limiter is the "
    "diode, the ReLU an active circuit; which active circuit is a guess (physics notes, "
    "section 1). The literal plain-diode ReLU is the ablation paper_plain_diode_relu",
    "limiter": "diode: one diode from the ReLU output to the reference V_p - V_D (the V_D of the "
    "largest current it must take: the output never exceeds V_p). Paper and sibling paper: a "
    "diode limiter at the threshold; the reference's circuit is a guess",
    "max_pool": "super diodes, a stand-in. The group's memristive FCN built max pooling from "
    "'voltage selectors' (schematic not known); a super-diode max computes max v_i exactly as "
    "an ideal selector does",
    "batch_norm": "separate MBN stages (op-amp + memristors), as the paper's unit kinds name",
    "bitline_capacitance, wire_resistance": "none (0). Paper: not published",
    "bias_voltage": "1.0 V, the reference of the bias rows and the MBN bias. Not published. Guess",
    "difference_gain": "4 (R_f = k / g). Not published. Guess",
    "difference_resistance": "10 kohm (R_d; g R_d = 40 kohm). Not published. Guess",
    "topology": "proposed (M+1)x2 kernels with the inverter behind the crossbar: the paper's "
    "contribution, stated in its abstract",
    "relu_load_resistance, relu_series_resistance": "10 kohm, 1 kohm. Not published. Guess",
    "relu_supply": "shared: the ReLU's op-amps on the rails of every other op-amp. Not "
    "published (the group's Simulink op-amps have no rails). Guess",
    "relu_low_rail": "shared: the rectifiers' U1 on the negative rail of every other op-amp. "
    "Not published (Simulink's op-amps have no rails). Guess",
    "clamp_supply": "shared: the clamps' drivers on the rails of every other op-amp. The "
    "clamps are a reconstruction (the paper names only the ReLU's limiter). Guess",
    "supply_load_conductance": "0 S: unused on the shared supplies",
    "preactivation_supply": "shared: every kernel's difference stage on the rails of every "
    "other op-amp. Not published (Simulink's op-amps have no rails). Guess",
    "row_drive": "ideal: the next crossbar's rows held at each activation's voltage by ideal "
    "drivers, the node loaded by R_L alone. Not published (the group's Simulink blocks "
    "pass signals between layers without loading). A stated assumption: at the rows' real "
    "conductance (up to ~44 mS per node at these memristors) the ReLUs as built here do not "
    "hold V_p (README, 'What each activation drives')",
}
"""For each field of the "paper" preset: what the paper, its sibling papers and the physics
notes support, and what is a guess."""


def paper() -> HardwareConfig:
    """The paper's design (Wang et al., IEEE TCAD 2021) in its consistent reading: an active
    ReLU (op-amp precision rectifier) followed by a diode output limiter at V_p, super-diode
    max pooling, separate MBN stages; the rest as :data:`PAPER_ASSUMPTIONS` lists."""
    return HardwareConfig(
        levels=256, relu="super", limiter="diode", max_pool="super", batch_norm="separate"
    )


def paper_plain_diode_relu() -> HardwareConfig:
    """The literal reading of "ReLU by diode", an ablation: a plain diode as the ReLU (with the
    diode limiter behind it) and a diode-OR max pool, else as :func:`paper`. The diodes'
    forward drop removes every activation below ~0.4 V, so a model trained for a clamped ReLU
    does not classify through it (physics notes, section 1); circuit-aware training
    (``memjax train --circuit paper_plain_diode_relu``) trains through it, so far without a
    recipe that converges (README)."""
    return paper().replace(relu="plain", max_pool="plain")


def paper_super_diodes() -> HardwareConfig:
    """The paper preset with an active limiter (an op-amp drives the limiter diode, holding
    the output at V_p exactly, no soft knee): every nonlinear stage an op-amp super diode."""
    return paper().replace(limiter="active")


CALIBRATED_ASSUMPTIONS = {
    "v_p, bias_voltage": "0.1 V. Physics notes section 4: 137 ns and 2.8 uW fit together only "
    "at V_p ~ 0.1-0.2 V. Every signal, the bias rows and the MBN bias scale with V_p, so the "
    "steady state in network units is the paper preset's",
    "g_min, g_max": "10 nS .. 1 uS (R_off 100 Mohm, R_on 1 Mohm), the paper preset's ratio of "
    "100. Chosen so that the busiest neuron's DC power (operating_point, the shipped model) "
    "stays below 2.8 uW. Guess (not published)",
    "levels": "256 (8 bits), as the paper preset (sibling paper)",
    "opamp": "A0 1e5, GBW 1 GHz, slew 1 V/ns, rails +-1 V (a 2 V supply): a rectifier's op-amp "
    "must reach V_p + the diode's ~0.48 V at 0.1 uA + the series resistor's drop (at +-0.5 V "
    "the super diodes starved). Bias power reported apart (OpAmp.bias_power: 0.2 mW each at "
    "1 GHz into 50 fF)",
    "diode": "an integrated junction (Diode.integrated: I_s 1e-15 A, n 1): a discrete 1N4148's "
    "2.5 nA leakage is mV through MOhm loads",
    "relu, limiter": "super diode ReLU, active limiter: the diode limiter the paper names needs "
    "V_p well above its knee (several n V_T); at 0.1 V its reference would sit below 0 V and "
    "it would conduct at a 0 V output (HardwareConfig refuses it), so an op-amp drives the "
    "limiting diode",
    "max_pool": "super diodes, as the paper preset",
    "difference_resistance": "1 Mohm (g R_d = 4 Mohm): of the order of the memristors, so "
    "the difference stage dissipates no more than its kernel. Guess",
    "relu_load_resistance, relu_series_resistance": "1 Mohm, 1 Mohm. The series resistor sets "
    "what a limiter takes while the driver sits on its rail, (rail - V_p) / R_s: at 10 kohm "
    "40 uA, 23 uW of diode power in one clamping neuron (measured 2026-12-06). Guess",
    "bitline_capacitance": "0 F: node capacitance at the op-amp inputs left out, as the "
    "group's Simulink models (their FCN and CKFO papers) leave it out. With MOhm memristors "
    "each fF there slows every stage (README: the latency-power front over it)",
    "batch_norm": "folded into the kernels and their bias rows, as the sibling Blaze paper "
    "(Ran et al., TNNLS 2022) built it ('BN folded into the convolution crossbar halves the "
    "op-amp count'); the paper's separate MBN feeds each pre-activation (up to the rails) "
    "across its input and feedback memristors, which V_p then does not bound (measured "
    "0.21 V at V_p = 0.1 V, 2.5-2.7 V in the 1 V presets); folded, every memristor sits "
    "between a row (<= V_p) and a virtual ground",
    "topology": "proposed (M+1)x2 kernels, as the paper preset",
    "relu_supply": "bounded: the ReLU's op-amps on V_p + D1's and the series resistor's drop "
    "at the load's current (0.676 V), so that no output overshoots V_p while the active "
    "limiter swings in from its rail. Measured 2026-12-06 on the main job's image (central "
    "8x8 pixels, 1 us): largest memristor |V| during the transient 0.210 V on the shared "
    "+-1 V supply, 0.1014 V bounded; steady state identical (384 images). Guess: the "
    "group's design is not known to separate the supplies",
}
"""For each field of :func:`paper_calibrated` that differs from :func:`paper`: the value, why,
and what is a guess."""


def paper_calibrated() -> HardwareConfig:
    """The paper's structure at the operating point where 137 ns and 2.8 uW per neuron can
    hold together (physics notes, section 4): signals at V_p = 0.1 V, MOhm memristors and
    resistors, 1 V op-amp supplies, super-diode ReLU with an active limiter on a bounded
    supply; the choices and
    what is guessed are :data:`CALIBRATED_ASSUMPTIONS`."""
    return HardwareConfig(
        v_p=0.1,
        g_min=1e-8,
        g_max=1e-6,
        levels=256,
        bias_voltage=0.1,
        opamp=OpAmp(rail_low=-1.0, rail_high=1.0),
        difference_resistance=1e6,
        diode=Diode.integrated(),
        relu="super",
        limiter="active",
        max_pool="super",
        relu_load_resistance=1e6,
        relu_series_resistance=1e6,
        relu_supply="bounded",
        batch_norm="folded",
    )


CALIBRATED_DRIVEN_ASSUMPTIONS = {
    "row_drive": "direct: every ReLU, clamp and max-pool node drives the rows of the "
    "crossbars it feeds (no ideal row drivers, the assumption :func:`paper_calibrated` "
    "states). Their conductance sets the power: at the calibrated conductances the busiest "
    "neuron takes 78.6 uW with its rows, at 0.03 of them 2.35 uW (measured 2026-12-06, "
    "docs/results/latency_power_front)",
    "g_min, g_max": "0.3 nS .. 30 nS (R_on 33 Mohm, R_off 3.3 Gohm): 0.03 of "
    ":func:`paper_calibrated`'s (the front's centre), so that each node's rows draw ~1.3 uA "
    "at V_p at most and the busiest neuron stays below 2.8 uW with them. High for an "
    "on-state (low-current devices at the edge of what is reported); the front's axis shows "
    "what larger ones cost. Guess",
    "opamp": "GBW 10 GHz (else as paper_calibrated: A0 1e5, slew 1 V/ns, rails +-1 V): "
    "latency ~ 1 / GBW (the rectifiers' dead zone, crossed at 2 pi GBW v_in). With U1 on "
    "-1 V, on whole faces at 4 GHz the argmax settled at 41.5 and 303.6 ns, at 10 GHz at "
    "17.9 and 406.1 ns (faces 583 and 8 of PrivateTest; measured 2026-12-06, "
    "experiments/calibrated_faces.py), the front's 8x8 crop's logits at 351 / 169 / 85 / "
    "37 ns at 1 / 2 / 4 / 10 GHz. A fast, power-hungry op-amp: its bias power is reported "
    "apart (OpAmp.bias_power)",
    "relu_series_resistance": "1 kohm: the driver feeds its rows through it; 1 Mohm would drop "
    "the rows' current far below V_p",
    "dc_transfer": "exact: every node solved with its own rows (a table holds R_L alone)",
    "clamp_supply": "bounded, as relu_supply: each clamp's driver on +-(V_p + I (R_s + R_o)); "
    "on the shared +-1 V a clamp's driver pushes 0.9 mA through 1 kohm into its limiter "
    "(1.8 mW in one neuron, measured 2026-12-06)",
    "supply_load_conductance": "13.1 uS: the heaviest row load of any ReLU or clamp node of "
    "the shipped model at these conductances (memjax.hardware.loads.heaviest_row_load, "
    "48x48 input, measured 2026-12-06), so that every node reaches V_p; a model whose rows "
    "are heavier needs it again (its heaviest nodes would then stop short of V_p, which the "
    "steady state shows)",
    "preactivation_supply": "bounded: every kernel that feeds a ReLU or a clamp on +-V_p (a "
    "guess: an op-amp on a 0.2 V supply whose output reaches its rails). "
    "Sized for the heaviest node, U1's rail lets a lighter node rise above V_p (its D1 drops "
    "n V_T ln of the load ratio less) while the limiter swings in: 0.158 V at V_p = 0.1 V on "
    "the crop (measured 2026-12-06). With the pre-activation within V_p the rectifier, "
    "following it, cannot pass V_p at any load",
    "relu_low_rail": "ground: each rectifier U1 on 0 V .. its bounded rail (a single-supply "
    "op-amp with rail-to-rail input and output, its input down to -V_p; a guess). U1 rests "
    "on its low rail while its input is negative and crosses D1's dead zone open loop at "
    "2 pi GBW v_in: from 0 V it swings ~0.5 V, from -1 V ~1.5 V. On the crop of the main "
    "job's image (measured 2026-12-06, 10 GHz) the logits settled at 9.7 ns instead of "
    "35.2 ns, every layer at 19.6 instead of 92.9 ns, with the same final logits (within "
    "8e-4) and DC power",
}
"""For each field of :func:`paper_calibrated_driven` that differs from
:func:`paper_calibrated`: the value, why, and what is a guess."""


def paper_calibrated_driven() -> HardwareConfig:
    """:func:`paper_calibrated` with every activation driving the rows it feeds (no ideal row
    drivers): the front's centre (README, latency-power front) at 0.03 of the conductances,
    10 GHz op-amps, every supply sized for the rows, every kernel that feeds a ReLU or clamp
    on +-V_p and each rectifier's U1 on a single supply (low rail 0 V). It meets both of the
    paper's headline numbers on the six whole PrivateTest faces measured (2026-12-06, no
    node capacitance): argmax settled at 0-73 ns and logits at 20-77 ns after the input
    step, the busiest neuron at 0.31 uW at DC and 0.24-0.34 uW in the transients, the steady
    state 0.5 points above the software model on 384 images. It rests on nodes without
    capacitance: with 1 fF on every bit line and summing node an 8x8 crop's logits settle at
    226 ns instead of 9.7 ns and its memristors peak at 1.08 V_p (README). What differs and
    why is :data:`CALIBRATED_DRIVEN_ASSUMPTIONS`."""
    base = paper_calibrated()
    return base.replace(
        g_min=base.g_min * 0.03,
        g_max=base.g_max * 0.03,
        opamp=dataclasses.replace(base.opamp, gain_bandwidth=10e9),
        row_drive="direct",
        dc_transfer="exact",
        relu_series_resistance=1e3,
        clamp_supply="bounded",
        supply_load_conductance=13.1e-6,
        preactivation_supply="bounded",
        relu_low_rail="ground",
    )


def near_ideal() -> HardwareConfig:
    """Near-ideal components: continuous conductances, ideal op-amps (A0 1e9, GBW 1e15 Hz)
    and super diodes, so the circuit computes what the software model does."""
    return HardwareConfig(
        opamp=OpAmp.ideal(), relu="super", max_pool="super", levels=0, batch_norm="separate"
    )


PRESETS = {
    "paper": paper,
    "paper_plain_diode_relu": paper_plain_diode_relu,
    "paper_super_diodes": paper_super_diodes,
    "paper_calibrated": paper_calibrated,
    "paper_calibrated_driven": paper_calibrated_driven,
    "near_ideal": near_ideal,
}
