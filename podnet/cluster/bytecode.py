"""Bytecode for podnet's own modules, written once before the lab starts its processes.

``podnet up`` starts about seven interpreters per node, all at once, each importing the same
few hundred podnet modules. Without current ``.pyc`` files (a fresh checkout, an edited tree,
or an environment with ``PYTHONDONTWRITEBYTECODE`` set, where no interpreter writes them) every
one of them compiles those sources again: on a two-CPU machine that was about a fifth of all
the CPU time ``up`` spent before the nodes were ready. Compiling them once here is a stat per
file when they are current. Best effort: a tree that cannot be written (an installed, read-only
package already has its bytecode) is left as it is.
"""
from __future__ import annotations

import compileall
import os

import podnet


def compile_podnet(root: str | None = None) -> bool:
    """Write missing or stale ``.pyc`` files of the podnet package (or the tree at ``root``);
    False if some could not be written."""
    root = root or os.path.dirname(os.path.abspath(podnet.__file__))
    try:
        return bool(compileall.compile_dir(root, quiet=2, workers=1))
    except OSError:
        return False
