"""Harness 4: random driver operation sequences with extreme ints.

The input bytes choose a small configuration and then a sequence of attach / keepalive / detach /
revoke / poll / bump_epoch / request_shutdown / snapshot+restore / save+load / outbox and query
calls whose arguments are recent ids, current times, or extremes (0, -1, 2**31-1, 2**63-1, 2**63,
-2**63, 2**64, ...), sometimes of the wrong type. ``keepalive`` and ``detach`` get ``client_id=``
when their signature has it (issue 9 item 15), so the harness works before and after that change.

Oracles, after every operation:
- a raised ``TypeError``/``ValueError`` (or a project error) changed nothing: the driver's
  snapshot is identical before and after (a rejected call changes nothing, clock included);
- the driver's own snapshot restores (``Driver.restore``);
- the stream and lease tables are consistent (len equals the open states, counts equal the
  histogram), ``live_leases`` equals the open lease slots, every live lease's stream slot is open,
  counters are never negative, the clock never goes back.
Any other exception (``OverflowError``, ``IndexError``, ...), a crash or a hang is a finding.
"""

from __future__ import annotations

import inspect
import os
import random
from typing import Any

import numpy as np

from streamhsm import Driver, DriverConfig
from streamhsm.driver import REVOKED_NOTICE_DTYPE

from common import (
    PROJECT_ERRORS,
    Finding,
    Provider,
    byte_mutate,
    scratch_dir,
    snapshots_equal,
    table_invariants,
)

NAME = "driver"
MAX_LEN = 4096
ACCEPTED = (TypeError, ValueError) + PROJECT_ERRORS
_WRONG_TYPES = (None, 1.5, "7", True, np.int64(3), np.uint64(2**64 - 1), float("nan"), b"1")


def _config(p: Provider) -> DriverConfig | None:
    static = tuple(sid for sid in (0, 1, 2, 2**31 - 1) if p.boolean())
    rng = p.pick(((10, 13), (3, 6), (2**31 - 4, 2**31 - 1), (100, 100)))
    try:
        return DriverConfig(
            static_stream_ids=static,
            allow_dynamic_streams=p.byte() % 4 != 0,
            dynamic_stream_id_range=rng,
            stream_capacity=p.int_in(1, 6),
            lease_capacity=p.int_in(1, 6),
            outbox_capacity=p.pick((None, 1, 2, 5)),
            lease_keepalive_interval_ns=p.pick((1, 10, 10**9, 2**40, 2**61)),
            lease_expiry_grace_intervals=p.pick((1, 2, 3)),
            shutdown_timeout_ns=p.pick((0, 1, 100, 2**62, 2**63 - 1)),
            shutdown_token=p.pick((None, "t")),
            drain_on_producer_loss=p.boolean(),
        )
    except ValueError:
        return None  # an invalid combination (documented): not what this harness explores


class _Ctx:
    def __init__(self, p: Provider, d: Driver) -> None:
        self.p = p
        self.d = d
        self.now = 0
        self.leases: list[tuple[int, int]] = []   # (lease id, client id)
        self.sids = list(d.config.static_stream_ids)
        rng = d.config.dynamic_stream_id_range
        if rng is not None:
            self.sids += [rng[0], rng[1], rng[1] + 1]

    def time(self) -> Any:
        kind = self.p.byte() % 10
        if kind <= 5:
            return self.now + self.p.pick((0, 0, 1, 5, 31, 100, 10**9, 3 * 10**9))
        if kind <= 8:
            return self.p.extreme_int()
        return self.p.pick(_WRONG_TYPES)

    def int_or(self, pool: list[int]) -> Any:
        kind = self.p.byte() % 10
        if kind <= 5 and pool:
            return self.p.pick(pool)
        if kind <= 8:
            return self.p.extreme_int()
        return self.p.pick(_WRONG_TYPES)

    def lease(self) -> tuple[Any, Any]:
        if self.leases and self.p.byte() % 4:
            lid, client = self.p.pick(self.leases)
            if self.p.byte() % 4 == 0:
                client = self.int_or([c for _, c in self.leases])  # someone else's client id
            return lid, client
        return self.int_or([]), self.int_or([1, 2])


def _client_kw(method: Any, client: Any) -> dict[str, Any]:
    return {"client_id": client} if "client_id" in inspect.signature(method).parameters else {}


