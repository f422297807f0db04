"""ngspice's numbers for the fast lane, stored in tests/data instead of run.

Every comparison with ngspice is two tests. The fast lane (``pytest -m "not slow"``) checks
memjax against the numbers stored here (:func:`stored`); the slow lane runs ngspice on the
same netlist and checks that it still gives them (:func:`live`). Together they are the
comparison with live ngspice, and the fast lane needs no ngspice. Each entry keeps a hash
of the netlist and op-amps it came from, so a change to an exporter or to a test's circuit
fails the fast lane until the numbers are written again, from live ngspice:

    MEMJAX_WRITE_REFERENCES=1 python -m pytest -n 0 -m slow -k live_ngspice
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from memjax.circuits.spice import ngspice_available, run_ngspice, simulate_netlist

PATH = Path(__file__).resolve().parent / "data" / "ngspice_references.json"

LIVE_RTOL = 1e-6
"""How close live ngspice must come to its stored numbers (relative, with ``LIVE_ATOL``).
The same ngspice build reproduces them exactly; the margin is for another build's
rounding, far below every tolerance the stored numbers are held to (1.5e-3 on settling
times, 5e-5 on energies, 5e-7 V on final values)."""
LIVE_ATOL = 1e-12


def _digest(netlist: str, amps) -> str:
    if isinstance(amps, dict):
        amps = sorted(amps.items())
    return hashlib.sha256((netlist + repr(amps)).encode()).hexdigest()[:16]


def _load() -> dict:
    return json.loads(PATH.read_text()) if PATH.exists() else {}


def stored(key: str, netlist: str, amps) -> dict:
    """The numbers ngspice gave for ``key`` (floats, or lists for waveforms), checked to come
    from this ``netlist`` and ``amps`` (the op-amps :func:`simulate_netlist` takes; None for
    a netlist run as it is, :func:`run_ngspice`)."""
    entry = _load().get(key)
    assert entry is not None, f"no stored ngspice numbers for {key!r}: see {__name__}"
    assert entry["digest"] == _digest(netlist, amps), (
        f"{key}: the netlist changed since its ngspice numbers were stored; write them "
        f"again ({__name__}'s docstring)"
    )
    return entry["values"]


def live(key: str, netlist: str, amps, probes: list[str], reduce) -> dict:
    """Run ngspice on ``netlist`` and reduce its run (``reduce(run) -> {name: number or
    array}``); check the numbers against the stored ones, or store them with
    MEMJAX_WRITE_REFERENCES=1 (one process: ``-n 0``). Returns the live numbers."""
    assert ngspice_available(), "ngspice must be installed (.ci/run installs it); never skipped"
    run = run_ngspice(netlist, probes) if amps is None else simulate_netlist(netlist, amps, probes)
    values = reduce(run)
    values = {name: np.asarray(v, float).tolist() for name, v in values.items()}
    if os.environ.get("MEMJAX_WRITE_REFERENCES") == "1":
        references = _load()
        references[key] = {"digest": _digest(netlist, amps), "values": values}
        PATH.write_text(json.dumps(dict(sorted(references.items())), indent=1) + "\n")
        return values
    expected = stored(key, netlist, amps)
    assert sorted(expected) == sorted(values), key
    for name, value in values.items():
        np.testing.assert_allclose(
            value, expected[name], rtol=LIVE_RTOL, atol=LIVE_ATOL, err_msg=f"{key}: {name}"
        )
    return values
