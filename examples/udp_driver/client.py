"""A small asyncio client of the UDP service: sends request records, waits for the replies (by
request id) and collects the lease-revoked notices sent to it."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from .wire import MAX_RECORDS, NOTICE, NOTICE_KIND, RECORD, REPLY, REPLY_KIND, parse


class Client(asyncio.DatagramProtocol):
    """One UDP socket of clients (any number of client ids may share it)."""

    def __init__(self) -> None:
        self.replies: dict[int, np.void] = {}
        self.notices: list[np.ndarray] = []
        self.arrived = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        raw = parse(data)
        if not len(raw):
            return
        if raw[0] == NOTICE_KIND:
            self.notices.append(np.frombuffer(raw.tobytes(), NOTICE))
        elif raw[0] == REPLY_KIND:
            for rec in np.frombuffer(raw.tobytes(), REPLY):
                self.replies[int(rec["request_id"])] = rec
        self.arrived.set()

    async def request(self, records: np.ndarray, timeout: float = 10.0) -> np.ndarray:
        """Send ``records`` (``wire.REQUEST``, unique request ids) in datagrams of at most
        ``MAX_RECORDS`` and return their replies in the same order. Raises TimeoutError if
        some reply does not come within ``timeout`` seconds."""
        assert self.transport is not None
        for start in range(0, len(records), MAX_RECORDS):
            self.transport.sendto(records[start:start + MAX_RECORDS].tobytes())
        ids = records["request_id"].tolist()

        async def wait() -> None:
            while not all(i in self.replies for i in ids):
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(wait(), timeout)
        return np.array([self.replies.pop(i) for i in ids], REPLY)

    def take_notices(self) -> np.ndarray:
        """The notices received so far (and forget them)."""
        out = np.concatenate(self.notices) if self.notices else np.zeros(0, NOTICE)
        self.notices = []
        return out

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(addr: tuple[str, int]) -> Client:
    """A client socket connected to the service at ``addr``."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_datagram_endpoint(Client, remote_addr=addr)
    return client


assert RECORD == REPLY.itemsize
