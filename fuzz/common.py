"""Shared pieces of the fuzz harnesses: a byte-driven input decoder, the extreme values, the
accepted exceptions, the invariant checks, and the memory limit.

Nothing here imports atheris: the harnesses' ``test_one_input`` functions run the same way under
the fuzzer (``fuzz/run.py``), in the corpus replay (``fuzz/replay.py``) and in the test suite
(``tests/fuzz/test_regressions.py``), which must work where atheris is not installed (the wheel
and ASan venvs).
"""

from __future__ import annotations

import atexit
import os
import random
import resource
import shutil
import struct
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import streamhsm
from streamhsm import FREE_SLOT, MachineSpec, MachineTable

#: Integers that sit on a boundary of some C type or of the package's own limits.
EXTREME_INTS: tuple[int, ...] = (
    0, 1, -1, 2, 3, 7, 8, 254, 255, 256, 2**15 - 1, 2**15, 2**16, 2**24, 2**24 + 1,
    2**31 - 2, 2**31 - 1, 2**31, -2**31, -2**31 - 1, 2**32 - 1, 2**32, 2**40, -2**40,
    2**62, 2**63 - 10, 2**63 - 1, 2**63, 2**63 + 1, -2**63, -2**63 - 1, 2**64 - 1, 2**64,
    -3, 10**9, 3 * 10**9, 2**100,
)


_SCRATCH: list[str] = []


def scratch_dir() -> str:
    """A private temporary directory for this process, removed at exit."""
    if not _SCRATCH:
        path = tempfile.mkdtemp(prefix="streamhsm-fuzz-")
        atexit.register(shutil.rmtree, path, True)
        _SCRATCH.append(path)
    return _SCRATCH[0]


class Finding(AssertionError):
    """An oracle violation (a crash or a disallowed exception needs no class: it propagates)."""


def under_asan() -> bool:
    """True when the AddressSanitizer runtime is preloaded (ci/asan-tests.sh)."""
    return "asan" in os.environ.get("LD_PRELOAD", "") or "ASAN_OPTIONS" in os.environ


def limit_memory(megabytes: int = 1024) -> None:
    """Cap the address space, so a file that makes the package allocate gigabytes raises
    MemoryError (a finding) instead of getting the machine OOM-killed. Not under ASan, whose
    shadow memory needs terabytes of address space (it has its own allocation limit there)."""
    if under_asan():
        return
    limit = megabytes * 2**20
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


