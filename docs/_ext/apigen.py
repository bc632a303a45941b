"""Generate the API reference sources from the installed package's ``__all__``.

Nothing here is a hand-kept list of names: every name in ``streamhsm.__all__`` gets an entry on
the page of its group, the group being chosen from the module the object says it comes from
(``obj.__module__``, or for plain constants the module that assigns it) through :data:`GROUPS`;
a name from a module no group lists lands in the fallback group, so a new public name always
gets a page. The public submodules in :data:`SUBMODULES` get one page each for their own
``__all__``; names they share with ``streamhsm.__all__`` link to the ``streamhsm.Name`` entry.

Sphinx is not needed to run :func:`generate`, so the test suite can check its output.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib
import importlib.util
import inspect
import re
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

PACKAGE = "streamhsm"


class Group(NamedTuple):
    """One page of the reference: the names whose home module starts with one of ``modules``."""

    slug: str
    title: str
    modules: tuple[str, ...]
    intro: str


#: Pages of the reference, in order. A home module matches a group when it equals one of the
#: group's modules or lies below it; the longest match wins.
GROUPS: tuple[Group, ...] = (
    Group("engine", "Engine: machines and tables",
          ("streamhsm.machine", "streamhsm.compiler", "streamhsm._table", "streamhsm._instance",
           "streamhsm._codec", "streamhsm.reference"),
          "Declare a machine as data (:class:`streamhsm.MachineSpec`), compile it into flat "
          "tables (:class:`streamhsm.CompiledMachine`), and run it over one instance or over a "
          "table of many instances in numpy arrays."),
    Group("lifecycle", "Stream lifecycle",
          ("streamhsm.lifecycle",),
          "The per-stream lifecycle machine (plan S-1) and its ready-made wrappers: one stream "
          "(:class:`streamhsm.StreamLifecycle`) or many (:class:`streamhsm.StreamTable`)."),
    Group("driver", "Driver",
          ("streamhsm.driver",),
          "The driver model: control plane, configuration, protocol types and the lease and "
          "driver machines. See also the :doc:`streamhsm.driver` module page."),
    Group("shm", "Shared memory", ("streamhsm.shm",),
          "Stream tables in named shared memory, read by another process."),
    Group("snapshot", "Snapshots", ("streamhsm.snapshot",),
          "Saving and restoring tables and drivers as plain ``.npz`` data."),
    Group("errors", "Errors", ("streamhsm.errors",),
          "Exception classes. Bad input otherwise raises the built-in ``ValueError``, "
          "``TypeError`` or ``IndexError`` with the offending value in the message."),
)

#: Where names no group claims go.
FALLBACK = Group("other", "Other names", (), "Public names not covered by the pages above.")

#: Public submodules that get a page of their own, for their own ``__all__``.
SUBMODULES: tuple[str, ...] = ("streamhsm.machine", "streamhsm.driver", "streamhsm.shm",
                               "streamhsm.snapshot", "streamhsm.reference")

#: Descriptions of module dunders, which have no ``#:`` comment in the source.
DUNDER_DOCS = {"__version__": "The installed package's version string."}

_VALUE_WIDTH = 60  # longer reprs are shown in the description instead of the signature line


def _module_source(mod: ModuleType) -> tuple[str, str] | None:
    """(kind, source) of a module: its ``.py``, else the ``.pyx`` and ``.pyi`` shipped beside a
    compiled module (kind ``"compiled"``: the ``.pyi`` decides what is defined)."""
    origin = getattr(mod, "__file__", None)
    if not origin:
        return None
    path = Path(origin)
    if path.suffix == ".py":
        return "py", path.read_text(encoding="utf-8")
    stem = path.name.split(".")[0]
    pyx, pyi = path.with_name(stem + ".pyx"), path.with_name(stem + ".pyi")
    text = ""
    if pyi.exists():
        text += pyi.read_text(encoding="utf-8")
    if pyx.exists():
        text += "\n" + pyx.read_text(encoding="utf-8")
    return ("compiled", text) if text else None


def _assigned_names(source: str) -> set[str]:
    """Names assigned at module level in Python (or stub) source."""
    names: set[str] = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:  # a .pyx: fall back to plain "NAME =" lines
        for line in source.splitlines():
            head = line.split("=", 1)[0].split(":", 1)[0].strip()
            if head.isidentifier() and not line.startswith((" ", "\t")) and "=" in line:
                names.add(head)
        return names
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        for t in targets:
            if isinstance(t, ast.Name):
                names.add(t.id)
    return names


def doc_comment(source: str, name: str) -> str | None:
    """The ``#:`` comment lines just above ``name = ...`` at module level, joined, or None."""
    lines = source.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(name) and line[len(name):].lstrip()[:1] in ("=", ":"):
            doc: list[str] = []
            j = i - 1
            while j >= 0 and lines[j].startswith("#:"):
                doc.insert(0, lines[j][2:].strip())
                j -= 1
            if doc:
                return " ".join(doc)
    return None


