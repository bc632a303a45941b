"""Reliability checks that are about the package as a whole."""

from __future__ import annotations

import re
from pathlib import Path

import streamhsm


def _sources() -> list[Path]:
    pkg = Path(streamhsm.__file__).resolve().parent
    return sorted(p for p in pkg.iterdir() if p.suffix in (".py", ".pyx", ".pxd"))


def test_no_pickle_anywhere() -> None:
    """No code path loads pickles: no pickle/marshal/shelve import, no allow_pickle=True."""
    sources = _sources()
    assert len(sources) >= 10  # the installed package ships its sources, .pyx included
    pattern = re.compile(r"\b(import pickle|from pickle|import marshal|import shelve|"
                         r"allow_pickle\s*=\s*True|pickle\.loads?)\b")
    offenders = [f"{p.name}: {m.group(0)}" for p in sources
                 for m in pattern.finditer(p.read_text())]
    assert offenders == []


def test_every_public_name_has_a_docstring() -> None:
    missing = []
    for name in streamhsm.__all__:
        obj = getattr(streamhsm, name)
        if callable(obj) and not (getattr(obj, "__doc__", None) or "").strip():
            missing.append(name)
    assert missing == []