class Provider:
    """Decode fuzz bytes into choices. Past the end of the data every read returns zeros, so
    every input decodes to something and decoding never raises."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return max(0, len(self.data) - self.pos)

    def raw(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out + b"\x00" * (n - len(out))

    def byte(self) -> int:
        return self.raw(1)[0]

    def boolean(self) -> bool:
        return bool(self.byte() & 1)

    def u32(self) -> int:
        return int(struct.unpack("<I", self.raw(4))[0])

    def i64(self) -> int:
        return int(struct.unpack("<q", self.raw(8))[0])

    def int_in(self, low: int, high: int) -> int:
        """An int in [low, high]."""
        span = high - low + 1
        if span <= 256:
            return low + self.byte() % span
        return low + self.u32() % span

    def pick(self, seq: Sequence[Any]) -> Any:
        return seq[self.int_in(0, len(seq) - 1)]

    def extreme_int(self) -> int:
        """An extreme integer, an arbitrary int64, or a small one."""
        kind = self.byte() % 4
        if kind <= 1:
            return int(self.pick(EXTREME_INTS))
        if kind == 2:
            return self.i64()
        return self.int_in(-4, 20)


_FLAGGED: dict[int, Any] = {}


def flagged_machine(k: int) -> Any:
    """A compiled machine with ``k`` (1..4) flags whose every flag changes what most events do in
    most states, with guards, negated guards and a deep initial transition (cached).

    Root > Top (initial: the grandchild Deep) > Mid > {Deep, Deep2}; Top > Side; Root > Out.
    Events E0..E{k-1}, Noop (handled in place everywhere), Miss (handled in place under Top
    while f0 is set, else unhandled), Hop.
    """
    if k not in _FLAGGED:
        events = [f"E{i}" for i in range(k)] + ["Noop", "Miss", "Hop"]
        spec = MachineSpec(f"fuzzflags{k}", events, initial="Deep")
        for i in range(k):
            spec.flag(f"f{i}")
        spec.state("Top", initial="Deep").state("Mid", "Top", initial="Deep")
        spec.state("Deep", "Mid").state("Deep2", "Mid").state("Side", "Top").state("Out")
        for i in range(k):
            e, f, g = f"E{i}", f"f{i}", f"f{(i + 1) % k}"
            spec.on("Mid", e, "Side", guard=f)
            spec.on("Side", e, "Deep2", guard=f"!{f}")
            spec.on("Top", e, "Out", guard=f"!{f}")
            spec.on("Out", e, "Top", guard=g)
            if k > 1:
                spec.on("Out", e, "Deep2", guard=f"!{f}")
        spec.on("Root", "Noop")
        spec.on("Top", "Miss", guard="f0")
        spec.on("Deep", "Hop", "Deep2").on("Deep2", "Hop", "Deep").on("Out", "Hop", "Out")
        _FLAGGED[k] = spec.compile()
    return _FLAGGED[k]


def table_invariants(table: MachineTable, what: str = "table") -> None:
    """Cheap consistency checks of a table: len() equals the open states, every occupancy count
    equals the histogram of the state array, every open state is a leaf of the machine, every
    flag bitmask is one of the machine's (below ``2**n_flags``) and free slots have none."""
    states = np.array(table.states, copy=True)
    n_open = int(np.count_nonzero(states != FREE_SLOT))
    if len(table) != n_open:
        raise Finding(f"{what}: len() is {len(table)} but {n_open} slots have an open state")
    if not 0 <= len(table) <= table.capacity:
        raise Finding(f"{what}: len() {len(table)} outside 0..{table.capacity}")
    machine = table.machine
    hist = np.bincount(states, minlength=256)
    for code in range(1, machine.n_states):
        if not machine.is_leaf[code]:
            continue
        if table.count(code) != int(hist[code]):
            raise Finding(f"{what}: count({machine.state_names[code]}) is {table.count(code)} "
                          f"but {int(hist[code])} slots are in it")
    bad = [int(s) for s in np.unique(states)
           if s != FREE_SLOT and (s >= machine.n_states or s == 0 or not machine.is_leaf[s])]
    if bad:
        raise Finding(f"{what}: state codes {bad} are not leaves of {machine.name!r}")
    if table.unhandled_total < int(np.asarray(table.unhandled).sum(dtype=np.uint64)):
        raise Finding(f"{what}: unhandled_total below the per-slot sum")
    flags = np.array(table.flags, copy=True)
    if flags.shape != states.shape or flags.dtype != np.uint8:
        raise Finding(f"{what}: flags is {flags.dtype} {flags.shape}, not uint8 {states.shape}")
    above = np.flatnonzero(flags >> machine.n_flags)
    if above.size:
        raise Finding(f"{what}: slot {int(above[0])} has flags {int(flags[above[0]])}, beyond the "
                      f"machine's {machine.n_flags} flags")
    free_flagged = np.flatnonzero((states == FREE_SLOT) & (flags != 0))
    if free_flagged.size:
        raise Finding(f"{what}: free slot {int(free_flagged[0])} has flags "
                      f"{int(flags[free_flagged[0]])}")


class LyingArray(np.ndarray):
    """An ndarray subclass whose Python-level ``shape``, ``ndim``, ``size`` and ``reshape`` lie
    or run code (issue 19 class 1): the engine must read its buffer, never these. ``on_call``,
    if set, runs inside ``reshape`` (a harness points it at the table under test)."""

    on_call: Callable[[], Any] | None = None

    @property  # type: ignore[misc]
    def shape(self) -> tuple[int, ...]:
        return (int(np.ndarray.__len__(self)) * 8 + 8,) if np.ndarray.__len__(self) else (64,)

    @property  # type: ignore[misc]
    def ndim(self) -> int:
        return 1

    @property  # type: ignore[misc]
    def size(self) -> int:
        return 1 << 20

    def reshape(self, *args: Any, **kwargs: Any) -> Any:
        if LyingArray.on_call is not None:
            LyingArray.on_call()
        return np.ndarray.reshape(np.asarray(self), 1 << 20)  # a lie as well


