"""Caller code between validation and use (issue 19 class 1, driver side).

Arguments whose methods run code (``__index__``, ``str`` subclasses) and snapshot mappings whose
methods or values run code. Rule under test: every argument is converted before the driver looks
anything up, and a snapshot is copied into owned plain values before it is validated; so a
caller's code can never make the driver act on a stale look-up or on data changed after its check.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from streamhsm import Driver, DriverClosedError, DriverConfig, DriverState, LeaseState, Role, State
from streamhsm.snapshot import SnapshotError

SEC = 1_000_000_000


def driver(**kw: Any) -> Driver:
    cfg = {"static_stream_ids": (1, 2), "allow_dynamic_streams": True,
           "dynamic_stream_id_range": (100, 103), "stream_capacity": 6, "lease_capacity": 4}
    cfg.update(kw)
    return Driver(DriverConfig(**cfg))


class Reenter:
    """An int-like whose ``__index__`` runs ``action`` (once) before answering ``value``."""

    def __init__(self, value: int, action: Callable[[], object]) -> None:
        self.value, self.action, self.calls = value, action, 0

    def __index__(self) -> int:
        self.calls += 1
        if self.calls == 1:
            self.action()
        return self.value


def state_of(d: Driver) -> tuple[Any, ...]:
    cols = d._core.columns_copy()
    return (tuple(a.tobytes() for a in cols.values()), d._streams.states.tobytes(), d._now_ns,
            d._core.last_lease_id)


def swap_lease_slot(d: Driver) -> None:
    """Client 20 detaches lease 2 and client 30 attaches: lease 3 takes lease 2's slot."""
    assert d.detach(2, 5, client_id=20)
    assert d.attach(2, Role.CONSUMER, 30, 5).lease_id == 3


def two_leases() -> Driver:
    d = driver()
    assert d.attach(1, Role.PRODUCER, 10, 0).lease_id == 1
    assert d.attach(1, Role.CONSUMER, 20, 0).lease_id == 2
    return d


def test_detach_whose_time_reenters_never_ends_another_clients_lease() -> None:
    d = two_leases()
    r = d.detach(2, Reenter(6, lambda: swap_lease_slot(d)), client_id=20)
    assert r.reason == "lease already ended"
    assert d.lease_state(3) is LeaseState.ACTIVE  # client 30's lease in the reused slot
    assert d.stream_info(2).consumers == 1


def test_keepalive_whose_time_reenters_never_extends_another_clients_lease() -> None:
    d = two_leases()
    now = Reenter(6, lambda: swap_lease_slot(d))
    expiry = None

    def capture() -> None:
        nonlocal expiry
        swap_lease_slot(d)
        expiry = d.lease_expiry(3)

    now.action = capture
    r = d.keepalive(2, now, client_id=20)
    assert r.reason == "lease ended"
    assert d.lease_expiry(3) == expiry


def test_revoke_whose_time_reenters_never_ends_another_clients_lease() -> None:
    d = two_leases()
    r = d.revoke(2, Reenter(6, lambda: swap_lease_slot(d)))
    assert r.reason == "lease already ended"
    assert d.lease_state(3) is LeaseState.ACTIVE


def test_lease_id_whose_index_reenters_is_converted_first() -> None:
    d = two_leases()
    r = d.detach(Reenter(2, lambda: swap_lease_slot(d)), 6, client_id=20)
    assert r.reason == "lease already ended"
    assert d.lease_state(3) is LeaseState.ACTIVE


def test_attach_whose_time_fills_the_stream_sees_the_new_state() -> None:
    """A producer attach whose time makes another producer attach first: one producer only."""
    d = driver()
    r = d.attach(1, Role.PRODUCER, 10, Reenter(1, lambda: d.attach(1, Role.PRODUCER, 11, 0)))
    assert r.reason == "producer already attached"
    assert d.stream_info(1).producer_client_id == 11


@pytest.mark.parametrize("shm", [False, True])
@pytest.mark.parametrize("call", [
    lambda d, ev: d.attach(1, Role.CONSUMER, 10, ev),
    lambda d, ev: d.attach(ev, Role.CONSUMER, 10, 1),
    lambda d, ev: d.keepalive(1, ev, client_id=10),
    lambda d, ev: d.detach(1, ev, client_id=10),
    lambda d, ev: d.revoke(1, ev),
    lambda d, ev: d.poll(ev),
    lambda d, ev: d.bump_epoch(ev),
    lambda d, ev: d.bump_epoch(1, now_ns=ev),
    lambda d, ev: d.request_shutdown(ev),
    lambda d, ev: d.stream_state(ev),
    lambda d, ev: d.lease_state(ev),
    lambda d, ev: d.epoch(ev),
])
def test_an_argument_that_closes_the_driver_gets_driver_closed(shm: bool, call: Any) -> None:
    """Converting an argument may close the driver (and unmap its shared segment): the call
    then raises DriverClosedError instead of touching the closed tables."""
    name = f"shsm-hostile-{uuid.uuid4().hex[:10]}" if shm else None
    d = Driver(DriverConfig(static_stream_ids=(1,)), shm_name=name)
    before = state_of(d)
    with pytest.raises(DriverClosedError, match="Driver is closed"):
        call(d, Reenter(1, d.close))
    if not shm:
        assert state_of(d) == before


class SneakyStr(str):
    """A str whose comparisons and methods lie and count their calls."""

    calls = 0

    def __eq__(self, other: object) -> bool:
        SneakyStr.calls += 1
        return True

    def __ne__(self, other: object) -> bool:
        SneakyStr.calls += 1
        return False

    __hash__ = str.__hash__

    def __len__(self) -> int:
        SneakyStr.calls += 1
        return 0

    def lower(self) -> str:  # type: ignore[override]
        SneakyStr.calls += 1
        return "producer"


