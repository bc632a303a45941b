"""The documentation site's sources: the generated API reference covers every public name, and
the examples on the user pages run (without Sphinx: the generator is plain Python).

The site itself is built by ``bash ci/docs.sh`` (Sphinx, warnings as errors).
"""

from __future__ import annotations

import doctest
import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import streamhsm
import streamhsm.driver
import streamhsm.machine
import streamhsm.shm
import streamhsm.snapshot

DOCS = Path(__file__).resolve().parents[2] / "docs"
#: Pages whose ``pycon`` blocks are executed here, each page in one namespace.
DOCTEST_PAGES = ("getting-started.md", "writing-machines.md", "running-a-driver.md")


@pytest.fixture(scope="module")
def apigen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("apigen", DOCS / "_ext" / "apigen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pages(apigen: ModuleType) -> dict[str, str]:
    return apigen.generate()  # type: ignore[no-any-return]


def _entry(qualified: str) -> re.Pattern[str]:
    return re.compile(rf"^\.\. (auto\w+|py:data):: {re.escape(qualified)}$", re.M)


def test_every_public_name_has_its_entry_and_page(pages: dict[str, str]) -> None:
    assert len(streamhsm.__all__) > 20
    for name in streamhsm.__all__:
        qualified = f"streamhsm.{name}"
        page = pages.get(f"ref/{qualified}.rst")
        assert page is not None, f"{qualified} has no reference page"
        assert _entry(qualified).search(page), f"{qualified}: no autodoc entry on its page"
        row = f"   * - :py:obj:`{qualified}`"
        assert row in pages["index.rst"], f"{qualified} is not in the index's summary table"
        groups = [p for p in pages if "/" not in p and p != "index.rst" and row in pages[p]]
        assert groups, f"{qualified} is on no group page"


@pytest.mark.parametrize("module", [streamhsm.machine, streamhsm.driver, streamhsm.shm,
                                    streamhsm.snapshot])
def test_every_submodule_name_is_documented_or_linked(
        pages: dict[str, str], module: ModuleType) -> None:
    page = pages[f"{module.__name__}.rst"]
    assert f".. automodule:: {module.__name__}" in page
    for name in module.__all__:
        if name in streamhsm.__all__ and getattr(streamhsm, name) is getattr(module, name):
            assert f":py:obj:`streamhsm.{name}`" in page, f"{name}: no link from {module.__name__}"
        else:
            qualified = f"{module.__name__}.{name}"
            assert _entry(qualified).search(pages[f"ref/{qualified}.rst"]), qualified


def test_the_reference_follows_all_not_a_hand_kept_list(
        apigen: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name added to ``streamhsm.__all__`` from a module no group lists gets a page in the
    fallback group; a name removed disappears."""
    from streamhsm.tools.diagram import render

    monkeypatch.setattr(streamhsm, "render", render, raising=False)
    names = [n for n in streamhsm.__all__ if n != "ReferenceMachine"] + ["render"]
    monkeypatch.setattr(streamhsm, "__all__", names)
    pages = apigen.generate()
    assert _entry("streamhsm.render").search(pages["ref/streamhsm.render.rst"])
    assert "streamhsm.render" in pages[f"{apigen.FALLBACK.slug}.rst"]
    assert not any("streamhsm.ReferenceMachine" in text for text in pages.values())


def test_a_constant_without_a_description_is_an_error(
        apigen: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streamhsm, "UNDESCRIBED", 12345, raising=False)
    monkeypatch.setattr(streamhsm, "__all__", [*streamhsm.__all__, "UNDESCRIBED"])
    with pytest.raises(ValueError, match="streamhsm.UNDESCRIBED has no description"):
        apigen.generate()


def test_constants_take_the_comment_above_their_assignment(pages: dict[str, str]) -> None:
    page = pages["ref/streamhsm.FREE_SLOT.rst"]  # defined in the compiled engine (.pyx)
    assert ":value: 255" in page and "free (released or never opened) slot" in page
    page = pages["ref/streamhsm.MAX_STREAM_ID.rst"]
    assert "Largest stream id" in page


def test_google_sections_get_their_continuation_lines_indented(apigen: ModuleType) -> None:
    lines = ["Do it.", "", "Raises:", "    TypeError / ValueError: wrong type,",
             "    or a bad value. All checked", "    first.", "    IndexError: out of range.",
             "", "Returns:", "    A count."]
    assert apigen.indent_continuations(lines) == 2
    assert lines[3:7] == ["    TypeError / ValueError: wrong type,",
                          "        or a bad value. All checked", "        first.",
                          "    IndexError: out of range."]
    assert lines[-1] == "    A count."


def _run_page(path: Path) -> tuple[int, int, str]:
    text = path.read_text(encoding="utf-8")
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    globs: dict[str, Any] = {"__name__": "__docs__"}
    for match in re.finditer(r"^```pycon\n(.*?)^```", text, re.S | re.M):
        lineno = text.count("\n", 0, match.start(1))
        test = parser.get_doctest(match.group(1), globs, path.name, str(path), lineno)
        runner.run(test, out=report.append, clear_globs=False)
        globs = test.globs  # the page's blocks share one namespace, as in a session
    return runner.failures, runner.tries, "".join(report)


@pytest.mark.parametrize("page", DOCTEST_PAGES)
def test_page_examples_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    failures, tries, report = _run_page(DOCS / page)
    assert tries > 0, f"{page} has no pycon examples"
    assert failures == 0, report


def test_compiled_signatures_come_from_the_stubs(apigen: ModuleType) -> None:
    """autodoc sees only Cython's untyped embedded signature; the reference shows the .pyi's."""
    sig, ret = apigen.stub_signature("method", streamhsm.MachineTable.dispatch_many)
    assert sig.startswith("(slots: npt.NDArray[np.int32] | npt.NDArray[np.int64], events:")
    assert "self" not in sig and ret == "int"
    sig, ret = apigen.stub_signature("method", streamhsm.StreamTable.dispatch)  # inherited
    assert (sig, ret) == ("(slot: SupportsIndex, event: _Code)", "bool")
    sig, ret = apigen.stub_signature("class", streamhsm.MachineTable)
    assert sig == ("(machine: CompiledMachine, capacity: int, *, "
                   "arrays: dict[str, npt.NDArray[Any]] | None=None, "
                   "now_ns: int | np.integer[Any]=0)") and ret is None
    assert apigen.property_type("streamhsm.StreamTable.states") == "npt.NDArray[np.uint8]"
    # pure-Python objects keep autodoc's own signature (from their annotations)
    assert apigen.stub_signature("method", streamhsm.Driver.poll) is None


def test_references_to_re_exported_names_resolve_to_their_entry(apigen: ModuleType) -> None:
    assert apigen.documented_target("Driver", "streamhsm.driver") == "streamhsm.Driver"
    assert apigen.documented_target("~streamhsm.driver.Driver", None) == "streamhsm.Driver"
    assert (apigen.documented_target("MachineTable.stats", "streamhsm.shm")
            == "streamhsm.MachineTable.stats")
    assert (apigen.documented_target("open_readonly", "streamhsm.shm")
            == "streamhsm.shm.open_readonly")
    assert apigen.documented_target("NoSuchThing", "streamhsm.shm") is None
    # machine.py's docstrings (shown under streamhsm.MachineSpec) name its own names briefly
    assert (apigen.documented_target("camel_to_upper", "streamhsm")
            == "streamhsm.machine.camel_to_upper")
    assert (apigen.documented_target("streamhsm.machine.HandlerDecl", None)
            == "streamhsm.HandlerDecl")
    assert apigen.documented_target("ROOT", "streamhsm") is None  # streamhsm.ROOT: Sphinx's own


def test_a_prose_colon_in_a_property_docstring_is_not_read_as_a_type(apigen: ModuleType) -> None:
    lines = ["Lifetime of a lease after its last keepalive: interval * grace intervals."]
    assert apigen.protect_prose_colon(lines)
    assert lines == ["Lifetime of a lease after its last keepalive \N{EM DASH} "
                     "interval * grace intervals."]
    typed = ["npt.NDArray[np.uint8]: the states."]
    assert not apigen.protect_prose_colon(typed) and typed == ["npt.NDArray[np.uint8]: the states."]
