"""The driver's control path: an attach+detach cycle, a keepalive, and poll over a large lease
table with 1 % of the leases expiring per poll (group ``driver``)."""

from __future__ import annotations

import pytest

from streamhsm import Driver, DriverConfig, Role

SEC = 1_000_000_000
INTERVAL = 1000 * SEC
D = 3 * INTERVAL  # lease lifetime: interval x 3 grace intervals


def _driver(leases: int) -> Driver:
    return Driver(DriverConfig(static_stream_ids=tuple(range(1, 1001)), stream_capacity=1000,
                               lease_capacity=leases, lease_keepalive_interval_ns=INTERVAL,
                               lease_expiry_grace_intervals=3, outbox_capacity=leases))


@pytest.mark.benchmark(group="driver")
def test_attach_detach_cycle(benchmark) -> None:  # type: ignore[no-untyped-def]
    d = _driver(16)

    def cycle() -> None:
        r = d.attach(7, Role.PRODUCER, 42, 0)
        d.detach(r.lease_id, 0, client_id=42)
        d.drain_revoked()

    benchmark(cycle)
    assert d.live_leases == 0


@pytest.mark.benchmark(group="driver")
def test_keepalive(benchmark) -> None:  # type: ignore[no-untyped-def]
    d = _driver(16)
    lease = d.attach(7, Role.CONSUMER, 42, 0).lease_id
    benchmark(d.keepalive, lease, 1, client_id=42)


@pytest.mark.benchmark(group="driver")
def test_poll_one_percent_expiring(benchmark, sizes) -> None:  # type: ignore[no-untyped-def]
    """``sizes.leases`` live leases; each poll expires the 1 % attached earliest. All victims are
    attached before the bulk, one cohort per round, so every round expires exactly one cohort."""
    rounds = 5
    cohort = sizes.leases // 100
    total = sizes.leases + rounds * cohort
    d = _driver(total)
    client = 0
    for k in range(rounds):  # victims of round k expire at k + D
        for _ in range(cohort):
            client += 1
            assert d.attach(1 + client % 1000, Role.CONSUMER, client, k)
    for _ in range(sizes.leases):
        client += 1
        assert d.attach(1 + client % 1000, Role.CONSUMER, client, rounds)
    state = {"k": 0}

    def poll() -> int:
        k = state["k"]
        state["k"] += 1
        n = d.poll(k + D + 1)
        d.drain_revoked()
        return n

    benchmark.pedantic(poll, rounds=rounds, iterations=1)
    # every poll expired exactly its own cohort, whatever number of rounds the mode ran
    assert d.counters["leases_expired"] == cohort * state["k"], state
    assert d.live_leases == total - cohort * state["k"]
    benchmark.extra_info["leases"] = sizes.leases
    benchmark.extra_info["expiring_per_poll"] = cohort
