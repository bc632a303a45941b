"""Shared fixtures: machines used across the test modules."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from streamhsm import MachineSpec


def toy_spec() -> MachineSpec:
    """A three-level machine exercising every hierarchy rule.

    Root > A > A1 > {A11, A12};  Root > A > A2;  Root > B > {B1, B2};  initial chain A > A1 > A11.
    """
    spec = MachineSpec("toy", ["Self", "Up", "Down", "Cross", "Reset", "Grand", "Sib", "Local", "Noop"],
                       initial="A")
    spec.state("A", initial="A1").state("A1", "A", initial="A11")
    spec.state("A11", "A1").state("A12", "A1").state("A2", "A")
    spec.state("B", initial="B1").state("B1", "B").state("B2", "B")
    spec.on("A11", "Self", "A11")        # external self-transition on a leaf
    spec.on("A1", "Self", "A1")          # external self-transition on a composite
    spec.on("A11", "Up", "A1")           # target is an ancestor of the source
    spec.on("A", "Down", "A12")          # target is a descendant of the (composite) source
    spec.on("A12", "Down", "A11")        # sibling transition
    spec.on("A1", "Cross", "B")          # composite target with initial child
    spec.on("B", "Cross", "A2")
    spec.on("Root", "Reset", "Root")     # full reset
    spec.on("A", "Grand", "B2")          # handler on a grandparent of the leaf
    spec.on("B1", "Sib", "B2").on("B2", "Sib", "B1")
    spec.on("A", "Local", "A")           # self-transition on a grandparent
    spec.on("A1", "Noop")                # handled without transition
    spec.on("B", "Noop", "A")            # back across, drilling A > A1 > A11
    return spec


@pytest.fixture(name="toy_spec")
def toy_spec_fixture() -> Callable[[], MachineSpec]:
    """The toy machine's declaration factory (a fresh spec per call)."""
    return toy_spec