def _package_modules(package: str) -> list[ModuleType]:
    """The package's modules, leaves first (a package ``__init__`` only re-exports)."""
    import pkgutil

    root = importlib.import_module(package)
    mods: list[ModuleType] = []
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue  # importing it would run the command line
        try:
            mods.append(importlib.import_module(info.name))
        except ImportError:  # an optional dependency missing: that module cannot be a home
            continue
    mods.sort(key=lambda m: hasattr(m, "__path__"))
    return mods + [root]


def home_module(name: str, obj: Any, modules: list[ModuleType]) -> tuple[str, str | None]:
    """(module that defines ``obj``, its ``#:`` description for constants or None)."""
    mod_name = getattr(obj, "__module__", None)
    if (inspect.isclass(obj) or inspect.isroutine(obj)) and isinstance(mod_name, str):
        return mod_name, None
    for mod in modules:
        if vars(mod).get(name, _MISSING) is not obj:
            continue
        found = _module_source(mod)
        if found is None or name not in _assigned_names(found[1]):
            continue
        return mod.__name__, doc_comment(found[1], name)
    return PACKAGE, None


_MISSING = object()


def group_of(module: str) -> Group:
    """The group whose module list matches ``module`` best (longest prefix), else FALLBACK."""
    best, best_len = FALLBACK, -1
    for group in GROUPS:
        for m in group.modules:
            if (module == m or module.startswith(m + ".")) and len(m) > best_len:
                best, best_len = group, len(m)
    return best


def _heading(text: str, char: str) -> str:
    return f"{text}\n{char * len(text)}\n"


def _indent(text: str, pad: str = "   ") -> str:
    return "\n".join(pad + line if line else "" for line in text.splitlines())


def entry(qualified: str, obj: Any, description: str | None) -> str:
    """The reST for one public object, named ``qualified`` (``streamhsm.Name``)."""
    short = qualified.rsplit(".", 1)[-1]
    if inspect.isclass(obj):
        if issubclass(obj, BaseException):
            return (f".. autoexception:: {qualified}\n   :members:\n   :show-inheritance:\n")
        if issubclass(obj, enum.Enum):
            return (f".. autoclass:: {qualified}\n   :members:\n   :undoc-members:\n"
                    f"   :member-order: bysource\n   :show-inheritance:\n")
        # undocumented members are listed too, so the build reports a missing docstring
        opts = ["   :members:", "   :undoc-members:", "   :member-order: bysource"]
        if dataclasses.is_dataclass(obj):
            # fields the class docstring describes (napoleon's Attributes section) once only
            described = [f.name for f in dataclasses.fields(obj)
                         if f.name in (obj.__doc__ or "")]
            if described:
                opts.append(f"   :exclude-members: {', '.join(described)}")
        bases = [b for b in obj.__mro__[1:] if b is not object]
        if any(b.__module__.split(".")[0] == PACKAGE for b in bases):
            # the inherited API is this class's API too (StreamTable.dispatch_many, ...)
            opts += ["   :inherited-members:", "   :show-inheritance:"]
        return f".. autoclass:: {qualified}\n" + "\n".join(opts) + "\n"
    if inspect.isroutine(obj):
        return f".. autofunction:: {qualified}\n"
    text = DUNDER_DOCS.get(short) or description
    if not text:
        raise ValueError(f"{qualified} has no description: add a '#:' comment above its "
                         "assignment in the module that defines it")
    value = repr(obj)
    out = f".. py:data:: {qualified}\n"
    if len(value) <= _VALUE_WIDTH:
        out += f"   :value: {value}\n\n{_indent(text)}\n"
    else:
        out += f"\n{_indent(text)}\n\n   Value:\n\n   .. code-block:: python\n\n"
        out += _indent(value, "      ") + "\n"
    return out


