"""The package's own import graph, read from the source (``ast``, nothing imported): which ganpipe modules a
file uses, directly or through others. One walk that the checkpoint fingerprint (``checkpoint.code_files``)
and the test of ``dvc.yaml``'s stage dependencies both use, so neither is a list that can forget a module."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent


def library_modules(path: str | Path, seen: set[str] | None = None) -> set[str]:
    """The ``ganpipe/*.py`` files (relative to the repository root) that ``path`` imports, transitively."""
    seen = set() if seen is None else seen
    for node in ast.walk(ast.parse(Path(path).read_text())):
        mods = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import inside the package
                base = "ganpipe" + (f".{base}" if base else "")
            mods = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        for mod in mods:
            rel = mod.replace(".", "/") + ".py"
            if mod.startswith("ganpipe") and (ROOT / rel).is_file() and rel not in seen:
                seen.add(rel)
                library_modules(ROOT / rel, seen)
    return seen
