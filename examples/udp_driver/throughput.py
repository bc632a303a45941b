"""Requests per second through the UDP service on loopback, batch calls beside single calls.

One process runs the service and a client in one event loop: ``clients`` clients attach, keep
alive ``rounds`` times and detach, in bursts of ``burst`` requests. Reported: wall-clock and
CPU requests per second of the whole exchange (service, client and loopback sockets), for the
batch service and the single-call service, side by side. Run from ``examples/``:

    python -m udp_driver.throughput [--clients N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np

from streamhsm import Driver, DriverConfig, ResponseCode

from .client import connect
from .service import serve
from .wire import ATTACH, DETACH, KEEPALIVE, requests

STREAMS = 64


def make(op: int, clients: np.ndarray, leases: np.ndarray, first_id: int) -> np.ndarray:
    recs = requests(len(clients))
    recs["op"], recs["role"], recs["client_id"] = op, 2, clients
    recs["stream_id"] = 1 + clients % STREAMS
    recs["lease_id"] = leases
    recs["request_id"] = np.arange(first_id, first_id + len(clients))
    return recs


async def exchange(batch: bool, clients: int, rounds: int, burst: int) -> tuple[float, float, int]:
    """Run one exchange; return (wall seconds, CPU seconds, requests)."""
    d = Driver(DriverConfig(static_stream_ids=tuple(range(1, STREAMS + 1)),
                            stream_capacity=STREAMS, lease_capacity=clients,
                            outbox_capacity=clients))
    stop = asyncio.Event()
    service, addr = await serve(d, batch=batch, period_s=0.0005, stop=stop)
    client = await connect(addr)
    ids = np.arange(1, clients + 1, dtype=np.int64)
    leases = np.zeros(clients, np.int64)
    rid = 0
    wall, cpu = time.perf_counter(), time.thread_time()
    for op in [ATTACH] + [KEEPALIVE] * rounds + [DETACH]:
        for start in range(0, clients, burst):
            part = slice(start, start + burst)
            recs = make(op, ids[part], leases[part], rid)
            rid += len(recs)
            replies = await client.request(recs)
            assert (replies["code"] == ResponseCode.OK).all(), replies[:4]
            if op == ATTACH:
                leases[part] = replies["lease_id"]
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    stop.set()
    await service.task  # type: ignore[attr-defined]
    client.close()
    return wall, cpu, rid


def main() -> None:
    parser = argparse.ArgumentParser(description="UDP service throughput, batch vs single calls")
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--burst", type=int, default=1024)
    args = parser.parse_args()
    for batch in (True, False):
        wall, cpu, n = asyncio.run(exchange(batch, args.clients, args.rounds, args.burst))
        name = "batch calls " if batch else "single calls"
        print(f"{name}: {n:,} requests, {n / wall:,.0f} requests/s wall-clock, "
              f"{n / cpu:,.0f} requests/s per CPU-second")


if __name__ == "__main__":
    main()
