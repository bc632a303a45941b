"""The `stat` screen shown in docs/running-a-driver.md has the shape `stat` prints today: the same
lines with the same words, only the numbers (and the clock, name and pid) differ."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from streamhsm import Driver, DriverConfig, Role
from streamhsm.tools.cli import main

PAGE = Path(__file__).resolve().parents[2] / "docs" / "running-a-driver.md"


def _doc_screen() -> tuple[list[str], list[str]]:
    """The documented command's arguments and the screen below it."""
    text = PAGE.read_text(encoding="utf-8")
    block = re.search(r"```text\n\$ python -m streamhsm (stat [^\n]*)\n(.*?)```", text, re.S)
    assert block, "no stat screen in docs/running-a-driver.md"
    return shlex.split(block.group(1)), block.group(2).splitlines()


def _shape(line: str, name: str) -> str:
    line = line.replace(name, "NAME")
    line = re.sub(r"^\d\d:\d\d:\d\d ", "HH:MM:SS ", line)
    return re.sub(r"\d+(\.\d+)?", "N", line)


def test_the_documented_stat_screen_is_what_stat_prints(capsys: pytest.CaptureFixture[str]) -> None:
    args, documented = _doc_screen()
    doc_name = args[1]
    name = f"doc-screen-{os.getpid()}"
    cfg = DriverConfig(allow_dynamic_streams=True, dynamic_stream_id_range=(1, 40),
                       stream_capacity=40, lease_capacity=512, shm_name=name)
    with Driver(cfg) as driver:
        for client in range(1, 301):
            role = Role.PRODUCER if client <= 40 else Role.CONSUMER
            driver.attach(1 + client % 40, role, client, 0, create=True)
        for k in range(1, 6):
            driver.poll(k * 200_000_000)
        capsys.readouterr()
        assert main([args[0], name, *args[2:], "--count", "1"]) == 0
        printed = capsys.readouterr().out.splitlines()
    assert [_shape(ln, name) for ln in printed] == [_shape(ln, doc_name) for ln in documented]
    # a screen with a recent heartbeat has published at least once (the old sample said 0x)
    published = re.search(r"published (\d+)x", documented[0])
    assert published and int(published.group(1)) > 0
