"""``ganpipe plots show|diff [DVC ARGS]``: DVC's plots page, working offline.

What we found: DVC's page loads Vega, Vega-Lite and vega-embed from a CDN (``dvc_render``'s
``VegaRenderer.SCRIPTS``, three ``<script src="https://cdn.jsdelivr.net/...">`` tags injected at the
template's ``{scripts}`` placeholder), so without a network its charts stay empty. ``dvc plots show
--html-template FILE`` accepts any page with a ``{plot_divs}`` placeholder; one without ``{scripts}`` drops
the CDN tags, so this template carries the three libraries inline instead: the versions DVC's renderer
names (vega 5.20.2, vega-lite 5.2.0, vega-embed 6.18.2; BSD-3-Clause, in ``ganpipe/vega/`` with their
licences). Images (the per-epoch sample grids) are files DVC copies beside the page.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

VEGA_DIR = Path(__file__).parent / "vega"
VEGA_FILES = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")
PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    <title>DVC plots (offline)</title>
    {refresh_tag}
{libraries}
    <style>
        table { border-spacing: 15px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def template() -> str:
    """The page: DVC's placeholders ``{refresh_tag}`` and ``{plot_divs}``, the libraries inline, no ``{scripts}``."""
    libraries = "\n".join(f"    <script>\n{(VEGA_DIR / name).read_text(encoding='utf8')}\n    </script>"
                          for name in VEGA_FILES)
    return PAGE.replace("{libraries}", libraries)  # last: the libraries' own text stays as it is


def dvc_executable() -> str:
    here = Path(sys.prefix) / "bin" / "dvc"
    return str(here) if here.exists() else "dvc"


def run(command: str, args: list[str]) -> int:
    """``dvc plots COMMAND --html-template <offline page> ARGS``; DVC's exit status."""
    fd, path = tempfile.mkstemp(suffix=".html", prefix="ganpipe-plots-")
    try:
        with os.fdopen(fd, "w", encoding="utf8") as f:
            f.write(template())
        return subprocess.run([dvc_executable(), "plots", command, "--html-template", path, *args]).returncode
    finally:
        os.unlink(path)
