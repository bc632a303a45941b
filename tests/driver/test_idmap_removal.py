"""The id maps' backward-shift removal with grouped homes (ids hashed by group of eight; a
removal hashes each group it shifts once): after any removal order every remaining id is still
found, in the client map (client ids) and the lease map (lease ids), and nothing else is."""

from __future__ import annotations

import random

import pytest

from streamhsm import Driver, DriverConfig, Role


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_id_left_is_found_after_removals_in_any_order(seed: int) -> None:
    rng = random.Random(seed)
    # dense runs (whole groups, and groups cut at both ends) beside scattered ids
    clients = [*range(1, 161), *range(1003, 1090), *rng.sample(range(2000, 10**6), 120)]
    d = Driver(DriverConfig(static_stream_ids=(1,), lease_capacity=len(clients),
                            lease_keepalive_interval_ns=10**12))
    # a small table: 368 ids in 1024 slots, so runs of groups meet and shifts cross groups
    lease = {c: d.attach(1, Role.CONSUMER, c, 0).lease_id for c in clients}
    assert all(lease.values())
    rng.shuffle(clients)
    core = d._core
    for n, gone in enumerate(clients):
        assert d.detach(lease[gone], 1, client_id=gone)
        assert not core.holds_lease(gone) and core.live_lease(lease[gone], gone) == -1
        if n % 7 == 0 or n > len(clients) - 20:
            left = clients[n + 1:]
            assert all(core.holds_lease(c) for c in left)
            assert all(core.live_lease(lease[c], c) >= 0 for c in left)
            assert core._map("client")._probe_stats()[0] == len(left)
