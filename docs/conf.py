"""Sphinx configuration for the anyio_unittest documentation.

The build needs no network: no intersphinx, links to other projects are plain
URLs. Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html``.
"""

from __future__ import annotations

import os
import sys

# Document the checkout the docs live in, even when another copy is installed.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import anyio_unittest
from anyio_unittest import __version__

# The package sets ``__module__ = "anyio_unittest"`` on its public classes, so
# that reprs show the public name. autodoc reads attribute doc comments (``#:``)
# and source order from the module named there, so point the classes back at
# the private module that defines them while the docs are built. The documented
# names stay ``anyio_unittest.X`` (they come from the directives).
for _name in anyio_unittest.__all__:
    _obj = getattr(anyio_unittest, _name)
    if not isinstance(_obj, type) or _obj.__module__ != "anyio_unittest":
        continue
    for _modname, _module in list(sys.modules.items()):
        if (
            _modname.startswith("anyio_unittest._")
            and vars(_module).get(_obj.__qualname__) is _obj
        ):
            _obj.__module__ = _modname
            break

project = "anyio_unittest"
author = "the anyio_unittest developers"
copyright = "the anyio_unittest developers"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
]

exclude_patterns = ["_build"]
nitpicky = False

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

html_theme = "furo"
html_title = f"anyio_unittest {release}"
