"""Local Sphinx extension: everything the site generates from the code at build time.

- ``api/*.rst``: the API reference stubs, from ``streamhsm.__all__`` (see ``apigen.py``).
- ``_generated/diagrams.md``: every machine the ``diagram`` command knows, drawn with Graphviz
  from :func:`streamhsm.tools.diagram.render` (``"dot"``), with the Mermaid text beside it.
- ``_generated/scaling.png``: :func:`streamhsm.tools.bench.plot_scaling`, small and fast.
- Signatures of compiled objects from their ``.pyi`` stubs: autodoc sees only the untyped
  signature Cython embeds in the docstring, so ``autodoc-process-signature`` replaces it with
  the stub's (argument and return annotations).
- A public object or method without a docstring is reported as a warning (an error under
  ``-W``), so a missing docstring fails the build.
- References to re-exported objects (``Driver`` in ``streamhsm.driver``'s docstrings,
  ``streamhsm.driver.Driver``) resolve to the entry the reference has (``streamhsm.Driver``).
- Docstring touches before napoleon reads them: flush continuation lines in ``Args:`` /
  ``Raises:`` sections are indented; a property docstring's prose colon is not read as a type.

The Sphinx-free parts live in ``apigen.py``, so ``tests/tools/test_docs.py`` runs without Sphinx.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pygments.lexers.special import TextLexer  # noqa: E402
from sphinx.application import Sphinx  # noqa: E402
from sphinx.util import logging  # noqa: E402

import apigen  # noqa: E402

logger = logging.getLogger(__name__)

GENERATED = "_generated"

#: The scaling plot at build time: small tables and batches, a few seconds on a shared 2-core
#: machine. STREAMHSM_DOCS_PLOT_SIZES (comma-separated) and STREAMHSM_DOCS_PLOT_EVENTS override.
PLOT_SIZES = (1_000, 10_000, 100_000, 1_000_000)
PLOT_EVENTS = 1_000_000


def process_signature(app: Sphinx, what: str, name: str, obj: Any, options: Any,
                      signature: str | None, return_annotation: str | None
                      ) -> tuple[str | None, str | None] | None:
    """Compiled objects: the signature of the ``.pyi`` stub (None: keep autodoc's)."""
    return apigen.stub_signature(what, obj)


# --- Google-style sections with unindented continuation lines -----------------------------

def fix_sections(app: Sphinx, what: str, name: str, obj: Any, options: Any,
                 lines: list[str]) -> None:
    apigen.indent_continuations(lines)
    if what in ("property", "attribute"):
        apigen.protect_prose_colon(lines)


# --- references to re-exported names ------------------------------------------------------

def resolve_alias(app: Sphinx, env: Any, node: Any, contnode: Any) -> Any:
    if node.get("refdomain") != "py":
        return None
    name = apigen.documented_target(node["reftarget"], node.get("py:module"))
    if name is None or name == node["reftarget"]:
        return None
    return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, node["reftype"],
                                             name, node, contnode)


# --- missing docstrings --------------------------------------------------------------------

def check_docstring(app: Sphinx, what: str, name: str, obj: Any, options: Any,
                    lines: list[str]) -> None:
    if what not in ("module", "class", "exception", "function", "method", "property",
                    "attribute"):
        return
    if name.rsplit(".", 1)[-1].startswith("_"):
        return
    if what != "attribute" and not any(line.strip() for line in lines):
        logger.warning("%s %s has no docstring", what, name, type="streamhsm",
                       subtype="docstring")
    if what in ("property", "attribute"):
        kind = apigen.property_type(name)
        if kind is not None and not any(":type:" in line for line in lines):
            lines.extend(["", f"Type: ``{kind}``"])


# --- generated pages and pictures ----------------------------------------------------------

def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


_EVENT_LIST = re.compile(r"\[([A-Za-z]+(?:, [A-Za-z]+)+)\]")
_INITIAL_TO_COMPOSITE = re.compile(r"^(\s*\w+__initial -> (\w+)__anchor);$", re.M)


def presentable(dot: str) -> str:
    """Layout touches on the generator's DOT, for a page column: lists of events handled in
    place wrapped two per line, and an initial arrow into a composite ending at its border.
    The states, edges and labels are the generator's."""
    def wrap(m: re.Match[str]) -> str:
        items = m.group(1).split(", ")
        pairs = (", ".join(items[i:i + 2]) for i in range(0, len(items), 2))
        return "[" + ",\\n".join(pairs) + "]"

    dot = _EVENT_LIST.sub(wrap, dot)
    return _INITIAL_TO_COMPOSITE.sub(r"\1 [lhead=cluster_\2];", dot)


