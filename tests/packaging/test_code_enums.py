"""Code enums read as names wherever a person reads them (str, f-strings, print), on every
supported Python, and still behave as ints everywhere else."""

from __future__ import annotations

import json

import pytest

import streamhsm
from streamhsm import CodeEnum, Driver, DriverConfig, Event, State, StreamLifecycle
from streamhsm.driver import DriverState, LeaseEvent, LeaseState, ResponseCode, Role

ENUMS = [State, Event, Role, ResponseCode, LeaseState, LeaseEvent, DriverState]


@pytest.mark.parametrize("cls", ENUMS, ids=lambda c: c.__name__)
def test_every_code_enum_prints_its_names(cls: type[CodeEnum]) -> None:
    assert issubclass(cls, CodeEnum)
    for member in cls:
        assert str(member) == f"{cls.__name__}.{member.name}"
        assert f"{member}" == str(member)
        assert f"{member:>40}".strip() == str(member)
        assert "%s" % member == str(member)  # noqa: UP031  (%-formatting is the check)


@pytest.mark.parametrize("cls", ENUMS, ids=lambda c: c.__name__)
def test_code_enums_stay_ints(cls: type[CodeEnum]) -> None:
    for member in cls:
        value = int(member)
        assert member == value and hash(member) == hash(value)
        assert "%d" % member == str(value)  # noqa: UP031  (%-formatting is the check)
        assert json.dumps(member) == str(value)
        assert member + 0 == value


def test_what_a_person_prints_shows_names(capsys: pytest.CaptureFixture[str]) -> None:
    one = StreamLifecycle()
    one.dispatch("StreamProvisioned")
    driver = Driver(DriverConfig())
    print(one.current, driver.state)
    assert capsys.readouterr().out.split() == ["State.ACTIVE", "DriverState.RUNNING"]


def test_code_enum_is_public() -> None:
    assert "CodeEnum" in streamhsm.__all__
    assert streamhsm.CodeEnum.__doc__
