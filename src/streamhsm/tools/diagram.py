"""State diagrams (Mermaid, Graphviz DOT) generated from a compiled machine's declaration.

Composite states are drawn as nested states (Mermaid ``state X { }``, DOT clusters), every
transition handler as a labelled edge from the state that declares it, and events handled without
a transition are listed on their state. Handlers declared on Root itself (they apply in every
state) are listed in a note. A guarded handler is labelled ``Event [flag]`` (``Event [!flag]``
for a negated guard) and drawn as an edge of its own, so several handlers of one
``(state, event)`` are several edges; unguarded handlers between the same two states share one
edge labelled ``A / B``. An initial arrow points at the declared initial state, also when it is a
deeper descendant (a deep initial transition). The DOT drawing is laid out to read like the
Mermaid one (see :func:`to_dot`); Graphviz renders it without warnings.

History and completion: each history owner shows its history pseudostates (``H`` shallow,
``H*`` deep) inside it, with an unlabelled edge to its default when one is declared; a
transition with history points at the pseudostate. A final state is drawn as the UML bull's-eye
(a ``◉`` before its name in Mermaid, a ringed dot labelled with its name in DOT). A completion
transition is an edge without an event: unlabelled, or labelled ``[guard]``.

Timers: a state that owns timers lists them on its state, one line each, ``after 2 s -> Event``
or ``every 1 s -> Event`` (:meth:`~streamhsm.machine.TimerDecl.label`); timers of Root go in the
Root note. A handler that restarts timers is labelled ``Event / restart name`` (an edge of its
own, as a guarded handler, so that its action is not read as another event of the edge).
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from typing import NamedTuple

from ..compiler import CompiledMachine
from ..machine import ROOT, HandlerDecl

__all__ = ["FORMATS", "IMAGE_FORMATS", "render", "render_image", "to_dot", "to_mermaid"]

#: Text formats :func:`render` produces.
FORMATS = ("mermaid", "dot")
#: Image formats :func:`render_image` produces through Graphviz ``dot``.
IMAGE_FORMATS = ("svg", "png")


class _Edge(NamedTuple):
    src: str  # the declaring state
    dst: str  # the target
    labels: list[str]  # "Event" / "Event [guard]", in declaration order ("" / "[guard]" for a
    #                    completion transition)
    history: str | None = None  # the edge enters dst through this history pseudostate


#: The history pseudostates' labels and node-name suffixes.
_HISTORY = {"shallow": ("H", "__H"), "deep": ("H*", "__Hdeep")}


class _Structure(NamedTuple):
    children: dict[str, list[str]]  # composite -> direct children, in declaration order
    parent: dict[str, str]  # every state but Root -> its parent
    edges: list[_Edge]  # in the order of their first handler's declaration
    internal: dict[str, list[str]]  # state -> labels of the handlers without a transition
    owner: dict[tuple[str, str], str]  # (src, dst) -> the composite an edge is drawn in
    pseudo: dict[str, list[tuple[str, str | None]]]  # owner -> [(kind, default target)]
    timers: dict[str, list[str]]  # owner -> "after 2 s -> Event", in declaration order


def _handler_label(decl: HandlerDecl) -> str:
    """``"Event"`` / ``"Event [guard]"``, then ``" / restart name, name"`` if it restarts
    timers."""
    restart = f" / restart {', '.join(decl.restart)}" if decl.restart else ""
    return decl.label() + restart


def _structure(machine: CompiledMachine) -> _Structure:
    spec = machine.spec
    children: dict[str, list[str]] = defaultdict(list)
    for s, p in spec.parents.items():
        children[p].append(s)
    edges: list[_Edge] = []
    # (src, dst, history) -> the edge unguarded ones share
    unguarded: dict[tuple[str, str, str | None], _Edge] = {}
    internal: dict[str, list[str]] = defaultdict(list)
    for decl in spec.declared_handlers:
        if decl.target is None:
            internal[decl.state].append(_handler_label(decl))
        elif decl.guard is not None or decl.restart:  # an edge of its own
            edges.append(_Edge(decl.state, decl.target, [_handler_label(decl)], decl.history))
        elif (key := (decl.state, decl.target, decl.history)) in unguarded:
            unguarded[key].labels.append(decl.label())
        else:
            unguarded[key] = _Edge(decl.state, decl.target, [decl.label()], decl.history)
            edges.append(unguarded[key])
    for c in spec.completions:  # an edge without an event, each its own
        edges.append(_Edge(c.state, c.target, [c.label()], c.history))
    pseudo: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    defaults = {(d.owner, d.history): d.target for d in spec.history_defaults}
    used = {(e.dst, e.history) for e in edges if e.history} | set(defaults)
    for owner_name in spec.history_owners:
        for kind in _HISTORY:
            if (owner_name, kind) in used:
                pseudo[owner_name].append((kind, defaults.get((owner_name, kind))))
    parent = dict(spec.parents)

    def chain(s: str) -> list[str]:  # s, its parent, ..., Root
        out = [s]
        while out[-1] != ROOT:
            out.append(parent[out[-1]])
        return out

    # the composite that owns an edge: the deepest common proper ancestor of both ends
    owner: dict[tuple[str, str], str] = {}
    for src, dst, *_ in edges:
        up_dst = chain(dst)
        owner[(src, dst)] = next((a for a in chain(src)[1:] if a in up_dst), ROOT)
    timers: dict[str, list[str]] = defaultdict(list)
    for t in spec.timers:
        timers[t.state].append(f"{t.label()} -> {t.event}")
    return _Structure(dict(children), parent, edges, dict(internal), owner, dict(pseudo),
                      dict(timers))


def _text(labels: list[str]) -> str:
    return " / ".join(labels)


def _hnode(owner: str, kind: str) -> str:
    return owner + _HISTORY[kind][1]


def _root_note(st: _Structure) -> str | None:
    """Handlers declared on Root itself (they apply in every state) and the timers Root owns
    (they run in every state), as one line of text."""
    parts = list(st.internal.get(ROOT, []))
    parts += [f"{_text(e.labels)} -> {e.dst}"
              f"{' (' + _HISTORY[e.history][0] + ')' if e.history else ''}"
              for e in st.edges if e.src == ROOT]
    what = [f"handles {', '.join(parts)}"] if parts else []
    what += st.timers.get(ROOT, [])
    return f"Root (any state) {'; '.join(what)}" if what else None


def to_mermaid(machine: CompiledMachine) -> str:
    """The machine as a Mermaid ``stateDiagram-v2``."""
    st = _structure(machine)
    children, edges, internal, owner = st.children, st.edges, st.internal, st.owner
    initials = machine.spec.initials
    finals = set(machine.spec.finals)
    lines = ["stateDiagram-v2"]

    def block(state: str, indent: str) -> None:
        if state in initials:
            lines.append(f"{indent}[*] --> {initials[state]}")
        for kind, default in st.pseudo.get(state, []):
            lines.append(f'{indent}state "{_HISTORY[kind][0]}" as {_hnode(state, kind)}')
            if default is not None:
                lines.append(f"{indent}{_hnode(state, kind)} --> {default}")
        for child in children.get(state, []):
            if child in children:
                lines.append(f"{indent}state {child} {{")
                block(child, indent + "    ")
                lines.append(f"{indent}}}")
            elif child in finals:
                lines.append(f'{indent}state "◉ {child}" as {child}')
        for child in children.get(state, []):
            if internal.get(child):
                lines.append(f"{indent}{child} : handles {', '.join(internal[child])}")
            for timer in st.timers.get(child, []):
                lines.append(f"{indent}{child} : {timer}")
        for e in edges:
            if owner[(e.src, e.dst)] == state and e.src != ROOT:
                dst = _hnode(e.dst, e.history) if e.history else e.dst
                text = _text(e.labels)
                lines.append(f"{indent}{e.src} --> {dst}" + (f" : {text}" if text else ""))

    block(ROOT, "    ")
    note = _root_note(st)
    if note is not None:
        top = initials[ROOT]  # the note goes beside the top-level state the machine starts in
        while st.parent[top] != ROOT:
            top = st.parent[top]
        lines.append(f"    note right of {top} : {note}")
    lines.append("    %% events no state handles are counted as unhandled at Root")
    return "\n".join(lines) + "\n"


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_dot(machine: CompiledMachine) -> str:
    """The machine as a Graphviz ``digraph`` that reads like the Mermaid diagram.

    A composite state is a cluster (``compound=true``) holding a filled-circle initial
    pseudo-state that points at its initial state (a child, or a deeper descendant for a deep
    initial transition), and an invisible anchor node at its bottom.
    An edge from (to) a composite leaves (enters) the cluster's border (``ltail``/``lhead``). An
    edge from a composite to one of its own descendants (or from a descendant to the composite)
    leaves the border, bends at an unseen point outside the cluster and comes back in as one line.
    The machine's own initial pseudo-state is a filled circle above everything. Events handled
    without a transition are listed in their state's box; handlers declared on Root in a note.
    """
    st = _structure(machine)
    children, edges, internal, parent = st.children, st.edges, st.internal, st.parent
    initials = machine.spec.initials
    finals = set(machine.spec.finals)
    lines = [
        f"digraph {_quote(machine.name)} {{",
        "    compound=true;",
        '    graph [fontname="Helvetica"];',
        '    node [shape=box, style=rounded, fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=11];',
    ]

    def inside(s: str, composite: str) -> bool:  # s is a proper descendant of composite
        while s != ROOT:
            s = parent[s]
            if s == composite:
                return True
        return False

    def label(s: str) -> str:  # the name, then what it handles and its timers in small print
        small = textwrap.wrap("handles " + ", ".join(internal[s]), 40) if internal.get(s) else []
        small += st.timers.get(s, [])
        if not small:
            return _quote(s)
        return (f'<{_html(s)}<BR/><FONT POINT-SIZE="10">'
                f'{"<BR/>".join(_html(w) for w in small)}</FONT>>')

    def node(s: str) -> str:  # the node an edge into s attaches to
        return f"{s}__start" if s in children else s

    def start(state: str, indent: str) -> None:
        target = initials[state]
        attrs = f" [lhead=cluster_{target}]" if target in children else ""
        lines.append(f'{indent}{state}__start [shape=circle, style=filled, fillcolor=black, '
                     f'label="", width=0.18, fixedsize=true];')
        lines.append(f"{indent}{state}__start -> {node(target)}{attrs};")

    def block(state: str, indent: str) -> None:
        if state in initials:
            start(state, indent)
        for kind, default in st.pseudo.get(state, []):
            h = _hnode(state, kind)
            lines.append(f'{indent}{h} [shape=circle, label="{_HISTORY[kind][0]}", width=0.3, '
                         f'fixedsize=true];')
            if default is not None:
                attrs = f" [lhead=cluster_{default}]" if default in children else ""
                lines.append(f"{indent}{h} -> {node(default)}{attrs};")
        for child in children.get(state, []):
            if child in children:
                lines.append(f"{indent}subgraph cluster_{child} {{")
                lines.append(f"{indent}    label={label(child)}; style=rounded;")
                block(child, indent + "    ")
                # the anchor sits below every child, so edges out of the cluster leave its bottom
                lines.append(f'{indent}    {child}__anchor [shape=point, style=invis, width=0, '
                             f'height=0, label=""];')
                for grand in children[child]:
                    tail = f"{grand}__anchor" if grand in children else grand
                    lines.append(f"{indent}    {tail} -> {child}__anchor [style=invis];")
                lines.append(f"{indent}}}")
            elif child in finals:  # the UML bull's-eye
                lines.append(f"{indent}{child} [shape=point, width=0.15, peripheries=2, "
                             f"xlabel={_quote(child)}];")
            else:
                lines.append(f"{indent}{child} [label={label(child)}];")

    block(ROOT, "    ")
    note = _root_note(st)
    if note is not None:
        lines.append(f"    Root__note [shape=note, label={_quote(note)}];")
    turns = 0
    for src, dst, labels, history in edges:
        if src == ROOT:
            continue  # in the note
        text = f"label={_quote(_text(labels))}"
        tail, tail_attrs = src, []
        if src in children:
            tail, tail_attrs = f"{src}__anchor", [f"ltail=cluster_{src}"]
        head, head_attrs = node(dst), []
        if history is not None:  # into the history pseudostate, a node inside the cluster
            head = _hnode(dst, history)
        elif dst in children and dst != ROOT:  # Root is the whole picture, not a cluster
            head_attrs = [f"lhead=cluster_{dst}"]
        if (head_attrs and inside(src, dst)) or (
                tail_attrs and (dst == src or inside(dst, src))):
            # dot cannot clip an edge at a cluster that holds its other end: go out and back in
            turns += 1
            turn = f"turn__{turns}"
            # a zero-size turn that both halves touch unclipped: one bent line, no loose end
            lines.append(f'    {turn} [shape=point, style=invis, width=0, height=0, label=""];')
            out_attrs = ", ".join([*tail_attrs, text, "arrowhead=none", "headclip=false"])
            lines.append(f"    {tail} -> {turn} [{out_attrs}];")
            in_attrs = ", ".join([*head_attrs, "tailclip=false", "constraint=false"])
            lines.append(f"    {turn} -> {head} [{in_attrs}];")
        else:
            lines.append(f"    {tail} -> {head} [{', '.join([*tail_attrs, *head_attrs, text])}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(machine: CompiledMachine, fmt: str = "mermaid") -> str:
    """The machine's diagram in ``fmt`` (one of :data:`FORMATS`); ``ValueError`` otherwise."""
    if fmt == "mermaid":
        return to_mermaid(machine)
    if fmt == "dot":
        return to_dot(machine)
    raise ValueError(f"unknown diagram format {fmt!r}; expected one of {FORMATS}")


def render_image(machine: CompiledMachine, fmt: str, output: str) -> str:
    """Render the machine's DOT diagram to ``output`` as ``svg`` or ``png`` with Graphviz ``dot``.

    Returns:
        Whatever ``dot`` printed on stderr (its warnings); empty for the built-in machines.

    Raises:
        ValueError: ``fmt`` is not an image format.
        OSError: ``output`` cannot be written (missing directory, no permission, ...).
        RuntimeError: Graphviz ``dot`` is not installed, or it failed (its message included;
            ``output`` is removed).
    """
    import os
    import shutil
    import subprocess

    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"unknown image format {fmt!r}; expected one of {IMAGE_FORMATS}")
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            f"rendering {fmt} needs Graphviz's 'dot' command, which is not installed "
            "(Debian/Ubuntu: apt-get install graphviz); '--format dot' prints the text instead")
    open(output, "wb").close()  # an unwritable path raises OSError naming it, as for text
    proc = subprocess.run([dot, f"-T{fmt}", "-o", output], input=to_dot(machine), text=True,
                          capture_output=True, timeout=60, check=False)
    if proc.returncode != 0:
        os.remove(output)
        raise RuntimeError(f"dot failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stderr
