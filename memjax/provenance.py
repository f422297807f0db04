"""Where a result came from: the command that produced it and the code version it ran.

Every JSON result that the README quotes records this record, so that a number can be traced
to one commit and one command line, and a run resumed under another commit says so.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import shlex
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
SOURCES = ("memjax", "experiments", "pyproject.toml")
"""What results depend on: a tracked change there makes the tree dirty (tests, benchmarks
and documents do not)."""


def code_version() -> dict:
    """``{"commit": hash or None, "dirty": bool or None}`` of the memjax source tree: the
    commit checked out and whether tracked files of :data:`SOURCES` differ from it (a dirty
    tree's results are not reproducible from the commit alone). None where the source is not
    a git checkout."""
    try:
        commit = _git("rev-parse", "HEAD")
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no", "--", *SOURCES))
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


_COMMAND: list[str] | None = None


def record_command(argv: list[str]) -> None:
    """Remember the command line of this process's ``memjax`` command (``memjax.cli.main``
    may be called with its own arguments, which ``sys.argv`` does not hold)."""
    global _COMMAND
    _COMMAND = ["memjax", *argv]


def provenance(argv: list[str] | None = None) -> dict:
    """The command line (``memjax ...`` or ``python script ...``), the code version and the
    UTC time, for a result's JSON."""
    if argv is None:
        argv = _COMMAND if _COMMAND is not None else sys.argv
    argv = list(argv)
    program = Path(argv[0]).name if argv else "python"
    if program in ("memjax", "__main__.py"):
        command = ["memjax", *argv[1:]]
    else:
        command = ["python", *argv]
    return {
        "command": shlex.join(command),
        **code_version(),
        "utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "packages": installed_versions(),
        "cpus": os.cpu_count(),
    }


TIMED_PACKAGES = ("jax", "jaxlib", "equinox", "diffrax", "flax")
"""The packages whose versions set what a result's seconds mean (XLA's compiler comes with
jaxlib): recorded beside every result, as a run's time cannot be compared without them."""


def installed_versions() -> dict:
    """``{package: version or None}`` of :data:`TIMED_PACKAGES`."""
    versions = {}
    for name in TIMED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPOSITORY), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
