"""pytest plugin: the smoke suite CI runs against the wheels of the other Pythons.

    PYTHONPATH=ci python -m pytest -p pytest_smoke tests

From every test module it keeps the tests marked ``smoke`` (pyproject's markers) if the module
has any; otherwise the first ``SMOKE_PER_MODULE`` (default 3) test functions in collection order,
each with its first parametrisation only. So every layer the suite covers is exercised on every
Python, whatever the folders the tests live in, in a small fraction of the full suite's time; a
module's `smoke` marks make its choice explicit, and ``pytestmark = pytest.mark.smoke(False)``
keeps a whole module out (allocation, stateful, Hypothesis-heavy, build and stub tests). The rest is
deselected (pytest reports how many).
"""

from __future__ import annotations

import os

import pytest

PER_MODULE = int(os.environ.get("SMOKE_PER_MODULE", "3"))


def _function_key(item: pytest.Item) -> str:
    """The test function an item runs (its parametrisations share the key)."""
    return getattr(item, "originalname", None) or item.name.split("[", 1)[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep each module's smoke-marked tests, else its first test functions (one case each)."""
    by_module: dict[str, list[pytest.Item]] = {}
    for item in items:
        by_module.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    keep: set[int] = set()
    for module_items in by_module.values():
        marks = [i.get_closest_marker("smoke") for i in module_items]
        if any(m is not None for m in marks):  # explicit: smoke(False) opts out
            keep.update(id(i) for i, m in zip(module_items, marks, strict=True)
                        if m is not None and m.args[:1] != (False,))
            continue
        seen: list[str] = []
        for item in module_items:
            key = _function_key(item)
            if key in seen:
                continue  # a further parametrisation of a function already kept
            if len(seen) == PER_MODULE:
                break
            seen.append(key)
            keep.add(id(item))
    selected = [i for i in items if id(i) in keep]
    deselected = [i for i in items if id(i) not in keep]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