_EMBEDDED_SIGNATURE = re.compile(r"^[\w.]+\(.*\)(\s*->\s*.*)?$")


def summary(obj: Any, description: str | None = None) -> str:
    """The first sentence of an object's documentation (a constant's ``#:`` description, else
    its docstring without the signature line Cython embeds)."""
    if description is not None:
        text = description
    elif inspect.isclass(obj) or inspect.isroutine(obj):
        text = inspect.getdoc(obj) or ""
    else:
        text = ""
    lines = text.strip().splitlines()
    if lines and _EMBEDDED_SIGNATURE.match(lines[0].strip()):
        lines = lines[1:]
    paragraph: list[str] = []
    for line in lines:
        if line.strip():
            paragraph.append(line.strip())
        elif paragraph:
            break
    para = " ".join(paragraph)
    for m in re.finditer(r"\.(\s|$)", para):
        head = para[:m.start() + 1]
        if head.count("`") % 2 == 0 and head.count("(") == head.count(")"):
            return head
    return para


def _summary_table(rows: list[tuple[str, str]]) -> str:
    """A two-column table: link to each object, its summary."""
    if not rows:
        return ""
    out = [".. list-table::", "   :widths: 35 65", "   :class: summarytable", ""]
    for target, text in rows:
        out.append(f"   * - :py:obj:`{target}`")
        out.append(f"     - {text}" if text else "     -")
    return "\n".join(out) + "\n"


def _hidden_toctree(docs: list[str]) -> str:
    rows = "\n".join(f"   {d}" for d in docs)
    return f".. toctree::\n   :hidden:\n\n{rows}\n"


#: Folder (below the reference's folder) of the one-page-per-object files.
OBJECT_DIR = "ref"


def object_page(qualified: str, obj: Any, description: str | None) -> str:
    """The page of one public object: a title and its :func:`entry`."""
    return _heading(f"``{qualified}``", "=") + "\n" + entry(qualified, obj, description)


def generate(package: str = PACKAGE,
             submodules: tuple[str, ...] = SUBMODULES) -> dict[str, str]:
    """The reference pages as ``{relative file name: reST text}``, from the installed package.

    ``index.rst`` lists every public name and links the group pages; each group page
    (``<slug>.rst``) and each submodule page (``streamhsm.driver.rst``, ...) has a summary table
    of its names; every object has its own page ``ref/<qualified name>.rst``.
    """
    root = importlib.import_module(package)
    modules = _package_modules(package)
    public: list[str] = list(root.__all__)
    pages: dict[str, str] = {}
    grouped: dict[Group, list[str]] = {}
    summaries: dict[str, str] = {}
    for name in public:
        obj = getattr(root, name)
        home, description = home_module(name, obj, modules)
        qualified = f"{package}.{name}"
        grouped.setdefault(group_of(home), []).append(qualified)
        pages[f"{OBJECT_DIR}/{qualified}.rst"] = object_page(qualified, obj, description)
        summaries[qualified] = summary(obj, DUNDER_DOCS.get(name) or description)
    order = [g for g in (*GROUPS, FALLBACK) if g in grouped]
    for group in order:
        names = grouped[group]
        body = [_heading(group.title, "="), group.intro + "\n",
                _summary_table([(n, summaries[n]) for n in names]),
                _hidden_toctree([f"{OBJECT_DIR}/{n}" for n in names])]
        pages[f"{group.slug}.rst"] = "\n".join(body)
    for sub in submodules:
        mod = importlib.import_module(sub)
        shared, own = [], []
        for name in mod.__all__:
            obj = getattr(mod, name)
            if name in public and getattr(root, name) is obj:
                shared.append(name)
            else:
                own.append(name)
        # the module stays current, so its docstrings' short references resolve
        body = [_heading(f"``{sub}``", "="), f".. automodule:: {sub}\n"]
        if own:
            rows = []
            for name in own:
                obj = getattr(mod, name)
                rows.append((f"{sub}.{name}", summary(obj, home_module(name, obj, modules)[1])))
            body.append(_summary_table(rows))
            body.append(_hidden_toctree([f"{OBJECT_DIR}/{sub}.{n}" for n in own]))
        if shared:
            links = ", ".join(f":py:obj:`{package}.{n}`" for n in shared)
            body.append(f"Also in ``{sub}.__all__``, documented under their ``{package}.`` "
                        f"names: {links}.\n")
        for name in own:
            obj = getattr(mod, name)
            _, description = home_module(name, obj, modules)
            qualified = f"{sub}.{name}"
            pages[f"{OBJECT_DIR}/{qualified}.rst"] = object_page(qualified, obj, description)
        pages[f"{sub}.rst"] = "\n".join(body)
    sections = [f"{g.slug}" for g in order] + list(submodules)
    index = [_heading("API reference", "="),
             f"Generated at build time from ``{package}.__all__`` "
             f"(version {root.__version__}) and the ``__all__`` of the public submodules. "
             f"Every object is named as you import it: ``from {package} import StreamTable`` "
             f"is documented as ``{package}.StreamTable``. Signatures come from the type "
             "stubs (``.pyi``) for the compiled classes and from the annotations elsewhere.\n",
             ".. toctree::\n   :maxdepth: 1\n\n" + "\n".join(f"   {p}" for p in sections) + "\n",
             _heading(f"``{package}``", "-"),
             f".. automodule:: {package}\n",
             _summary_table([(f"{package}.{n}", summaries[f"{package}.{n}"]) for n in public])]
    pages["index.rst"] = "\n".join(index)
    return pages


