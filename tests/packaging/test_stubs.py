"""The engine's stubs are precise enough for user code to type-check under mypy --strict."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.smoke(False)  # not in the smoke suite: stub checks (mypy runs)

api = pytest.importorskip("mypy.api")

GOOD = '''
import numpy as np
from streamhsm import Event, State, StreamLifecycle, StreamTable

t = StreamTable(4)
s = t.open()
handled: bool = t.dispatch(np.int64(s), np.uint8(Event.STREAM_PROVISIONED))
t.dispatch(s, "Close")
active: int = t.stats()["occupancy"]["Active"]
by_slot: dict[int, int] = t.stats()["unhandled_by_slot"]
state: State = t.state(np.int32(s))
current: State = StreamLifecycle().current
n: int = t.count(State.LIVE) + t.count(np.uint8(1)) + t.count("Live")
'''

BAD = '''
from streamhsm import StreamTable

t = StreamTable(4)
wrong: str = t.stats()["occupancy"]["Active"]
missing = t.stats()["no_such_key"]
t.dispatch(0, 1.5)
name: str = t.state(0)
'''


def _mypy(tmp_path: Path, source: str) -> tuple[str, int]:
    path = tmp_path / "user.py"
    path.write_text(source)
    out, err, rc = api.run(["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"),
                            "--config-file", "", str(path)])
    return out + err, rc


def test_precise_stubs_accept_user_code(tmp_path: Path) -> None:
    out, rc = _mypy(tmp_path, GOOD)
    assert rc == 0, out


def test_precise_stubs_reject_wrong_user_code(tmp_path: Path) -> None:
    out, rc = _mypy(tmp_path, BAD)
    assert rc == 1
    assert ('Incompatible types in assignment (expression has type "int", variable has type "str")'
            in out)
    assert '"no_such_key"' in out
    assert 'Argument 2 to "dispatch" of "MachineTable" has incompatible type "float"' in out
    assert '(expression has type "State", variable has type "str")' in out
