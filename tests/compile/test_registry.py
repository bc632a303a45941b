"""One registry of machines (issue 10 item 4): every built-in machine is registered once, looked up
by name and policy or by fingerprint, and every entry point gets the same compiled object."""

from __future__ import annotations

import pytest

from streamhsm import StreamLifecycle, StreamTable, registry, stream_machine
from streamhsm.driver import driver_machine, lease_machine


@pytest.mark.smoke
def test_builtin_machines_are_registered_once() -> None:
    known = registry.known()
    assert sorted(known) == [("driver", "default"), ("lease", "default"), ("stream", "default"),
                             ("stream", "drain_on_producer_loss")]
    assert len(set(known)) == len(known)
    assert registry.policies("stream") == ["default", "drain_on_producer_loss"]


@pytest.mark.smoke
def test_every_entry_point_shares_the_registered_machine() -> None:
    drain = registry.machine("stream", "drain_on_producer_loss")
    assert stream_machine(True) is drain and stream_machine(False) is registry.machine("stream")
    assert StreamTable(2, drain_on_producer_loss=True).machine is drain
    assert StreamLifecycle(True).drain_on_producer_loss
    assert not StreamLifecycle().drain_on_producer_loss
    assert lease_machine() is registry.machine("lease")
    assert driver_machine() is registry.machine("driver")


def test_lookup_by_fingerprint() -> None:
    for name, policy in registry.known():
        m = registry.machine(name, policy)
        assert registry.by_fingerprint(m.fingerprint) == (name, policy, m)
    assert registry.by_fingerprint("0" * 16) is None
    assert registry.by_fingerprint(None) is None


def test_errors_name_what_exists() -> None:
    with pytest.raises(ValueError,
                       match=r"unknown machine 'x'; known: \['driver', 'lease', 'stream'\]"):
        registry.machine("x")
    with pytest.raises(ValueError,
                       match=r"machine 'lease' has no policy 'p'; its policies: \['default'\]"):
        registry.machine("lease", "p")
    with pytest.raises(ValueError, match="registered already"):
        registry.register("lease", lease_machine)
