"""Issue 20: the shared-memory layout carries history records (since layout version 3)."""

from __future__ import annotations

import os
import struct
import uuid

import pytest

from streamhsm.shm import LAYOUT_VERSION, SharedStreamTable, SharedTableError, open_readonly


def _name() -> str:
    return f"streamhsm-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def test_the_layout_records_the_history_owner_count() -> None:
    name = _name()
    with SharedStreamTable(name, 4) as t:
        t.open()
        with open(t.path, "rb") as fh:
            head = fh.read(128)
        assert LAYOUT_VERSION == 4 and struct.unpack_from("<I", head, 8)[0] == 4  # since 3
        assert struct.unpack_from("<I", head, 120)[0] == t.machine.engine_tables.n_owners == 0
        with open_readonly(name) as r, pytest.raises(ValueError, match="keeps no history record"):
            r.history("Live")


def test_a_segment_whose_owner_count_disagrees_with_its_machine_is_refused() -> None:
    name = _name()
    with SharedStreamTable(name, 4) as t:
        with open(t.path, "r+b") as fh:
            fh.seek(120)
            fh.write(struct.pack("<I", 1))
        with pytest.raises(SharedTableError, match="has 1 history columns"):
            open_readonly(name)