def test_str_subclass_arguments_are_copied_not_asked() -> None:
    SneakyStr.calls = 0
    d = driver(shutdown_token="secret")
    assert not d.request_shutdown(1, SneakyStr("wrong"))  # __eq__ would say it matches
    with pytest.raises(ValueError, match="message has 2000 characters"):
        d.request_shutdown(1, "secret", message=SneakyStr("x" * 2000))  # __len__ would say 0
    r = d.attach(1, SneakyStr("consumer"), 10, 1)  # lower() would say producer
    assert r and d.stream_info(1).consumers == 1 and d.stream_info(1).producer_lease_id == 0
    assert SneakyStr.calls == 0
    assert d.request_shutdown(2, SneakyStr("secret"), message=SneakyStr("bye"))
    assert type(d.shutdown_notice.message) is str


# ---------------------------------------------------------------------- snapshots
def draining_snapshot() -> dict[str, Any]:
    d = driver()
    d.attach(100, Role.PRODUCER, 10, 0, create=True)
    d.attach(1, Role.CONSUMER, 11, 0)
    d.request_shutdown(1, message="maintenance")
    return d.snapshot()


def restored_columns(snap: dict[str, Any]) -> dict[str, bytes]:
    d = Driver.restore(snap)
    return {k: v.tobytes() for k, v in d._core.columns_copy().items()}


class Saboteur(str):
    """A str value that, when any of its methods runs, rewrites an array of the snapshot it sits
    in after that array was checked (the crash of the review: a stream id out of range)."""

    snap: dict[str, Any] = {}
    calls = 0

    def _strike(self) -> None:
        Saboteur.calls += 1
        Saboteur.snap["stream_id"][:] = 2**40
        Saboteur.snap["dyn_slot"][:] = 2**30

    def __len__(self) -> int:
        self._strike()
        return 0

    def __eq__(self, other: object) -> bool:
        self._strike()
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        self._strike()
        return str.__ne__(self, other)

    __hash__ = str.__hash__


@pytest.mark.parametrize("field", ["shutdown_message", "fingerprint", "kind", "config",
                                   "machine", "streams.fingerprint"])
def test_snapshot_values_cannot_rewrite_checked_arrays(field: str) -> None:
    snap = draining_snapshot()
    expected = restored_columns(draining_snapshot())
    snap[field] = Saboteur(snap[field])
    Saboteur.snap, Saboteur.calls = snap, 0
    assert restored_columns(snap) == expected
    assert Saboteur.calls == 0


class FlipDict(dict):  # type: ignore[type-arg]
    """A mapping that answers honestly once per key, then with a crafted array."""

    calls = 0

    def _flip(self, key: str, value: Any) -> Any:
        FlipDict.calls += 1
        if key == "stream_id":
            return np.full_like(value, 2**40)
        return value

    def __getitem__(self, key: str) -> Any:
        return self._flip(key, dict.__getitem__(self, key))

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return self._flip(key, dict.get(self, key, default))

    def items(self) -> Any:  # type: ignore[override]
        FlipDict.calls += 1
        return [(k, self._flip(k, v)) for k, v in dict.items(self)]

    def keys(self) -> Any:  # type: ignore[override]
        FlipDict.calls += 1
        return dict.keys(self)


def test_dict_subclass_methods_never_run() -> None:
    snap = draining_snapshot()
    FlipDict.calls = 0
    assert restored_columns(FlipDict(snap)) == restored_columns(snap)
    assert FlipDict.calls == 0


class ArraySpy(np.ndarray):  # type: ignore[type-arg]
    """An ndarray subclass that lies about its shape and counts Python-level calls."""

    calls = 0

    @property
    def shape(self) -> Any:  # type: ignore[override]
        ArraySpy.calls += 1
        return (1,)

    def __array_finalize__(self, obj: Any) -> None:
        ArraySpy.calls += 1

    def __getitem__(self, key: Any) -> Any:
        ArraySpy.calls += 1
        return super().__getitem__(key)


def test_array_subclass_values_are_copied_into_plain_arrays() -> None:
    snap = draining_snapshot()
    expected = restored_columns(draining_snapshot())
    snap["stream_id"] = snap["stream_id"].view(ArraySpy)
    ArraySpy.calls = 0
    assert restored_columns(snap) == expected
    assert ArraySpy.calls == 0


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda s: s.__setitem__(SneakyStr("extra"), 1), "snapshot key 'extra' is not a str"),
    (lambda s: s.__setitem__(7, 1), "snapshot key 7 is not a str"),
    (lambda s: s.__setitem__("now_ns", object()), "'now_ns' holds a object, not plain data"),
    (lambda s: s.__setitem__("epoch", np.array([1, None], object)),
     "'epoch' is an array of objects"),
    (lambda s: s.__setitem__("config", ["x"]), "'config' holds a list"),
])
def test_values_that_are_not_plain_data_are_refused(mutate: Any, match: str) -> None:
    snap = draining_snapshot()
    mutate(snap)
    with pytest.raises(SnapshotError, match=match):
        Driver.restore(snap)


def test_int_and_str_subclass_values_restore_as_plain_values() -> None:
    class Loud(int):
        def __index__(self) -> int:
            raise AssertionError("ran")

        def __int__(self) -> int:
            raise AssertionError("ran")

    snap = draining_snapshot()
    snap["now_ns"] = Loud(snap["now_ns"])
    d = Driver.restore(snap)
    assert type(d.now_ns) is int and d.state is DriverState.DRAINING
    assert d.stream_state(100) is State.DRAINING
