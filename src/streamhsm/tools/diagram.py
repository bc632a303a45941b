"""State diagrams (Mermaid, Graphviz DOT) generated from a compiled machine's declaration.

Composite states are drawn as nested states (Mermaid ``state X { }``, DOT clusters), every
transition handler as a labelled edge from the state that declares it, and events handled without
a transition are listed on their state.
"""

from __future__ import annotations

from collections import defaultdict

from ..machine import ROOT, CompiledMachine

__all__ = ["FORMATS", "IMAGE_FORMATS", "render", "render_image", "to_dot", "to_mermaid"]

#: Text formats :func:`render` produces.
FORMATS = ("mermaid", "dot")
#: Image formats :func:`render_image` produces through Graphviz ``dot``.
IMAGE_FORMATS = ("svg", "png")


def _structure(machine: CompiledMachine):  # type: ignore[no-untyped-def]
    spec = machine.spec
    names = machine.state_names
    children: dict[str, list[str]] = defaultdict(list)
    for s, p in spec.parents.items():
        children[p].append(s)
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    internal: dict[str, list[str]] = defaultdict(list)
    for (state, event), target in spec.handlers.items():
        if target is None:
            internal[state].append(event)
        else:
            edges[(state, target)].append(event)
    # the composite that owns an edge: the deepest common ancestor of both ends (Root: top level)
    def chain(s: str) -> list[str]:
        out = [s]
        while out[-1] != ROOT:
            out.append(names[machine.parent[names.index(out[-1])]])
        return out

    owner: dict[tuple[str, str], str] = {}
    for src, dst in edges:
        up_dst = chain(dst)
        common = next(a for a in chain(src)[1:] if a in up_dst) if src != dst else chain(src)[1]
        owner[(src, dst)] = common
    return children, edges, internal, owner


def to_mermaid(machine: CompiledMachine) -> str:
    """The machine as a Mermaid ``stateDiagram-v2``."""
    children, edges, internal, owner = _structure(machine)
    initials = machine.spec.initials
    lines = ["stateDiagram-v2"]

    def block(state: str, indent: str) -> None:
        if state in initials:
            lines.append(f"{indent}[*] --> {initials[state]}")
        for child in children.get(state, []):
            if child in children:
                lines.append(f"{indent}state {child} {{")
                block(child, indent + "    ")
                lines.append(f"{indent}}}")
        for child in children.get(state, []):
            if internal.get(child):
                lines.append(f"{indent}{child} : handles {', '.join(internal[child])}")
        for (src, dst), events in edges.items():
            if owner[(src, dst)] == state:
                lines.append(f"{indent}{src} --> {dst} : {' / '.join(events)}")

    block(ROOT, "    ")
    if internal.get(ROOT):
        lines.append(f"    note \"Root handles {', '.join(internal[ROOT])}\" as RootNote")
    lines.append("    %% events no state handles are counted as unhandled at Root")
    return "\n".join(lines) + "\n"


def to_dot(machine: CompiledMachine) -> str:
    """The machine as a Graphviz ``digraph``; composite states are clusters."""
    children, edges, internal, _ = _structure(machine)
    initials = machine.spec.initials
    lines = [f'digraph "{machine.name}" {{', "    compound=true;", "    node [shape=box, style=rounded];"]

    def label(s: str) -> str:
        return s if not internal.get(s) else f"{s}\\n[{', '.join(internal[s])}]"

    def anchor(s: str) -> str:  # a node to attach edges of a composite to
        return f"{s}__anchor" if s in children else s

    def block(state: str, indent: str) -> None:
        for child in children.get(state, []):
            if child in children:
                lines.append(f"{indent}subgraph cluster_{child} {{")
                lines.append(f'{indent}    label="{label(child)}";')
                lines.append(f'{indent}    {child}__anchor [shape=point, style=invis];')
                block(child, indent + "    ")
                lines.append(f"{indent}}}")
            else:
                lines.append(f'{indent}{child} [label="{label(child)}"];')
        if state in initials:
            init = f"{state}__initial"
            lines.append(f"{indent}{init} [shape=point];")
            lines.append(f"{indent}{init} -> {anchor(initials[state])};")

    block(ROOT, "    ")
    for (src, dst), events in edges.items():
        attrs = [f'label="{" / ".join(events)}"']
        if src in children:
            attrs.append(f"ltail=cluster_{src}")
        if dst in children:
            attrs.append(f"lhead=cluster_{dst}")
        lines.append(f"    {anchor(src)} -> {anchor(dst)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(machine: CompiledMachine, fmt: str = "mermaid") -> str:
    """The machine's diagram in ``fmt`` (one of :data:`FORMATS`); ``ValueError`` otherwise."""
    if fmt == "mermaid":
        return to_mermaid(machine)
    if fmt == "dot":
        return to_dot(machine)
    raise ValueError(f"unknown diagram format {fmt!r}; expected one of {FORMATS}")


def render_image(machine: CompiledMachine, fmt: str, output: str) -> None:
    """Render the machine's DOT diagram to ``output`` as ``svg`` or ``png`` with Graphviz ``dot``.

    Raises:
        ValueError: ``fmt`` is not an image format.
        RuntimeError: Graphviz ``dot`` is not installed, or it failed (its message included).
    """
    import shutil
    import subprocess

    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"unknown image format {fmt!r}; expected one of {IMAGE_FORMATS}")
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            f"rendering {fmt} needs Graphviz's 'dot' command, which is not installed "
            "(Debian/Ubuntu: apt-get install graphviz); '--format dot' prints the text instead")
    proc = subprocess.run([dot, f"-T{fmt}", "-o", output], input=to_dot(machine), text=True,
                          capture_output=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"dot failed ({proc.returncode}): {proc.stderr.strip()}")
