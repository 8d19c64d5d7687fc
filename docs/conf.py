"""Sphinx configuration: MyST Markdown pages, autodoc from the docstrings, intersphinx read offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asynctools

HERE = Path(__file__).parent

project = "asynctools"
author = "asynctools contributors"
copyright = "asynctools contributors"
release = asynctools.__version__
version = ".".join(release.split(".")[:2])

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.intersphinx"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_intersphinx"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# autodoc: the public names only, signatures as the docstrings describe them.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
python_use_unqualified_type_names = True

# The build has no internet: each inventory is read from docs/_intersphinx/ (see make_inventories.py there).
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", str(HERE / "_intersphinx" / "python.inv")),
    "aiohttp": ("https://docs.aiohttp.org/en/stable", str(HERE / "_intersphinx" / "aiohttp.inv")),
    "yarl": ("https://yarl.aio-libs.org/en/stable", str(HERE / "_intersphinx" / "yarl.inv")),
}

nitpicky = True
nitpick_ignore: list[tuple[str, str]] = []

html_theme = "furo"
html_title = f"asynctools {release}"
html_static_path: list[str] = []

# The decorators are typed with overloads over a ParamSpec and TypeVars: exact for a type checker, but
# unreadable as a signature. autodoc shows overloads in place of any signature given to it, so the docs
# forget the overloads of these names and show the signature a reader passes instead.
READABLE_SIGNATURES = {"asynctools.attach_session": "(method)", "asynctools.attach_named_session": "(name)"}


def forget_overloads(app: Any) -> None:
    from sphinx.pycode import ModuleAnalyzer

    analyzer = ModuleAnalyzer.for_module("asynctools._decorators")
    analyzer.analyze()
    for name in READABLE_SIGNATURES:
        analyzer.overloads.pop(name.rpartition(".")[2], None)


def readable_signature(
    app: Any, what: str, name: str, obj: Any, options: Any, signature: str | None, annotation: str | None
) -> tuple[str, str] | None:
    if name in READABLE_SIGNATURES:
        return READABLE_SIGNATURES[name], ""
    return None


def examples_as_code(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Show the docstrings' indented examples as Python code blocks.

    The docstrings are plain text, read with ``help()`` as much as here: an example is a block indented
    under a paragraph. reStructuredText would read it as a quotation, so each such block gets a
    ``code-block`` directive in front of it.
    """
    out: list[str] = []
    previous_blank = True
    in_block = False
    for line in lines:
        indented = line.startswith("    ")
        if indented and previous_blank and not in_block:
            out += [".. code-block:: python", ""]
            in_block = True
        elif line.strip() and not indented:
            in_block = False
        out.append(line)
        previous_blank = not line.strip()
    lines[:] = out


def setup(app: Any) -> None:
    app.connect("builder-inited", forget_overloads)
    app.connect("autodoc-process-signature", readable_signature)
    app.connect("autodoc-process-docstring", examples_as_code)