class HostileDict(dict):  # type: ignore[type-arg]
    """A snapshot mapping whose ``get``/``__getitem__`` rewrite every array it holds (in place,
    to crafted values) and answer with a crafted array: the engine must read ``dict``'s own
    storage once and never these (issue 19 class 1)."""

    def get(self, key: Any, default: Any = None) -> Any:  # type: ignore[override]
        for value in dict.values(self):
            if isinstance(value, np.ndarray) and value.size and value.dtype.kind in "iu":
                value[...] = np.iinfo(value.dtype).max
        value = dict.get(self, key, default)
        return np.full_like(value, 2**7) if isinstance(value, np.ndarray) else value

    __getitem__ = get  # type: ignore[assignment]


class LyingStr(str):
    """A str whose comparisons and length lie."""

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__

    def __len__(self) -> int:
        return 0


def hostile(snap: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``snap`` as a :class:`HostileDict` whose strs are :class:`LyingStr` and whose
    arrays are :class:`LyingArray` views of copies (restoring it must equal restoring ``snap``)."""
    out: dict[str, Any] = {}
    for k, v in snap.items():
        if type(v) is str:
            v = LyingStr(v)
        elif isinstance(v, np.ndarray) and v.ndim == 1:
            v = v.copy().view(LyingArray)
        out[k] = v
    return HostileDict(out)


def table_state(table: MachineTable) -> tuple[bytes, ...]:
    """Everything observable about a table, to check that a rejected call changed nothing."""
    return (np.array(table.states).tobytes(), np.array(table.unhandled).tobytes(),
            np.array(table.transition_counts).tobytes(), np.array(table.flags).tobytes(),
            struct.pack("<qQ", len(table), table.unhandled_total))


def snapshots_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True if two snapshot dicts hold the same keys and values."""
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)
                    and x.dtype == y.dtype and np.array_equal(x, y)):
                return False
        elif x != y:
            return False
    return True


#: Project errors every harness accepts (each entry point documents them).
PROJECT_ERRORS: tuple[type[BaseException], ...] = (streamhsm.StreamHsmError,)


_INTERESTING = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00\x00\x80", b"\xff\xff\xff\x7f",
                b"\x00\x00\x00\x00\x00\x00\x00\x80", b"\xff\xff\xff\xff\xff\xff\xff\x7f",
                b"\xff\xff\xff\xff\xff\xff\xff\xff")


def byte_mutate(data: bytes, max_size: int, rng: random.Random) -> bytes:
    """A plain byte-level mutation (used where atheris is absent: ``fuzz/explore.py``)."""
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4))):
        op = rng.randrange(6)
        pos = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[min(pos, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and out:
            out[min(pos, len(out) - 1)] = rng.randrange(256)
        elif op == 2:
            chunk = rng.choice(_INTERESTING)
            out[pos:pos + len(chunk)] = chunk
        elif op == 3 and out:
            del out[pos:pos + rng.choice((1, 4, 64, len(out)))]
        elif op == 4:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.choice((1, 4, 16))))
        elif out:  # copy a chunk elsewhere
            a = rng.randrange(len(out))
            out[pos:pos] = out[a:a + rng.choice((1, 8, 64))]
    return bytes(out[:max_size])


def libfuzzer_bytes(data: bytes, max_size: int, rng: random.Random) -> bytes:
    """libFuzzer's own byte mutation (inside ``fuzz/run.py``)."""
    import atheris

    return bytes(atheris.Mutate(data, max_size))


_UNRAISABLE: list[str] = []


def _record_unraisable(info: Any) -> None:
    _UNRAISABLE.append(f"{type(info.exc_value).__name__}: {info.exc_value} "
                       f"(in {info.object!r})")


def guarded(target: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """``target`` plus one more oracle: an exception swallowed inside compiled code ("Exception
    ignored in ...", e.g. a bounds check in a ``noexcept`` function of the debug build) is a
    finding, not a pass."""
    sys.unraisablehook = _record_unraisable

    def run(data: bytes) -> None:
        _UNRAISABLE.clear()
        target(data)
        if _UNRAISABLE:
            raise Finding(f"an exception was swallowed inside the package: {_UNRAISABLE[0]}")

    return run
