"""An offline comparison report: one self-contained HTML file (embedded PNGs, no scripts, no URLs) and a
Markdown summary, for the workspace and any git revisions or DVC experiments.

For each revision it reads ``metrics/eval.json`` and ``eval_details.json``, ``metrics/train.json``, the DVCLive loss tables, the
sample grid and ``params.yaml`` (through ``dvc.api`` for revisions, so DVC-tracked files come from the
cache or the remote). For each metric with a 95% interval it says whether a run differs from the first
(the baseline) beyond the intervals, i.e. whether the two intervals are disjoint, and only when the two
runs' protocols agree on what moves that metric (:data:`PROTOCOL_KEYS`); otherwise it says what differs.
The Markdown's images (sample grids, loss curves) are PNG files written beside it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import GanpipeError
from .compare import changed_params as compare_changed_params
from .compare import metric_frame, metric_order
from .evaluation import PROTOCOL_KEYS
from .io import write_bytes
from .results import DETAILS, EVAL, merge, reader

TRAIN = "metrics/train.json"
LOSSES = ("d_loss", "g_loss")
LOSS_TSV = "metrics/train/plots/metrics/{}.tsv"
GRID = "data/generated/plots/samples.png"
PARAMS = "params.yaml"


@dataclass
class Run:
    label: str
    eval: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    losses: dict = field(default_factory=dict)  # name -> (steps, values)
    grid: bytes | None = None
    params: dict = field(default_factory=dict)


def load_run(rev: str | None, repo: str = ".") -> Run:
    from . import params as P  # params are read as DVC reads them (YAML 1.2)

    read = reader(rev, repo)
    if rev is not None and read(PARAMS) is None:  # params.yaml is in git at every revision of a project
        raise GanpipeError(f"revision {rev!r}: no such git revision or experiment with a params.yaml in {repo}")
    run = Run(rev or "workspace")
    headline, details = read(EVAL), read(DETAILS)
    if headline is not None or details is not None:
        run.eval = merge(headline, details)
    if (b := read(TRAIN)) is not None:
        run.train = json.loads(b)
    for name in LOSSES:
        if (b := read(LOSS_TSV.format(name))) is not None:
            rows = [line.split("\t") for line in b.decode().splitlines()[1:] if line.strip()]
            run.losses[name] = ([int(r[0]) for r in rows], [float(r[1]) for r in rows])
    run.grid = read(GRID)
    if (b := read(PARAMS)) is not None:
        run.params = P.load_yaml(b, f"{rev or 'workspace'}:{PARAMS}") or {}
    return run


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def metric_rows(run: Run) -> dict[str, tuple[float, float | None, float | None]]:
    """name -> (value, ci_lo, ci_hi) for the headline metrics (no reference points, no per-class)."""
    return _rows(metric_frame({run.label: run.eval}))


def _rows(frame) -> dict[str, tuple[float, float | None, float | None]]:
    none = lambda v: None if v != v else float(v)  # noqa: E731 - NaN (no interval) -> None
    return {m: (float(v), none(lo), none(hi)) for m, v, lo, hi in zip(frame["metric"], frame["value"], frame["lo"], frame["hi"])}


def _short(v) -> str:
    return v[:12] if isinstance(v, str) and len(v) == 64 else str(v)


def protocol_difference(name: str, a: dict, b: dict) -> str | None:
    """What differs between two runs' protocols for metric ``name``, or None when they are comparable.
    An entry a run did not record (an older ganpipe) counts as different: it cannot be checked."""
    prefix = max((p for p in PROTOCOL_KEYS if name.startswith(p)), key=len, default=None)
    keys = PROTOCOL_KEYS[prefix] if prefix else ()
    diffs = [f"{k} {_short(a.get(k, 'unrecorded'))} vs {_short(b.get(k, 'unrecorded'))}"
             for k in keys if k not in a or k not in b or a[k] != b[k]]
    return ", ".join(diffs) or None


def verdict(a: tuple, b: tuple, protocol_diff: str | None = None) -> str:
    if protocol_diff:
        return f"not comparable ({protocol_diff})"
    if a[1] is None or b[1] is None:
        return "no interval"
    if a[2] < b[1] or b[2] < a[1]:
        return "differs (intervals disjoint)"
    return "within intervals"


def reference(run: Run, which: str, name: str) -> float | None:
    v = run.eval.get("reference", {}).get(which, {}).get(name)
    return float(v) if isinstance(v, (int, float)) else None


def changed_params(runs: list[Run]) -> dict[str, list]:
    """key -> each run's value, for the params that differ between ``runs`` (``compare.changed_params``
    decides, as for ``ganpipe compare``'s tables)."""
    import pandas as pd

    flat = [_flat(r.params) for r in runs]
    frame = pd.DataFrame(flat)
    frame.attrs["params"] = sorted(frame.columns)
    return {k: [f.get(k) for f in flat] for k in compare_changed_params(frame)}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def loss_plot(runs: list[Run]) -> bytes | None:
    if not any(r.losses for r in runs):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(LOSSES), figsize=(5 * len(LOSSES), 3.2))
    for ax, name in zip(axes, LOSSES):
        for r in runs:
            if name in r.losses:
                ax.plot(*r.losses[name], marker="o", ms=3, label=r.label)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))


