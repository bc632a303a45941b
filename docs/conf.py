"""Sphinx configuration of the streamhsm documentation site (``bash ci/docs.sh``).

The package is imported as installed (``pip install ".[docs]"``), never from ``src/`` by path:
the compiled modules only exist in an installed (or built-in-place) package. The API reference,
the state diagrams and the scaling plot are generated at build time by ``_ext/streamhsm_docs.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamhsm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "streamhsm"
author = "streamhsm contributors"
copyright = "streamhsm contributors"  # noqa: A001 (Sphinx's name)
release = version = streamhsm.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.graphviz",
    "sphinx.ext.viewcode",
    "streamhsm_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]
# the generated Markdown fragments are included into pages, never pages themselves
exclude_patterns += ["_generated/*.md"]

# Markdown (MyST): the existing docs/*.md are used as they are.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # the existing docs start some sections at level 3

# autodoc: signatures and types. Compiled classes only carry the untyped signature Cython embeds
# in the docstring; streamhsm_docs replaces it with the .pyi stub's (see that module).
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_docstring_signature = True
autodoc_member_order = "bysource"
autodoc_class_signature = "mixed"
autodoc_preserve_defaults = True
autosummary_generate = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
add_module_names = True

# Broken references are errors (-W): every reference to a streamhsm object must resolve (names
# re-exported under ``streamhsm.`` are resolved by streamhsm_docs); references into numpy, the
# standard library and "TypeError / ValueError"-style lists from Raises sections are not checked
# (there is no network for intersphinx in the build).
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(np|npt|numpy|enum|os|mmap|collections|typing|types|builtins)(\..*)?"),
    (r"py:exc", r"[A-Za-z]+(Error|Exception)( / [A-Za-z]+(Error|Exception))+"),
    # private helper types that the stubs name in signatures (argument aliases, the engine's
    # internal table and codec classes, the stats TypedDict): shown, not linked
    (r"py:class", r"(_Code|IntEnum|TableStats|streamhsm\._\w+\.\w+|streamhsm\.driver\._\w+\.\w+"
                  r"|streamhsm\.\w+\._\w+)"),
    # autodoc splits a dataclass field's nested annotation at its comma (Step.path)
    (r"py:class", r"list\[tuple\[str"),
]

graphviz_output_format = "svg"
graphviz_dot_args = ["-Gfontname=Helvetica", "-Nfontname=Helvetica", "-Efontname=Helvetica",
                     "-Nfontsize=11", "-Efontsize=10", "-Gnewrank=true", "-Gnodesep=0.5",
                     "-Granksep=0.5", "-Gbgcolor=transparent"]

html_theme = "furo"
html_title = f"streamhsm {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
html_theme_options = {
    "source_edit_link": "",
    "navigation_with_keys": True,
}