def _invariants(d: Driver, snap: dict[str, Any], last_now: int) -> None:
    table_invariants(d.streams, "driver streams")
    leases_states = snap["leases.states"]
    n_leases = int(np.count_nonzero(leases_states != 255))
    if d.live_leases != n_leases:
        raise Finding(f"live_leases {d.live_leases} != {n_leases} open lease slots")
    stream_states = snap["streams.states"]
    for ls in np.flatnonzero(leases_states != 255).tolist():
        slot = int(snap["lease_stream"][ls])
        if not 0 <= slot < len(stream_states) or stream_states[slot] == 255:
            raise Finding(f"live lease in slot {ls} points at stream slot {slot}, not open")
    if any(v < 0 for v in d.counters.values()):
        raise Finding(f"negative counter: {dict(d.counters)}")
    if int(snap["now_ns"]) < last_now:
        raise Finding(f"the clock went back from {last_now} to {snap['now_ns']}")


def _step(c: _Ctx, op: int) -> Driver:
    d, p = c.d, c.p
    if op <= 2:
        client = c.int_or([1, 2, 3, 2**63 - 1])
        r = d.attach(c.int_or(c.sids), p.pick(("producer", "consumer", 1, 2, 0, 3, "x", 2**64,
                                               None)),
                     client, c.time(), create=p.pick((True, False, 1)))
        if r.lease_id:
            c.leases.append((r.lease_id, client))
    elif op == 3:
        lid, client = c.lease()
        d.keepalive(lid, c.time(), **_client_kw(d.keepalive, client))
    elif op == 4:
        lid, client = c.lease()
        d.detach(lid, c.time(), **_client_kw(d.detach, client))
    elif op == 5:  # the operator-side revoke: with or without a time, whichever it takes
        has_now = "now_ns" in inspect.signature(d.revoke).parameters
        d.revoke(c.lease()[0], *((c.time(),) if has_now else ()))
    elif op == 6:
        d.poll(c.time())
    elif op == 7:
        d.bump_epoch(c.int_or(c.sids))
    elif op == 8:
        d.request_shutdown(c.time(), p.pick((None, "t", "u", "")))
    elif op == 9:
        snap = d.snapshot()
        try:
            restored = Driver.restore(snap)
        except PROJECT_ERRORS as exc:
            raise Finding(f"a driver's own snapshot does not restore: {exc!r}") from exc
        d.close()
        return restored
    elif op == 10:
        path = os.path.join(scratch_dir(), f"d-{os.getpid()}.npz")
        d.save(path)
        try:
            restored = Driver.load(path)
        except PROJECT_ERRORS as exc:
            raise Finding(f"a driver's own saved file does not load: {exc!r}") from exc
        finally:
            os.unlink(path)
        d.close()
        return restored
    elif op == 11:
        out = np.zeros(p.int_in(0, 3), REVOKED_NOTICE_DTYPE) if p.boolean() else None
        d.drain_revoked(out)
    elif op == 12:
        out = np.zeros(p.int_in(0, 8), np.int64) if p.boolean() else None
        d.drain_announces(out)
    else:
        sid, (lid, _) = c.int_or(c.sids), c.lease()
        for call in (lambda: d.stream_state(sid), lambda: d.stream_info(sid),
                     lambda: d.epoch(sid), lambda: d.lease_state(lid),
                     lambda: d.lease_expiry(lid), d.announce_eligible, d.stats, lambda: repr(d)):
            try:
                call()
            except ACCEPTED:
                pass
    return d

mutate = byte_mutate  # the input is a choice stream: plain byte mutations fit it


def seeds() -> list[bytes]:
    """Deterministic random byte strings (every input decodes to an operation sequence)."""
    return [random.Random(i).randbytes(900) for i in range(24)]


def test_one_input(data: bytes) -> None:
    p = Provider(data)
    cfg = _config(p)
    if cfg is None:
        return
    c = _Ctx(p, Driver(cfg))
    try:
        last_now = 0
        for _ in range(p.int_in(1, 40)):
            if p.remaining() == 0:
                break
            op = p.byte() % 14
            before = c.d.snapshot()
            try:
                c.d = _step(c, op)
            except ACCEPTED as exc:
                after = c.d.snapshot()
                if not snapshots_equal(before, after):
                    changed = sorted(k for k in before
                                     if not snapshots_equal({k: before[k]}, {k: after.get(k)}))
                    raise Finding(f"operation {op} raised {exc!r} but changed {changed}") from exc
            snap = c.d.snapshot()
            _invariants(c.d, snap, last_now)
            last_now = int(snap["now_ns"])
            c.now = last_now
    finally:
        c.d.close()