def diagrams_page(gen: Path) -> str:
    """Markdown for every machine the ``diagram`` command can draw; the DOT files go to ``gen``."""
    from streamhsm import registry
    from streamhsm.tools.diagram import render

    parts = []
    names = list(dict.fromkeys(name for name, _ in registry.known()))
    for name in names:
        seen: dict[str, str] = {}
        for policy in registry.policies(name):
            dot = render(registry.machine(name, policy), "dot")
            if dot not in seen.values():
                seen[policy] = dot
        for policy, dot in seen.items():
            machine = registry.machine(name, policy)
            flags = f"--machine {name}" + ("" if policy == "default" else f" --policy {policy}")
            title = f"`{name}` machine" + (f", `{policy}` policy" if len(seen) > 1 else "")
            dot_file = f"{name}-{policy}.dot"
            _write_if_changed(gen / dot_file, presentable(dot))
            parts.append(
                f"## {title}\n\n"
                f"{len(machine.state_names)} states (Root included), "
                f"{len(machine.event_names)} events.\n\n"
                f"```{{graphviz}} {GENERATED}/{dot_file}\n"
                f":alt: state diagram of the {name} machine ({policy} policy)\n"
                f":align: center\n```\n\n"
                f"<details><summary>The same machine as Mermaid text: "
                f"<code>python -m streamhsm diagram {flags}</code></summary>\n\n"
                f"```text\n{render(machine, 'mermaid')}```\n\n</details>\n")
    return "\n".join(parts)


def scaling_plot(outdir: Path) -> str:
    """Run the small scaling measurement into ``outdir/scaling.png``; return a Markdown note."""
    from streamhsm.tools.bench import plot_scaling

    sizes = tuple(int(s) for s in os.environ.get(
        "STREAMHSM_DOCS_PLOT_SIZES", ",".join(map(str, PLOT_SIZES))).split(","))
    events = int(os.environ.get("STREAMHSM_DOCS_PLOT_EVENTS", PLOT_EVENTS))
    start = time.perf_counter()
    points = plot_scaling(str(outdir / "scaling.png"), sizes=sizes, events=events)
    took = time.perf_counter() - start
    logger.info("scaling plot: %d sizes, %d events each, %.1f s", len(sizes), events, took)
    (outdir / "scaling.json").write_text(json.dumps(points, indent=1), encoding="utf-8")
    rows = ["| streams | dispatch_many | table floor | broadcast | broadcast floor |",
            "|---:|---:|---:|---:|---:|"]
    for p in points:
        rows.append(f"| {int(p['streams']):,} | {p['dispatch_many']:.2f} | "
                    f"{p['table floor']:.2f} | {p['broadcast']:.2f} | "
                    f"{p['broadcast floor']:.2f} |")
    return (f"Measured while this site was built: {len(sizes)} table sizes, "
            f"{events:,} events per `dispatch_many` point, best of 3, in {took:.1f} s "
            f"(Python {sys.version.split()[0]}, on {os.cpu_count()} CPU(s)).\n\n"
            + "\n".join(rows) + "\n\nTimes in ns per event (broadcast: per stream).\n")


def generate(app: Sphinx) -> None:
    src = Path(app.srcdir)
    apigen.write(src / "api")
    _write_if_changed(src / "api" / ".gitignore", "*\n")  # generated, never committed
    gen = src / GENERATED
    gen.mkdir(exist_ok=True)
    _write_if_changed(gen / ".gitignore", "*\n")  # generated at build time, never committed
    _write_if_changed(gen / "diagrams.md", diagrams_page(gen))
    _write_if_changed(gen / "scaling.md", scaling_plot(gen))


def setup(app: Sphinx) -> dict[str, Any]:
    # design.md keeps hand-written Mermaid sources in ```mermaid blocks: shown as plain text
    app.add_lexer("mermaid", TextLexer)
    app.connect("builder-inited", generate)
    app.connect("autodoc-process-signature", process_signature)
    app.connect("missing-reference", resolve_alias)
    app.connect("autodoc-process-docstring", fix_sections, priority=100)  # before napoleon
    app.connect("autodoc-process-docstring", check_docstring)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