def write(outdir: Path, pages: dict[str, str] | None = None) -> list[Path]:
    """Write the pages into ``outdir`` (only files whose text changed, so Sphinx's incremental
    build stays incremental); remove ``.rst`` files no longer generated. Return the paths."""
    pages = generate() if pages is None else pages
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in pages.items():
        path = outdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    for stale in outdir.rglob("*.rst"):
        if stale.relative_to(outdir).as_posix() not in pages:
            stale.unlink()
    return written


# --- docstrings ----------------------------------------------------------------------------

_SECTIONS = ("Args:", "Arguments:", "Parameters:", "Raises:", "Attributes:", "Keyword Args:",
             "Other Parameters:")
_ENTRY = re.compile(r"^\*{0,2}\w+(\s*/\s*\w+)*(\s*\([^)]*\))?:(\s|$)")


def indent_continuations(lines: list[str]) -> int:
    """Indent the continuation lines of entries in Google-style ``Args:`` / ``Raises:`` / ...
    sections that were written flush with the entry (napoleon would read them as new entries).
    Works in place; returns the number of lines changed."""
    changed = 0
    section_indent: int | None = None
    entry_indent: int | None = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped in _SECTIONS:
            section_indent, entry_indent = indent, None
            continue
        if section_indent is None or not stripped:
            continue
        if indent <= section_indent:
            section_indent = None
            continue
        if entry_indent is None:
            entry_indent = indent
        if indent == entry_indent and not _ENTRY.match(stripped):
            lines[i] = " " * 4 + line
            changed += 1
    return changed


_PROSE_HEAD = re.compile(r"[\[\]|.`]")


def protect_prose_colon(lines: list[str]) -> bool:
    """A property docstring whose first line reads ``Some words: more`` would be taken by napoleon
    as ``type: description``. Such a colon (three words or more before it, nothing that looks
    like a type) is shown as a dash instead. Works in place; returns True if it changed
    ``lines``."""
    if not lines or not lines[0].strip():
        return False
    head, sep, tail = lines[0].partition(": ")
    if sep and len(head.split()) >= 3 and not _PROSE_HEAD.search(head):
        lines[0] = f"{head} \N{EM DASH} {tail}"
        return True
    return False


def documented_names(package: str = PACKAGE,
                     submodules: tuple[str, ...] = SUBMODULES) -> dict[int, str]:
    """``{id(object): the name the reference documents it under}`` for the public classes and
    functions (constants are left out: equal small ints or strings share an id)."""
    root = importlib.import_module(package)
    names: dict[int, str] = {}
    for sub in submodules:
        mod = importlib.import_module(sub)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isclass(obj) or inspect.isroutine(obj):
                names[id(obj)] = f"{sub}.{name}"
    for name in root.__all__:  # the package's names win over a submodule's
        obj = getattr(root, name)
        if inspect.isclass(obj) or inspect.isroutine(obj):
            names[id(obj)] = f"{package}.{name}"
    return names


# --- signatures from the stubs -------------------------------------------------------------

