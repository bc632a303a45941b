"""Hypothesis: random operation sequences on the Driver and on a plain-Python reference driver
(dicts and sets, written only for this test), compared after every step: response codes and
reasons, lease ids, stream states, epochs, lease states, outboxes and counters."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from streamhsm import (
    Driver,
    DriverConfig,
    DriverState,
    LeaseState,
    ReferenceMachine,
    ResponseCode,
    RevokeReason,
    State,
    stream_spec,
)

pytestmark = pytest.mark.smoke(False)  # not in the smoke suite: stateful

OK, REJ, INV = ResponseCode.OK, ResponseCode.REJECTED, ResponseCode.INVALID_PARAMS
STATIC = (1, 2)
DYN = (100, 103)
UNIVERSE = [0, 1, 2, 3, 99, 100, 101, 102, 103, 104]
EXPIRY = 3_000


class RefDriver:
    """The driver rules of DESIGN section 3, as directly as Python allows."""

    def __init__(self, policy: bool, stream_cap: int, lease_cap: int, outbox: int,
                 token: str | None, timeout: int) -> None:
        self.policy, self.stream_cap, self.lease_cap = policy, stream_cap, lease_cap
        self.outbox = outbox
        self.token, self.timeout = token, timeout
        self.spec = stream_spec(policy)
        self.state = "Running"
        self.deadline: int | None = None
        self.streams: dict[int, dict[str, Any]] = {}
        self.hwm: dict[int, int] = {}
        self.leases: dict[int, dict[str, Any]] = {}
        # the lease table's slots, as it hands them out: a stack of free slots, lowest on top
        self.free_slots = list(range(lease_cap - 1, -1, -1))
        self.clients: dict[int, int] = {}
        self.last_lid = 0
        self.notices: list[tuple[int, int, int, int, int, int]] = []
        self.due: set[int] = set()
        self.c = dict.fromkeys(["attaches_ok", "attaches_rejected", "keepalives", "leases_detached",
                                "leases_expired", "leases_revoked", "epoch_bumps",
                                "streams_provisioned", "streams_closed",
                                "revoke_notices_dropped"], 0)
        self.unhandled = 0
        for sid in STATIC:
            self.provision(sid, dynamic=False)

    def ev(self, sid: int, name: str) -> None:
        m = self.streams[sid]["hsm"]
        before = m.unhandled
        m.dispatch(name)
        self.unhandled += m.unhandled - before

    def sstate(self, sid: int) -> str:
        return self.streams[sid]["hsm"].current

    def bump(self, sid: int) -> None:
        s = self.streams[sid]
        s["epoch"] += 1
        self.hwm[sid] = s["epoch"]
        self.ev(sid, "EpochBumped")
        self.c["epoch_bumps"] += 1
        self.due.add(sid)

    def recycle(self) -> None:
        for sid in [k for k, s in self.streams.items()
                    if s["dynamic"] and self.sstate(k) == "Closed"]:
            del self.streams[sid]

    def provision(self, sid: int, dynamic: bool) -> None:
        if len(self.streams) == self.stream_cap:
            self.recycle()
        self.streams[sid] = {"hsm": ReferenceMachine(self.spec), "epoch": self.hwm.get(sid, 0),
                             "producer": 0, "consumers": set(), "dynamic": dynamic}
        self.ev(sid, "StreamProvisioned")
        self.c["streams_provisioned"] += 1
        self.bump(sid)

    def reject(self, code: ResponseCode, reason: str) -> tuple[ResponseCode, str, int, int]:
        self.c["attaches_rejected"] += 1
        return code, reason, 0, 0

    def expire(self, now: int) -> int:
        """Time first: every call with a time ends the leases whose expiry is before it (the
        lease machine's expiry timer fires at expiry + 1)."""
        expired = sorted((lid for lid, lease in self.leases.items() if lease["expiry"] < now),
                         key=lambda lid: self.leases[lid]["slot"])  # the table's slot order
        for lid in expired:
            self.end(lid, RevokeReason.EXPIRED, now)
        return len(expired)

    def attach(self, sid: int, role: int, client: int, now: int, create: bool) -> tuple:  # type: ignore[type-arg]
        self.expire(now)
        if self.state != "Running":
            return self.reject(REJ, "driver draining" if self.state == "Draining"
                               else "driver stopped")
        if role not in (1, 2):
            return self.reject(INV, f"unknown role {role!r}")
        if not 0 <= sid < 2**31:
            return self.reject(INV, "stream id")
        if not 0 < client < 2**63:
            return self.reject(INV, "client id")
        if client in self.clients:
            return self.reject(REJ, "client_id already attached")
        s = self.streams.get(sid)
        creating = s is None or self.sstate(sid) == "Closed"
        if creating:
            if not create:
                return self.reject(REJ, f"unknown stream {sid}")
            if not DYN[0] <= sid <= DYN[1]:
                return self.reject(INV, "outside the dynamic range")
            closed = sum(1 for k, x in self.streams.items()
                         if x["dynamic"] and self.sstate(k) == "Closed")
            if self.stream_cap - len(self.streams) + closed == 0:
                return self.reject(REJ, "stream capacity exhausted")
        else:
            assert s is not None
            if role == 1 and s["producer"]:
                return self.reject(REJ, "producer already attached")
            if self.sstate(sid) == "Draining" and not (role == 1 and self.policy):
                return self.reject(REJ, "stream draining")
        if len(self.leases) == self.lease_cap:
            return self.reject(REJ, "lease capacity exhausted")
        if creating:
            self.streams.pop(sid, None)
            self.provision(sid, dynamic=True)
        elif role == 1:
            self.bump(sid)
        self.last_lid += 1
        lid = self.last_lid
        self.leases[lid] = {"sid": sid, "role": role, "client": client, "expiry": now + EXPIRY,
                            "slot": self.free_slots.pop()}
        self.clients[client] = lid
        s = self.streams[sid]
        if role == 1:
            s["producer"] = lid
            self.ev(sid, "ProducerAttached")
        else:
            s["consumers"].add(lid)
            self.ev(sid, "ConsumerAttached")
        self.due.add(sid)
        self.c["attaches_ok"] += 1
        return OK, "", lid, s["epoch"]

    def end(self, lid: int, reason: RevokeReason, now: int) -> None:
        lease = self.leases.pop(lid)
        self.free_slots.append(lease["slot"])
        del self.clients[lease["client"]]
        sid = lease["sid"]
        s = self.streams[sid]
        if lease["role"] == 1:
            s["producer"] = 0
            self.ev(sid, "ProducerDetached")
            self.notice(lid, sid, lease["client"], 1, reason, now)
            self.bump(sid)
        else:
            s["consumers"].discard(lid)
            self.ev(sid, "ConsumerDetached")
            self.notice(lid, sid, lease["client"], 2, reason, now)
        key = {RevokeReason.DETACHED: "leases_detached", RevokeReason.EXPIRED: "leases_expired"}
        self.c[key.get(reason, "leases_revoked")] += 1
        if (s["dynamic"] and not s["producer"] and not s["consumers"]
                and reason != RevokeReason.SHUTDOWN):
            self.ev(sid, "StreamIdle")
            self.c["streams_closed"] += 1

    def notice(self, lid: int, sid: int, client: int, role: int, reason: int, now: int) -> None:
        if len(self.notices) == self.outbox:
            self.c["revoke_notices_dropped"] += 1
        else:
            self.notices.append((lid, sid, client, role, int(reason), now))

    def keepalive(self, lid: int, now: int, client: int) -> tuple[ResponseCode, str]:
        self.expire(now)
        if lid in self.leases and self.leases[lid]["client"] != client:
            return REJ, "unknown lease"  # another client's lease: as if unknown
        if lid not in self.leases:
            return REJ, "lease ended" if 0 < lid <= self.last_lid else "unknown lease"
        self.leases[lid]["expiry"] = now + EXPIRY
        self.c["keepalives"] += 1
        return OK, ""

    def finish(self, lid: int, now: int, reason: RevokeReason,
               client: int | None = None) -> tuple[ResponseCode, str]:
        self.expire(now)
        if lid in self.leases and client is not None and self.leases[lid]["client"] != client:
            return REJ, "unknown lease"  # another client's lease: as if unknown
        if lid not in self.leases:
            return ((OK, "lease already ended") if 0 < lid <= self.last_lid
                    else (REJ, "unknown lease"))
        self.end(lid, reason, now)
        return OK, ""

    def poll(self, now: int) -> int:
        if self.state != "Stopped":
            self.recycle()
        expired = self.expire(now)
        if self.state == "Draining" and self.deadline is not None and now >= self.deadline:
            for lid in list(self.leases):
                self.end(lid, RevokeReason.SHUTDOWN, now)
            self.recycle()
            for sid in self.streams:
                if self.sstate(sid) != "Closed":
                    self.c["streams_closed"] += 1
                self.ev(sid, "DriverShutdown")
            self.state = "Stopped"
        return expired

    def bump_epoch(self, sid: int) -> tuple[ResponseCode, str, int]:
        if sid not in self.streams:
            return REJ, f"unknown stream {sid}", 0
        if self.sstate(sid) == "Closed":
            return REJ, f"stream {sid} is closed", 0
        self.bump(sid)
        return OK, "", self.streams[sid]["epoch"]

    def request_shutdown(self, now: int, token: str | None) -> tuple[ResponseCode, str]:
        if self.token is not None and token != self.token:
            return REJ, "invalid shutdown token"
        if self.state != "Running":
            return OK, f"already {self.state.lower()}"
        self.state = "Draining"
        self.deadline = now + self.timeout
        self.recycle()
        for sid in self.streams:
            self.ev(sid, "DriverDraining")
            if self.sstate(sid) != "Closed":
                self.due.add(sid)
        return OK, "draining"


ST_NAMES = {s.name.lower(): s for s in State}


class DriverVsReference(RuleBasedStateMachine):
    @initialize(policy=st.booleans(), token=st.sampled_from([None, "tok"]),
                timeout=st.sampled_from([0, 2_000, 10_000]))
    def setup(self, policy: bool, token: str | None, timeout: int) -> None:
        self.now = 0
        self.token = token
        cfg = DriverConfig(static_stream_ids=STATIC, allow_dynamic_streams=True,
                           dynamic_stream_id_range=DYN, lease_keepalive_interval_ns=1_000,
                           lease_expiry_grace_intervals=3, shutdown_timeout_ns=timeout,
                           shutdown_token=token, drain_on_producer_loss=policy,
                           stream_capacity=5, lease_capacity=4, outbox_capacity=3)
        self.d = Driver(cfg)
        self.r = RefDriver(policy, 5, 4, 3, token, timeout)

    def tick(self, dt: int) -> int:
        self.now += dt
        return self.now

    @rule(sid=st.sampled_from(UNIVERSE + [-1]), role=st.sampled_from([1, 2, 2, 7]),
          client=st.integers(0, 6), dt=st.sampled_from([0, 1, 1_000]), create=st.booleans())
    def attach(self, sid: int, role: int, client: int, dt: int, create: bool) -> None:
        now = self.tick(dt)
        got = self.d.attach(sid, role, client, now, create=create)
        code, reason, lid, epoch = self.r.attach(sid, role, client, now, create)
        assert got.code == code, (got, reason)
        assert got.reason.startswith(reason) or reason in got.reason, (got.reason, reason)
        assert (got.lease_id, got.epoch) == (lid, epoch)

    def own(self, lid: int, client: int) -> int:
        """``client``, or for -1 the lease's own client (so most calls come from the owner)."""
        if client >= 0:
            return client
        return int(self.r.leases[lid]["client"]) if lid in self.r.leases else 1

    @rule(lid=st.integers(0, 12), dt=st.sampled_from([0, 1, 1_000]),
          client=st.sampled_from([-1, -1, -1, 0, 1, 2, 3, 4, 5, 6]))
    def keepalive(self, lid: int, dt: int, client: int) -> None:
        client = self.own(lid, client)
        now = self.tick(dt)
        got = self.d.keepalive(lid, now, client_id=client)
        assert (got.code, got.reason) == self.r.keepalive(lid, now, client)

    @rule(lid=st.integers(0, 12), dt=st.sampled_from([0, 1, 1_000]), revoke=st.booleans(),
          client=st.sampled_from([-1, -1, -1, 0, 1, 2, 3, 4, 5, 6]))
    def detach_or_revoke(self, lid: int, dt: int, revoke: bool, client: int) -> None:
        client = self.own(lid, client)
        now = self.tick(dt)
        got = self.d.revoke(lid, now) if revoke else self.d.detach(lid, now, client_id=client)
        reason = RevokeReason.REVOKED if revoke else RevokeReason.DETACHED
        assert (got.code, got.reason) == self.r.finish(lid, now, reason, None if revoke else client)

    @rule(dt=st.sampled_from([0, 1, 1_000, 3_001]))
    def poll(self, dt: int) -> None:
        now = self.tick(dt)
        assert self.d.poll(now) == self.r.poll(now)

    @rule(sid=st.sampled_from(UNIVERSE))
    def bump_epoch(self, sid: int) -> None:
        got = self.d.bump_epoch(sid)
        assert (got.code, got.reason, got.epoch) == self.r.bump_epoch(sid)

    @rule(dt=st.sampled_from([0, 1, 1_000]), good=st.booleans())
    def request_shutdown(self, dt: int, good: bool) -> None:
        now = self.tick(dt)
        token = self.token if good else "nope"
        got = self.d.request_shutdown(now, token)
        assert (got.code, got.reason) == self.r.request_shutdown(now, token)

    @rule()
    def drain_outboxes(self) -> None:
        notices = [tuple(int(x) for x in rec) for rec in self.d.drain_revoked().tolist()]
        assert sorted(notices) == sorted(self.r.notices)
        self.r.notices.clear()
        announced = self.d.drain_announces().tolist()
        assert len(announced) == len(set(announced))
        expected = {sid for sid in self.r.due
                    if sid in self.r.streams and self.r.sstate(sid) in ("Active", "Draining")}
        assert set(announced) == expected
        self.r.due.clear()

    @invariant()
    def agrees(self) -> None:
        if not hasattr(self, "d"):
            return
        d, r = self.d, self.r
        assert d.state is DriverState[r.state.upper()]
        for sid in UNIVERSE:
            want = ST_NAMES[r.sstate(sid).lower()] if sid in r.streams else None
            assert d.stream_state(sid) is want, sid
            want_epoch = r.streams[sid]["epoch"] if sid in r.streams else r.hwm.get(sid, 0)
            assert d.epoch(sid) == want_epoch, sid
            info = d.stream_info(sid)
            if info is not None:
                s = r.streams[sid]
                assert (info.producer_lease_id, info.consumers, info.dynamic) == (
                    s["producer"], len(s["consumers"]), s["dynamic"])
        for lid in range(0, r.last_lid + 2):
            want = (LeaseState.ACTIVE if lid in r.leases else
                    LeaseState.CLOSED if 0 < lid <= r.last_lid else None)
            assert d.lease_state(lid) is want, lid
            if lid in r.leases:
                assert d.lease_expiry(lid) == r.leases[lid]["expiry"]
        counters = d.counters
        for k, v in r.c.items():
            assert counters[k] == v, k
        assert counters["stream_hsm_unhandled"] == r.unhandled
        assert counters["lease_hsm_unhandled"] == 0
        assert d.live_leases == len(r.leases)
        # every live lease belongs to a Live stream; at most one producer per stream
        for lease in r.leases.values():
            assert d.stream_state(lease["sid"]) in (State.ACTIVE, State.DRAINING)


DriverVsReference.TestCase.settings = settings(max_examples=120, stateful_step_count=50,
                                               deadline=None)
test_driver_vs_reference = DriverVsReference.TestCase
