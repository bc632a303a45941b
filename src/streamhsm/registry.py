"""The one registry of known machines, looked up by name and policy, or by fingerprint.

A machine is registered once, next to its declaration, as a factory that compiles it; the first
lookup compiles it and every later one returns the same :class:`CompiledMachine`. The stream
lifecycle (both policies) registers itself in :mod:`streamhsm.lifecycle`, the lease and driver
machines in :mod:`streamhsm.driver.machines`. The CLI's ``diagram`` command, snapshot loading and
the shared-memory reader all look machines up here.
"""

from __future__ import annotations

from collections.abc import Callable

from .compiler import CompiledMachine
from .snapshot import rename_fingerprint

__all__ = ["DEFAULT_POLICY", "V02_FINGERPRINTS", "by_fingerprint", "known", "machine", "policies",
           "register"]

#: Policy name of a machine that has no variants.
DEFAULT_POLICY = "default"

#: The built-in machines' fingerprints as streamhsm 0.2 computed them (it hashed neither the
#: initial state nor the exit and entry paths of a machine without flags, so two machines that
#: differ only there shared one). Snapshots and segments that carry them still load: each is
#: mapped to the machine's fingerprint now.
V02_FINGERPRINTS: dict[tuple[str, str], str] = {
    ("stream", DEFAULT_POLICY): "5bacb95cd39a373f",
    ("stream", "drain_on_producer_loss"): "ae2a68c5bd3baf05",
    ("lease", DEFAULT_POLICY): "026b09ffebcaabdb",
    ("driver", DEFAULT_POLICY): "22c8a7f699304ad0",
}

_FACTORIES: dict[tuple[str, str], Callable[[], CompiledMachine]] = {}
_COMPILED: dict[tuple[str, str], CompiledMachine] = {}


def register(name: str, factory: Callable[[], CompiledMachine],
             policy: str = DEFAULT_POLICY) -> None:
    """Make ``factory`` (which compiles the machine) known as ``(name, policy)``.

    Raises:
        TypeError: ``name`` or ``policy`` is not a str, or ``factory`` is not callable.
        ValueError: ``name`` or ``policy`` is empty, or that name and policy are registered
            already.
    """
    for what, value in (("name", name), ("policy", policy)):
        if type(value) is not str:
            raise TypeError(f"machine {what} must be a str, got {type(value).__name__} "
                            f"{value!r}"[:200])
        if not value:
            raise ValueError(f"machine {what} must not be empty")
    if not callable(factory):
        raise TypeError(f"factory must be a callable that compiles the machine, got "
                        f"{type(factory).__name__}")
    key = (name, policy)
    if key in _FACTORIES:
        raise ValueError(f"machine {name!r} with policy {policy!r} is registered already")
    _FACTORIES[key] = factory


def machine(name: str, policy: str = DEFAULT_POLICY) -> CompiledMachine:
    """The compiled machine ``name`` with ``policy`` (compiled once, then shared).

    Raises:
        ValueError: no such machine, or no such policy for it (the message lists what exists).
    """
    key = (name, policy)
    compiled = _COMPILED.get(key)
    if compiled is not None:
        return compiled
    factory = _FACTORIES.get(key)
    if factory is None:
        if name not in {n for n, _ in _FACTORIES}:
            known = sorted({n for n, _ in _FACTORIES})
            raise ValueError(f"unknown machine {name!r}; known: {known}")
        raise ValueError(f"machine {name!r} has no policy {policy!r}; its policies: "
                         f"{policies(name)}")
    compiled = _COMPILED[key] = factory()
    old = V02_FINGERPRINTS.get(key)
    if old is not None:
        rename_fingerprint(old, compiled.fingerprint)
    return compiled


def policies(name: str) -> list[str]:
    """The policies registered for machine ``name`` (the default first)."""
    found = [p for n, p in _FACTORIES if n == name]
    return sorted(found, key=lambda p: (p != DEFAULT_POLICY, p))


def known() -> list[tuple[str, str]]:
    """Every registered ``(name, policy)``, in registration order."""
    return list(_FACTORIES)


def by_fingerprint(fingerprint: object) -> tuple[str, str, CompiledMachine] | None:
    """``(name, policy, machine)`` of the registered machine with this fingerprint (or with this
    fingerprint in streamhsm 0.2, see :data:`V02_FINGERPRINTS`), or None."""
    if not isinstance(fingerprint, str):
        return None
    for (name, policy), old in V02_FINGERPRINTS.items():
        if old == fingerprint and (name, policy) in _FACTORIES:
            return name, policy, machine(name, policy)
    for name, policy in _FACTORIES:
        compiled = machine(name, policy)
        if compiled.fingerprint == fingerprint:
            return name, policy, compiled
    return None