@cache
def _stub_defs(module: str) -> dict[str, ast.FunctionDef]:
    """``{"Class.method" or "function": def node}`` of the ``.pyi`` beside a compiled module."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or spec.origin.endswith(".py"):
        return {}
    origin = Path(spec.origin)
    stub = origin.with_name(origin.name.split(".")[0] + ".pyi")
    if not stub.exists():
        return {}
    defs: dict[str, ast.FunctionDef] = {}

    def walk(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef):
                defs.setdefault(prefix + node.name, node)
            elif isinstance(node, ast.ClassDef):
                walk(node.body, prefix + node.name + ".")

    walk(ast.parse(stub.read_text(encoding="utf-8")).body, "")
    return defs


def _format(node: ast.FunctionDef, drop_first: bool) -> tuple[str, str | None]:
    args = node.args
    if drop_first:
        args = ast.arguments(posonlyargs=args.posonlyargs[1:] if args.posonlyargs else [],
                             args=args.args[1:] if not args.posonlyargs else args.args,
                             vararg=args.vararg, kwonlyargs=args.kwonlyargs,
                             kw_defaults=args.kw_defaults, kwarg=args.kwarg,
                             defaults=args.defaults)
    ret = ast.unparse(node.returns) if node.returns is not None else None
    return f"({ast.unparse(args)})", ret


def stub_signature(what: str, obj: Any) -> tuple[str, str | None] | None:
    """The stub's (signature, return annotation) for a compiled object, or None."""
    if what in ("class", "exception"):
        module, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if not (isinstance(module, str) and isinstance(qual, str)):
            return None
        node = _stub_defs(module).get(qual + ".__init__")
        return None if node is None else (_format(node, True)[0], None)
    if what in ("method", "function"):
        module, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if not (isinstance(module, str) and isinstance(qual, str)):
            return None
        node = _stub_defs(module).get(qual)
        if node is None:
            return None
        static = any(isinstance(d, ast.Name) and d.id == "staticmethod"
                     for d in node.decorator_list)
        return _format(node, what == "method" and not static)
    return None


# --- stub property types -------------------------------------------------------------------

def property_type(name: str) -> str | None:
    """The stub's return annotation of a compiled class's property ``name`` (full dotted)."""
    owner_path, attr = name.rsplit(".", 1)
    owner = _resolve(owner_path)
    if owner is None:
        return None
    for klass in getattr(owner, "__mro__", ()):
        node = _stub_defs(klass.__module__).get(f"{klass.__qualname__}.{attr}")
        if node is not None and node.returns is not None:
            return ast.unparse(node.returns)
    return None


def _resolve(dotted: str) -> Any:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for p in parts[i:]:
                obj = getattr(obj, p)
        except AttributeError:
            return None
        return obj
    return None


# --- references ----------------------------------------------------------------------------

@cache
def _documented() -> dict[int, str]:
    return documented_names()


def documented_target(target: str, module: str | None) -> str | None:
    """The documented name of what ``target`` (seen from ``module``) refers to, or None.

    Docstrings say ``Driver`` or ``streamhsm.driver.Driver`` or ``MachineTable.stats``; the
    reference documents ``streamhsm.Driver`` and ``streamhsm.MachineTable.stats``.
    """
    target = target.lstrip("~.")
    bases = [module] if module else []
    for base in [*bases, PACKAGE, None]:
        path = f"{base}.{target}" if base else target
        parts = path.split(".")
        for i in range(len(parts), 0, -1):  # the longest importable module prefix
            try:
                obj: Any = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            break
        else:
            continue
        rest = parts[i:]
        for j, attr in enumerate(rest):
            obj = getattr(obj, attr, _MISSING)
            if obj is _MISSING:
                break
            name = _documented().get(id(obj))
            if name is not None:
                return ".".join([name, *rest[j + 1:]])
    return _submodule_constant(target)


def _submodule_constant(name: str) -> str | None:
    """``sub.NAME`` for a bare ``NAME`` that exactly one public submodule lists in its
    ``__all__`` and the package does not: a module's docstrings name its own constants
    (``MAX_FLAGS``) while they are shown under the package (``streamhsm.MachineSpec``)."""
    if "." in name or name in importlib.import_module(PACKAGE).__all__:
        return None
    homes = [sub for sub in SUBMODULES if name in importlib.import_module(sub).__all__]
    return f"{homes[0]}.{name}" if len(homes) == 1 else None
