"""A registered machine with timers for the shared-memory tests (issue 21), declared by source
text that a reader in another process runs too (a reader finds a segment's machine in the
registry by its fingerprint)."""

from __future__ import annotations

import pytest

from streamhsm import CompiledMachine

#: Declares and registers ``shm-timed``: Idle -Go-> Busy (a one-shot ``Busy.Timeout`` after
#: 1000 ns back to Idle, a periodic ``beat`` every 300 ns handled in Busy), Busy -Stop-> Idle.
TIMED_SOURCE = '''
from streamhsm import MachineSpec
from streamhsm.registry import known, machine, register


def timed_spec():
    spec = MachineSpec("shm-timed", ["Go", "Tick", "Timeout", "Stop"], initial="Idle")
    spec.state("Idle").state("Busy")
    spec.on("Idle", "Go", "Busy")
    spec.on("Busy", "Stop", "Idle")
    spec.on("Busy", "Tick")
    spec.on("Busy", "Timeout", "Idle")
    spec.after("Busy", 1000, "Timeout")
    spec.every("Busy", 300, "Tick", name="beat")
    return spec


if ("shm-timed", "default") not in known():
    register("shm-timed", lambda: timed_spec().compile())
TIMED = machine("shm-timed")
'''


@pytest.fixture(scope="session")
def timed_machine() -> CompiledMachine:
    """The registered ``shm-timed`` machine (two timers: ``Busy.Timeout``, ``beat``)."""
    space: dict[str, object] = {}
    exec(TIMED_SOURCE, space)  # noqa: S102 - the test's own source, shared with child readers
    timed = space["TIMED"]
    assert isinstance(timed, CompiledMachine)
    return timed


@pytest.fixture(scope="session")
def timed_source() -> str:
    """Python source that declares, registers and binds ``TIMED`` (for a child reader)."""
    return TIMED_SOURCE