def _table(title: str, header: list[str], rows: list[list[str]]) -> tuple[list[str], list[str]]:
    """A titled table as (Markdown lines, HTML lines)."""
    md = ["", f"## {title}", "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    md += ["| " + " | ".join(row) + " |" for row in rows]
    h = [f"<h2>{html.escape(title)}</h2><table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in header) + "</tr>"]
    h += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows]
    return md, h + ["</table>"]


def _metrics_section(runs: list[Run]) -> tuple[list[str], list[str]]:
    """The metric table: each run's value and interval, the baseline's floor and ceiling, the verdicts."""
    frame = metric_frame({str(i): r.eval for i, r in enumerate(runs)})  # the table `ganpipe compare` builds on
    rows = [_rows(frame[frame["run"] == str(i)]) for i in range(len(runs))]
    base, names = rows[0], metric_order(frame["metric"].unique())
    protocols = [r.eval.get("protocol", {}) for r in runs]
    header = (["metric"] + [r.label for r in runs] + ["floor", "ceiling"]
              + [f"{r.label} vs {runs[0].label}" for r in runs[1:]])
    md = ["## Metrics (95% intervals)", "",
          f"Floor (real train images) and ceiling (an untrained generator) are `{runs[0].label}`'s, measured with "
          "its protocol. A difference is called only between runs whose protocols agree for that metric.", "",
          "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    h = ["<h2>Metrics (95% intervals)</h2><table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in header) + "</tr>"]
    for name in names:
        cells, verdicts = [], []
        for row in rows:
            v = row.get(name)
            cells.append("—" if v is None else _fmt(v[0]) + ("" if v[1] is None else f" [{_fmt(v[1])}, {_fmt(v[2])}]"))
        for which in ("floor_real_train", "ceiling_untrained_generator"):
            ref = reference(runs[0], which, name)
            cells.append("—" if ref is None else _fmt(ref))
        for row, proto in zip(rows[1:], protocols[1:]):
            verdicts.append(verdict(base[name], row[name], protocol_difference(name, protocols[0], proto))
                            if name in base and name in row else "missing")
        md.append(f"| {name} | " + " | ".join(cells + verdicts) + " |")
        h.append("<tr><td>" + html.escape(name) + "</td>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
                 + "".join(f"<td class='{'diff' if v.startswith('differs') else ''}'>{v}</td>" for v in verdicts) + "</tr>")
    return md, h + ["</table>"]


def render(runs: list[Run], curves: bytes | None = None) -> tuple[str, str]:
    """(html, markdown) for ``runs``; the first run is the baseline for the verdicts. ``curves``: the
    PNG of :func:`loss_plot`, if any."""
    md = ["# ganpipe report", "", "Runs: " + ", ".join(f"`{r.label}`" for r in runs), ""]
    h = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>ganpipe report</title><style>",
         "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
         "padding:3px 8px;text-align:right}th:first-child,td:first-child{text-align:left}.diff{background:#fde2e2}"
         "img{image-rendering:pixelated;max-width:100%}</style></head><body>",
         "<h1>ganpipe report</h1>"]
    sections = [_metrics_section(runs)]
    train_keys = ["steps", "images_seen", "img_per_sec", "wall_seconds", "d_loss", "g_loss"]
    sections.append(_table("Training", ["run"] + train_keys,
                           [[r.label] + [_fmt(r.train.get(k, "—")) for k in train_keys] for r in runs]))
    changed = changed_params(runs)
    if changed:
        sections.append(_table("Params that differ", ["key"] + [r.label for r in runs],
                               [[k] + [_fmt(v) for v in vals] for k, vals in changed.items()]))
    for section_md, section_h in sections:
        md += section_md
        h += section_h
    if curves:
        h += ["<h2>Training curves (epoch means)</h2>", _img(curves, "losses")]
    h.append("<h2>Samples</h2><table><tr>" + "".join(f"<th>{html.escape(r.label)}</th>" for r in runs) + "</tr><tr>")
    md += ["", "## Samples", ""]
    for i, r in enumerate(runs):
        h.append("<td>" + (_img(r.grid, f"samples {r.label}") if r.grid else "missing") + "</td>")
        md.append(f"`{r.label}`: " + (f"![samples {r.label}]({image_name(i)})" if r.grid else "missing") + "  ")
    if curves:
        md += ["", f"![training curves]({CURVES})"]
    h.append("</tr></table></body></html>")
    return "\n".join(h) + "\n", "\n".join(md) + "\n"


CURVES = "report_curves.png"


def image_name(i: int) -> str:
    return f"report_samples_{i}.png"


def write_report(revs: list[str], out_html: str | os.PathLike, out_md: str | os.PathLike, repo: str = ".") -> list[Run]:
    """``revs`` empty: the workspace alone; ``"workspace"`` names the workspace among revisions. The
    Markdown's images are PNG files beside it."""
    revs = revs or ["workspace"]
    runs = [load_run(None if rev == "workspace" else rev, repo) for rev in revs]
    curves = loss_plot(runs)
    page, md = render(runs, curves)
    folder = Path(out_md).parent
    for i, r in enumerate(runs):
        if r.grid:
            write_bytes(folder / image_name(i), r.grid)
    if curves is not None:
        write_bytes(folder / CURVES, curves)
    write_bytes(out_html, page.encode())
    write_bytes(out_md, md.encode())
    return runs
