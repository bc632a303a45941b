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

__all__ = ["DEFAULT_POLICY", "by_fingerprint", "known", "machine", "policies", "register"]

#: Policy name of a machine that has no variants.
DEFAULT_POLICY = "default"

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
    return compiled


def policies(name: str) -> list[str]:
    """The policies registered for machine ``name`` (the default first)."""
    found = [p for n, p in _FACTORIES if n == name]
    return sorted(found, key=lambda p: (p != DEFAULT_POLICY, p))


def known() -> list[tuple[str, str]]:
    """Every registered ``(name, policy)``, in registration order."""
    return list(_FACTORIES)


def by_fingerprint(fingerprint: object) -> tuple[str, str, CompiledMachine] | None:
    """``(name, policy, machine)`` of the registered machine with this fingerprint, or None."""
    if not isinstance(fingerprint, str):
        return None
    for name, policy in _FACTORIES:
        compiled = machine(name, policy)
        if compiled.fingerprint == fingerprint:
            return name, policy, compiled
    return None
