"""Hash flooding (issue 19 class 5): client ids are chosen by clients, so the driver's id maps
hash them with a per-map random key (SipHash-1-3). Ids that collide under the old unkeyed hash,
or under any one fixed key, cost no more probes than ordinary ids. Measured by counting probes
(``IdMap._probe_stats``), never with a clock."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streamhsm import Driver, DriverConfig, Role
from streamhsm.driver._idmap import IdMap, _siphash13

M64 = 2**64 - 1


def old_mix(x: int) -> int:
    """The unkeyed splitmix64 finaliser the maps used before (version 0.2.0)."""
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def _unxorshift(y: int, s: int) -> int:
    x, t = y, y
    while t:
        t >>= s
        x ^= t
    return x


def old_mix_inverse(y: int) -> int:
    x = _unxorshift(y, 31)
    x = (x * pow(0x94D049BB133111EB, -1, 2**64)) & M64
    x = _unxorshift(x, 27)
    x = (x * pow(0xBF58476D1CE4E5B9, -1, 2**64)) & M64
    return _unxorshift(x, 30)


def table_size(capacity: int) -> int:
    size = 8
    while size < 2 * capacity:
        size *= 2
    return size


def old_collisions(n: int, capacity: int) -> list[int]:
    """``n`` positive int64 client ids that all hash to bucket 0 under the old function."""
    size, out, j = table_size(capacity), [], 1
    while len(out) < n:
        x = old_mix_inverse(j * size)
        if 0 < x < 2**63:
            out.append(x)
        j += 1
    assert all(old_mix(x) % size == 0 for x in out)
    return out


def fixed_key_collisions(n: int, capacity: int, k0: int = 0, k1: int = 0) -> list[int]:
    """``n`` client ids that all hash to bucket 0 under SipHash-1-3 with a fixed key."""
    size, out, x = table_size(capacity), [], 1
    while len(out) < n:
        if _siphash13(k0, k1, x) % size == 0:
            out.append(x)
        x += 1
    return out


def attach_all(clients: list[int], capacity: int) -> Driver:
    d = Driver(DriverConfig(static_stream_ids=(1,), lease_capacity=capacity))
    for c in clients:
        assert d.attach(1, Role.CONSUMER, c, 0), c
    return d


def mean_probes(d: Driver, which: str = "client") -> float:
    n, total, _ = d._core._map(which)._probe_stats()
    return float(total) / n


def test_siphash13_matches_pythons_own_bytes_hash() -> None:
    """A known-answer check against an independent SipHash-1-3: CPython's hash of 8 bytes with
    PYTHONHASHSEED=0 (key zero)."""
    if sys.hash_info.algorithm != "siphash13":
        pytest.skip(f"this Python hashes with {sys.hash_info.algorithm}")
    values = [0, 1, 2**63 - 1, 0x0123456789ABCDEF, 2**64 - 1, 42]
    code = ("import sys; print(' '.join(str(hash(int(v).to_bytes(8, 'little'))) "
            "for v in sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", code, *map(str, values)], check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    for v, h in zip(values, map(int, out.stdout.split()), strict=True):
        mine = _siphash13(0, 0, v)
        signed = mine - 2**64 if mine >= 2**63 else mine
        assert (signed if signed != -1 else -2) == h, v


@pytest.mark.parametrize("capacity", [256, 2048])
def test_ids_colliding_under_the_old_hash_cost_what_ordinary_ids_cost(capacity: int) -> None:
    ordinary = mean_probes(attach_all(list(range(1, capacity + 1)), capacity))
    d = attach_all(old_collisions(capacity, capacity), capacity)
    # unkeyed: every id lands in one bucket, about capacity / 2 probes per id
    assert mean_probes(d) <= 2 * ordinary + 1
    restored = Driver.restore(d.snapshot())  # restore re-inserts every id under a new key
    assert mean_probes(restored) <= 2 * ordinary + 1


def test_ids_crafted_against_a_fixed_key_cost_what_ordinary_ids_cost() -> None:
    capacity = 64
    ordinary = mean_probes(attach_all(list(range(1, capacity + 1)), capacity))
    for k0, k1 in ((0, 0), (1, 2)):
        d = attach_all(fixed_key_collisions(capacity, capacity, k0, k1), capacity)
        assert mean_probes(d) <= 2 * ordinary + 1


def test_every_map_has_its_own_key_and_no_snapshot_holds_one() -> None:
    assert len({IdMap(4)._seed() for _ in range(8)}) == 8
    d = attach_all([5, 6], 4)
    keys = {d._core._map(w)._seed() for w in ("lease", "client", "static")}
    assert len(keys) == 3
    snap = d.snapshot()
    blob = b"".join(v.tobytes() if hasattr(v, "tobytes") else repr(v).encode()
                    for v in snap.values())
    for k0, k1 in keys:
        assert k0.to_bytes(8, "little") not in blob and k1.to_bytes(8, "little") not in blob
    restored = Driver.restore(snap)
    assert restored._core._map("client")._seed() not in keys
    assert restored.lease_state(1) is not None and restored.attach(1, Role.CONSUMER, 5, 1).reason \
        == "client_id already attached"  # the re-hashed map still finds client 5


def test_map_capacity_is_checked() -> None:
    with pytest.raises(ValueError, match="max_entries must be between 1 and 2147483647, got 0"):
        IdMap(0)
    # an entry keeps its home in 32 bits: at most 2**31 - 1 entries (2**32 slots)
    with pytest.raises(ValueError, match="max_entries must be between 1 and 2147483647, got "
                                         "2147483648"):
        IdMap(2**31)


def test_consecutive_ids_share_an_aligned_block_of_eight_slots() -> None:
    """An id's group (the id without its low three bits) is hashed; the low bits pick the slot
    in an aligned block of eight, so eight consecutive ids share two cache lines."""
    m = IdMap(4096)
    for group in (0, 1, 12345, 2**59 + 7):
        base = m._home(group * 8)
        assert base % 8 == 0
        assert [m._home(group * 8 + i) for i in range(8)] == [base + i for i in range(8)]
    # the groups themselves are spread by the keyed hash: 512 groups, many distinct blocks
    assert len({m._home(8 * g) for g in range(512)}) > 300


@pytest.mark.parametrize("stride", [8, 64, 8 * 8192])
def test_ids_that_know_the_grouping_cost_what_ordinary_ids_cost(stride: int) -> None:
    """An attacker who knows how ids are grouped, but not the key, can only pick groups: one id
    per group (any stride), or whole groups, never ids that meet in one block."""
    capacity = 2048
    ordinary = mean_probes(attach_all(list(range(1, capacity + 1)), capacity))
    d = attach_all([stride * (i + 1) for i in range(capacity)], capacity)
    assert mean_probes(d) <= 2 * ordinary + 1
    _, _, longest = d._core._map("client")._probe_stats()
    assert longest < 64
