"""Write the hand-made regression inputs of tests/fuzz_regressions/ (one per defect the fuzzers
reach, each a minimal change to a real snapshot or segment). Inputs the fuzzers found themselves
are copied there as found. Re-running this rewrites the generated files with the same content
(up to the writer pid and heartbeat of the segments).

    python fuzz/make_regressions.py [OUT_DIR]      # default: tests/fuzz_regressions
"""

from __future__ import annotations

import json
import os
import struct
import sys
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fuzz_shm  # noqa: E402
from fuzz_snapshots import _driver_seeds, _encode, _table_seeds  # noqa: E402


def _dynamic_slot(snap: dict[str, Any]) -> int:
    return int(np.flatnonzero(snap["dynamic"] & (snap["streams.states"] != 255))[0])


def _config(snap: dict[str, Any], **changes: Any) -> str:
    cfg = json.loads(snap["config"])
    cfg.update(changes)
    return json.dumps(cfg)


def snapshot_cases() -> dict[str, dict[str, Any]]:
    running, draining, _stopped, _small = _driver_seeds()
    table = _table_seeds()[2]
    cap = int(running["streams.capacity"])
    cases: dict[str, dict[str, Any]] = {}

    def case(name: str, base: dict[str, Any], **fields: Any) -> None:
        snap = dict(base)
        snap.update(fields)
        cases[name] = snap

    case("driver-due-slot-2pow31m1", running, due_slots=np.array([2**31 - 1], np.int32))
    case("driver-due-slots-longer-than-capacity", running,
         due_slots=np.arange(64 * cap, dtype=np.int32))
    case("driver-due-slot-negative", running, due_slots=np.array([-2**31], np.int32))
    slot = _dynamic_slot(running)
    sid = running["stream_id"].copy()
    sid[slot] = 2**40
    case("driver-dynamic-stream-id-2pow40", running, stream_id=sid)
    sid = running["stream_id"].copy()
    sid[slot] = -3
    case("driver-dynamic-stream-id-minus3", running, stream_id=sid)
    case("driver-config-deeply-nested", running, config="[" * 5000 + "]" * 5000)
    case("driver-config-not-an-object", running, config="[]")
    case("driver-config-shm-name", running,
         config=_config(running, shm_name="streamhsm-fuzz-regression-shm-name"))
    case("driver-draining-deadline-0", draining, shutdown_deadline=0)
    case("driver-now-2pow64m1", running, now_ns=np.uint64(2**64 - 1))
    case("driver-due-slot-at-capacity", running, due_slots=np.array([cap], np.int32))
    case("driver-dynamic-flag-on-static-streams", running,
         dynamic=np.ones_like(running["dynamic"]))
    sid = running["stream_id"].copy()
    sid[0] = 7  # a static slot whose id the configuration does not list
    case("driver-static-stream-id-not-configured", running, stream_id=sid)
    case("driver-last-lease-id-int64-max", running, last_lease_id=2**63 - 1)
    case("driver-closed-dynamic-2pow63", running, closed_dynamic=np.uint64(2**63))
    case("table-unhandled-total-2pow64m1", table, unhandled_total=np.uint64(2**64 - 1))
    case("table-capacity-2pow31m1", table, capacity=2**31 - 1)
    case("table-capacity-2pow27", table, capacity=2**27)
    case("table-capacity-2pow62", table, capacity=2**62)
    case("table-fingerprint-array", table,
         fingerprint=np.array([table["fingerprint"], table["fingerprint"]]))
    return cases


def _segment(op: int, size: int, cap: int = 5, **header: int) -> bytes:
    seg = bytearray(fuzz_shm._segment_bytes(cap, False, 4))
    offsets = {"pid": (48, "<Q")}
    for key, value in header.items():
        off, fmt = offsets[key]
        struct.pack_into(fmt, seg, off, value)
    return bytes([op]) + struct.pack("<I", size) + bytes(seg)


def shm_cases() -> dict[str, bytes]:
    return {
        "truncate-after-open": _segment(fuzz_shm.OP_TRUNCATE, fuzz_shm.HEADER_SIZE + 8),
        "truncate-to-zero-after-open": _segment(fuzz_shm.OP_TRUNCATE_ZERO, 0),
        "fifo-at-segment-path": _segment(fuzz_shm.OP_FIFO, 0),
        "writer-pid-0": _segment(fuzz_shm.OP_NONE, 0, pid=0),
        "writer-pid-2pow63": _segment(fuzz_shm.OP_NONE, 0, pid=2**63),
    }


def main(argv: list[str]) -> None:
    out = argv[0] if argv else os.path.join(HERE, os.pardir, "tests", "fuzz_regressions")
    for target, cases in (("snapshots", {k: _encode(v) for k, v in snapshot_cases().items()}),
                          ("shm", shm_cases())):
        os.makedirs(os.path.join(out, target), exist_ok=True)
        for name, data in cases.items():
            with open(os.path.join(out, target, name + ".bin"), "wb") as fh:
                fh.write(data)
            print(f"{target}/{name}.bin: {len(data)} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
