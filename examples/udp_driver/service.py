"""An asyncio UDP service in front of a :class:`streamhsm.Driver`.

Datagrams are only queued when they arrive. A duty cycle (every ``period_s``) takes the whole
queue as one burst, answers it with the driver's batch calls (one call per run of equal
operations, so requests are applied in arrival order), sends each datagram's replies back to its
sender, runs ``poll`` and sends the lease-revoked notices to the clients that held the leases.
With ``batch=False`` the same burst goes through the single calls instead (for comparison).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from streamhsm import Driver, ResponseCode, attach_requests

from .wire import (
    ATTACH,
    DETACH,
    KEEPALIVE,
    MAX_RECORDS,
    NOTICE,
    NOTICE_KIND,
    RECORD,
    REPLY,
    REPLY_KIND,
    REQUEST,
)

Address = Any


class DriverService(asyncio.DatagramProtocol):
    """The service: a ``DatagramProtocol`` plus :meth:`turn`, one duty cycle."""

    def __init__(self, driver: Driver, *, batch: bool = True,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.driver, self.batch, self.clock = driver, batch, clock
        self.pending: list[tuple[np.ndarray, Address]] = []
        self.clients: dict[int, Address] = {}  # client id -> address, for notices
        self.transport: asyncio.DatagramTransport | None = None
        self.requests = 0  # requests answered

    # ------------------------------------------------------------------ asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Address) -> None:
        records = np.frombuffer(data, REQUEST, len(data) // RECORD)  # a view: no copy
        if len(records):
            self.pending.append((records, addr))

    # ------------------------------------------------------------------ the duty cycle
    def turn(self) -> int:
        """Answer every queued request, poll, send the notices; return the requests answered."""
        now = self.clock()
        pending, self.pending = self.pending, []
        n = 0
        if pending:
            burst = np.concatenate([records for records, _ in pending])
            n = len(burst)
            replies = np.zeros(n, REPLY)
            replies["kind"] = REPLY_KIND
            replies["request_id"] = burst["request_id"]
            (self.answer_batch if self.batch else self.answer_single)(burst, replies, now)
            self.remember_clients(burst, replies, pending)
            start = 0
            for records, addr in pending:
                self.send(replies[start:start + len(records)], addr)
                start += len(records)
        self.driver.poll(now)
        self.send_notices(self.driver.drain_revoked())
        self.driver.drain_announces()  # a real service would announce these streams
        self.requests += n
        return n

    def answer_batch(self, burst: np.ndarray, replies: np.ndarray, now: int) -> None:
        """One batch call per run of equal operations, in order."""
        ops = burst["op"]
        bounds = [0, *(np.flatnonzero(ops[1:] != ops[:-1]) + 1).tolist(), len(burst)]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            run, out = burst[a:b], replies[a:b]
            op = int(ops[a])
            if op == ATTACH:
                req = attach_requests(b - a)
                for name in ("stream_id", "role", "client_id", "create"):
                    req[name] = run[name]
                rows = self.driver.attach_many(req, now)
                out["lease_id"], out["expiry_ns"] = rows["lease_id"], rows["expiry_ns"]
            elif op in (KEEPALIVE, DETACH):
                call = self.driver.keepalive_many if op == KEEPALIVE else self.driver.detach_many
                rows = call(np.ascontiguousarray(run["lease_id"], np.int64), now,
                            client_ids=np.ascontiguousarray(run["client_id"], np.int64))
                out["expiry_ns"] = rows["expiry_ns"]
            else:
                out["code"] = ResponseCode.INVALID_PARAMS
                continue
            out["code"], out["reason"], out["epoch"] = rows["code"], rows["reason"], rows["epoch"]

    def answer_single(self, burst: np.ndarray, replies: np.ndarray, now: int) -> None:
        """The same burst through the single calls (no reason codes: 0)."""
        d = self.driver
        for i, (op, role, create, sid, client, lid) in enumerate(zip(
                burst["op"].tolist(), burst["role"].tolist(), burst["create"].tolist(),
                burst["stream_id"].tolist(), burst["client_id"].tolist(),
                burst["lease_id"].tolist(), strict=True)):
            if op == ATTACH:
                r = d.attach(sid, role, client, now, create=bool(create))
                replies[i] = (REPLY_KIND, r.code, 0, 0, replies["request_id"][i], r.lease_id,
                              r.epoch, r.expiry_ns)
            elif op == KEEPALIVE or op == DETACH:
                s = (d.keepalive if op == KEEPALIVE else d.detach)(lid, now, client_id=client)
                replies[i]["code"], replies[i]["epoch"] = s.code, s.epoch
            else:
                replies[i]["code"] = ResponseCode.INVALID_PARAMS

    def remember_clients(self, burst: np.ndarray, replies: np.ndarray,
                         pending: list[tuple[np.ndarray, Address]]) -> None:
        """Record the address of every client that got a lease (its notices go there)."""
        attached = np.flatnonzero((burst["op"] == ATTACH) & (replies["code"] == ResponseCode.OK))
        if not len(attached):
            return
        sender = np.repeat(np.arange(len(pending)), [len(r) for r, _ in pending])
        for i, client in zip(attached.tolist(), burst["client_id"][attached].tolist(),
                             strict=True):
            self.clients[client] = pending[sender[i]][1]

    def send_notices(self, notices: np.ndarray) -> None:
        """One ``NOTICE`` record per ended lease, to the client that held it."""
        if not len(notices):
            return
        out = np.zeros(len(notices), NOTICE)
        out["kind"] = NOTICE_KIND
        for name in ("reason", "role", "lease_id", "stream_id", "time_ns"):
            out[name] = notices[name]
        by_addr: dict[Address, list[int]] = {}
        for i, client in enumerate(notices["client_id"].tolist()):
            addr = self.clients.pop(client, None)
            if addr is not None:
                by_addr.setdefault(addr, []).append(i)
        for addr, rows in by_addr.items():
            self.send(out[rows], addr)

    def send(self, records: np.ndarray, addr: Address) -> None:
        assert self.transport is not None
        for start in range(0, len(records), MAX_RECORDS):
            self.transport.sendto(records[start:start + MAX_RECORDS].tobytes(), addr)


async def serve(driver: Driver, host: str = "127.0.0.1", port: int = 0, *, batch: bool = True,
                period_s: float = 0.001,
                stop: asyncio.Event | None = None) -> tuple[DriverService, Address]:
    """Start the service on ``host:port`` (port 0: any free port) and its duty cycle; return the
    service and its bound address. The duty cycle runs until ``stop`` is set (then the socket
    closes)."""
    loop = asyncio.get_running_loop()
    transport, service = await loop.create_datagram_endpoint(
        lambda: DriverService(driver, batch=batch), local_addr=(host, port))
    stop = stop or asyncio.Event()

    async def duty_cycle() -> None:
        try:
            while not stop.is_set():
                service.turn()
                await asyncio.sleep(period_s)
            service.turn()
        finally:
            transport.close()

    service.task = asyncio.ensure_future(duty_cycle())  # type: ignore[attr-defined]
    return service, transport.get_extra_info("sockname")


if __name__ == "__main__":
    import argparse

    from streamhsm import DriverConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=40123)
    parser.add_argument("--streams", type=int, default=16)
    args = parser.parse_args()

    async def main() -> None:
        d = Driver(DriverConfig(static_stream_ids=tuple(range(1, args.streams + 1)),
                                lease_capacity=1 << 20))
        service, addr = await serve(d, port=args.port)
        print(f"serving on {addr[0]}:{addr[1]} (loopback only); Ctrl-C stops")
        await service.task  # type: ignore[attr-defined]

    asyncio.run(main())
