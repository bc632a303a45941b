"""examples/udp_driver on loopback (issue 22, target 5): the asyncio service answers attach,
keepalive and detach bursts through the batch calls exactly like the single-call version, and
sends each lease-revoked notice to the client that held the lease. Bounded: a few hundred
requests, every wait under a timeout, 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamhsm import BatchReason, Driver, DriverConfig, ResponseCode, RevokeReason

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "udp_driver"


@pytest.fixture(scope="module")
def udp() -> Any:
    """The example package, imported from its folder under a private name."""
    name = "_udp_driver_example"
    spec = importlib.util.spec_from_file_location(name, EXAMPLE / "__init__.py",
                                                  submodule_search_locations=[str(EXAMPLE)])
    assert spec is not None and spec.loader is not None
    pkg = importlib.util.module_from_spec(spec)
    sys.modules[name] = pkg
    spec.loader.exec_module(pkg)
    mods = {m: importlib.import_module(f"{name}.{m}") for m in ("wire", "service", "client")}
    yield type("Udp", (), mods)
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]


def records(udp: Any, op: int, clients: list[int], leases: list[int], first: int,
            stream: int = 1, role: int = 2) -> np.ndarray:
    recs: np.ndarray = udp.wire.requests(len(clients))
    recs["op"], recs["role"], recs["stream_id"] = op, role, stream
    recs["client_id"], recs["lease_id"] = clients, leases
    recs["request_id"] = np.arange(first, first + len(clients))
    return recs


async def session(udp: Any, batch: bool) -> dict[str, Any]:
    d = Driver(DriverConfig(static_stream_ids=(1, 2), stream_capacity=4, lease_capacity=256))
    stop = asyncio.Event()
    service, addr = await udp.service.serve(d, batch=batch, period_s=0.001, stop=stop)
    assert addr[0] == "127.0.0.1"
    a, b = await udp.client.connect(addr), await udp.client.connect(addr)
    w = udp.wire
    try:
        out: dict[str, Any] = {}
        clients = list(range(1, 101))
        att = await a.request(records(udp, w.ATTACH, clients, [0] * 100, 0), timeout=10)
        prod = await b.request(records(udp, w.ATTACH, [500, 501], [0, 0], 1000, role=1), 10)
        out["attach"] = att[["code", "lease_id", "epoch"]].tolist()
        out["producer"] = prod[["code", "lease_id"]].tolist()
        leases = att["lease_id"].tolist()
        # keepalive everyone, one with the wrong client id (answers like an unknown lease)
        ka = records(udp, w.KEEPALIVE, clients, leases, 2000)
        ka["client_id"][7] = 999
        out["keepalive"] = (await a.request(ka, timeout=10))[["code", "epoch"]].tolist()
        det = await a.request(records(udp, w.DETACH, clients[:50], leases[:50], 3000), 10)
        out["detach"] = det[["code", "epoch"]].tolist()
        pd = await b.request(records(udp, w.DETACH, [500], [prod["lease_id"][0]], 4000), 10)
        out["producer_detach"] = pd[["code", "epoch"]].tolist()

        async def notices(client: Any, n: int) -> np.ndarray:
            got: list[np.ndarray] = []
            while sum(map(len, got)) < n:
                got.append(client.take_notices())
                await asyncio.sleep(0.002)
            return np.concatenate(got)

        out["notices_a"] = await asyncio.wait_for(notices(a, 50), 10)
        out["notices_b"] = await asyncio.wait_for(notices(b, 1), 10)
        out["counters"] = d.counters
        out["requests"] = service.requests
        return out
    finally:
        stop.set()
        await asyncio.wait_for(service.task, 10)
        a.close()
        b.close()


def test_the_service_answers_like_the_single_calls(udp: Any) -> None:
    batch = asyncio.run(asyncio.wait_for(session(udp, True), 60))
    single = asyncio.run(asyncio.wait_for(session(udp, False), 60))
    OK, REJ = ResponseCode.OK, ResponseCode.REJECTED
    assert batch["attach"] == single["attach"] == [(OK, i + 1, 1) for i in range(100)]
    assert batch["producer"] == single["producer"] == [(OK, 101), (REJ, 0)]
    expected = [(OK, 2)] * 100
    expected[7] = (REJ, 0)
    assert batch["keepalive"] == single["keepalive"] == expected
    assert batch["detach"] == single["detach"] == [(OK, 2)] * 50
    assert batch["producer_detach"] == single["producer_detach"] == [(OK, 3)]
    for out in (batch, single):
        n_a, n_b = out["notices_a"], out["notices_b"]
        assert sorted(n_a["lease_id"].tolist()) == list(range(1, 51))
        assert (n_a["reason"] == RevokeReason.DETACHED).all()
        assert n_b["lease_id"].tolist() == [101] and n_b["role"].tolist() == [1]
        assert out["requests"] == 100 + 2 + 100 + 50 + 1
    assert batch["counters"] == single["counters"]


def test_the_batch_service_sends_reason_codes(udp: Any) -> None:
    async def run() -> np.ndarray:
        d = Driver(DriverConfig(static_stream_ids=(1,), stream_capacity=2, lease_capacity=4))
        stop = asyncio.Event()
        service, addr = await udp.service.serve(d, stop=stop)
        c = await udp.client.connect(addr)
        try:
            recs = records(udp, udp.wire.KEEPALIVE, [1], [77], 0)
            bad = records(udp, 9, [1], [0], 1)
            return await c.request(np.concatenate([recs, bad]), timeout=10)
        finally:
            stop.set()
            await asyncio.wait_for(service.task, 10)
            c.close()

    replies = asyncio.run(asyncio.wait_for(run(), 30))
    assert replies["code"].tolist() == [ResponseCode.REJECTED, ResponseCode.INVALID_PARAMS]
    assert replies["reason"].tolist() == [BatchReason.UNKNOWN_LEASE, 0]

