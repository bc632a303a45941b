"""The id maps' backward-shift removal with grouped homes (ids hashed by group of eight; each
entry keeps its home, so a removal hashes nothing): after any removal order every remaining id is
still found, in the client map (client ids) and the lease map (lease ids), and nothing else is;
every entry's kept home is its key's, also after a restore (which hashes under a new key)."""

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
            assert core._map("client")._stale_homes() == core._map("lease")._stale_homes() == 0


def test_a_restored_driver_ends_leases_from_its_new_maps() -> None:
    """A lease's end removes its client from the client map at the home kept at attach time;
    a restore hashes under a new key, so it must keep the new homes: after it, detach and
    expiry free every client id again (nothing is left behind in the map)."""
    clients = [*range(1, 41), *range(500, 530)]
    d = Driver(DriverConfig(static_stream_ids=(1, 2), lease_capacity=len(clients),
                            lease_keepalive_interval_ns=10**9))
    lease = {c: d.attach(1 + c % 2, Role.CONSUMER, c, 0).lease_id for c in clients}
    r = Driver.restore(d.snapshot())
    core = r._core
    assert core._map("client")._stale_homes() == core._map("lease")._stale_homes() == 0
    half = clients[::2]
    for c in half:
        assert r.detach(lease[c], 1, client_id=c).epoch >= 0
    assert not any(core.holds_lease(c) for c in half)
    assert all(core.holds_lease(c) for c in clients[1::2])
    r.poll(10**12)  # the rest expire
    assert not any(core.holds_lease(c) for c in clients)
    assert len(core._map("client")) == len(core._map("lease")) == 0
    assert all(r.attach(1, Role.CONSUMER, c, 10**12).lease_id > 0 for c in clients)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_map_answers_like_a_dict_under_any_mix_of_inserts_and_removals(seed: int) -> None:
    """The map itself against a dict: dense runs and scattered ids put, looked up and popped in
    random order, in a small table (runs of groups meet, shifts cross groups and the wrap);
    every entry keeps its key's home throughout."""
    from streamhsm.driver._idmap import IdMap

    rng = random.Random(seed)
    m, model = IdMap(200), {}
    pool = [*range(0, 120), *range(2**62 - 40, 2**62), *rng.sample(range(10**6, 10**12), 60)]
    for step in range(6000):
        key = rng.choice(pool)
        if rng.random() < 0.55 and len(model) < 200:
            value = rng.randrange(2**31)
            assert m._put(key, value) == 0
            model[key] = value
        else:
            assert m._pop(key) == model.pop(key, -1)
        if step % 97 == 0:
            assert len(m) == len(model) and m._stale_homes() == 0
            assert all(m._get(k) == model.get(k, -1) for k in pool)
    assert all(m._get(k) == model.get(k, -1) for k in pool)


def test_a_value_outside_a_slot_number_is_refused_and_changes_nothing() -> None:
    """Values are slot numbers (0 .. 2**31 - 1: an entry holds its value in 32 bits beside its
    home); any other value is refused, never stored cut."""
    from streamhsm.driver._idmap import IdMap

    m = IdMap(8)
    assert m._put(5, 2**31 - 1) == 0 and m._get(5) == 2**31 - 1
    assert m._put(6, 2**31) == -1 and m._put(7, -1) == -1 and m._put(5, 2**32 + 3) == -1
    assert len(m) == 1 and m._get(5) == 2**31 - 1 and m._get(6) == m._get(7) == -1
