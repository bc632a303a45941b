"""``registry.register`` checks its argument types at once (issue 19 class 12), so a bad
registration never surfaces later as a TypeError in a snapshot load or a lookup."""

from __future__ import annotations

from typing import Any

import pytest

from streamhsm import registry
from streamhsm.lifecycle import stream_machine


@pytest.mark.parametrize(("args", "error", "match"), [
    ((42, "x"), TypeError, "machine name must be a str, got int 42"),
    (("x", 42), TypeError, "factory must be a callable that compiles the machine, got int"),
    (("x", stream_machine, 7), TypeError, "machine policy must be a str, got int 7"),
    (("", stream_machine), ValueError, "machine name must not be empty"),
    (("x", stream_machine, ""), ValueError, "machine policy must not be empty"),
    ((b"x", stream_machine), TypeError, "machine name must be a str, got bytes"),
])
def test_bad_registrations_are_refused_and_nothing_is_registered(
        args: tuple[Any, ...], error: type[Exception], match: str) -> None:
    before = registry.known()
    with pytest.raises(error, match=match):
        registry.register(*args)
    assert registry.known() == before
    assert registry.by_fingerprint(stream_machine().fingerprint) is not None  # lookups still work
