"""``ganpipe compare``: the headline metrics of commits and experiments as one pandas table.

Rows come from ``dvc.api.exp_show`` (DVC's own view of commits, experiments and the workspace; ``-A``
walks every first-parent commit), each metric's 95% interval from that row's
``metrics/eval_details.json`` (read with ``dvc.api.read``). Runs of one variant, the same baseline commit
and params but ``base.seed``, are summarised by their spread between seeds: the intervals of one run cover
sample noise only, while seeds differ by training noise too. A variant with one run says "one seed".
The report (``ganpipe.report``) builds its metric table from :func:`metric_frame` as well.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from .errors import GanpipeError
from .io import atomic_path, write_bytes
from .results import DETAILS, is_headline, reader

# what exp_show reports about a row rather than its params, metrics or deps
DVC_COLUMNS = ("Experiment", "rev", "typ", "Created", "parent", "State", "Executor")
SEED = "base.seed"
# the order of the headline metrics in tables (any other headline metric follows, by name)
ORDER = ("fd_clf", "fd_inf_clf", "kid_clf_mean", "precision_clf", "recall_clf", "density_clf", "coverage_clf",
         "clf_score", "fd_inc", "fd_inf_inc", "kid_inc_mean", "precision_inc", "recall_inc")
LONG = ["run", "metric", "value", "lo", "hi"]


def metric_frame(evals: dict[str, dict]) -> pd.DataFrame:
    """One row per (run, headline metric): its value and 95% interval (``lo``/``hi``, NaN without one).
    ``evals``: run label -> the run's whole result (``results.merge`` of eval.json and eval_details.json)."""
    rows = [{"run": label, "metric": k, "value": float(v), "lo": e.get(f"{k}_ci95_lo"), "hi": e.get(f"{k}_ci95_hi")}
            for label, e in evals.items() for k, v in e.items() if is_headline(k, v)]
    return pd.DataFrame(rows, columns=LONG).astype({"value": float, "lo": float, "hi": float})


def metric_order(names) -> list[str]:
    names = set(names)
    return [n for n in ORDER if n in names] + sorted(names - set(ORDER))


def runs(repo: str = ".", revs: list[str] | None = None, num: int = 1) -> pd.DataFrame:
    """One row per commit, experiment or the workspace that has metrics: ``label`` (experiment name or
    revision), ``rev``, ``baseline`` (the commit an experiment was run on), the params (``section.key``)
    and the headline metrics with ``<metric>_lo``/``_hi``; the workspace only where it differs from HEAD."""
    import dvc.api

    try:
        shown = dvc.api.exp_show(repo=repo, revs=revs or None, num=num)
    except Exception as e:  # noqa: BLE001 - DVC's errors for an unknown revision are many types
        raise GanpipeError(f"dvc exp show: {str(e).strip() or type(e).__name__}") from None
    df = pd.DataFrame(shown)
    if df.empty:
        return df
    base, baselines = None, []
    for typ, rev in zip(df["typ"], df["rev"]):
        base = rev if typ == "baseline" else base
        baselines.append(base)
    df["baseline"] = baselines
    df["label"] = [name if isinstance(name, str) and name else rev for name, rev in zip(df["Experiment"], df["rev"])]
    params = [c for c in df.columns if "." in c and "/" not in c and c not in DVC_COLUMNS]
    metrics = [c for c in df.columns if c not in DVC_COLUMNS and c not in params and "/" not in c
               and c not in ("baseline", "label") and is_headline(c, 0.0)]
    for m in metrics:  # exp_show writes "!" where a file could not be read: not a number
        df[m] = pd.to_numeric(df[m], errors="coerce")
    metrics = metric_order(m for m in metrics if df[m].notna().any())
    df = df[df[metrics].notna().any(axis=1)] if metrics else df.iloc[0:0]
    if len(df) > 1 and df.iloc[0]["rev"] == "workspace":  # a clean workspace repeats HEAD's row
        a, b = df.iloc[0][params + metrics], df.iloc[1][params + metrics]
        if a.astype(str).equals(b.astype(str)):
            df = df.iloc[1:]
    out = df[["label", "rev", "baseline"] + params + metrics].reset_index(drop=True).copy()
    for m in metrics:  # intervals from each run's details
        out[f"{m}_lo"], out[f"{m}_hi"] = float("nan"), float("nan")
    for i, rev in enumerate(out["rev"]):
        raw = reader(None if rev == "workspace" else rev, repo)(DETAILS)
        details = json.loads(raw) if raw else {}
        for m in metrics:
            out.loc[i, f"{m}_lo"] = details.get(f"{m}_ci95_lo", float("nan"))
            out.loc[i, f"{m}_hi"] = details.get(f"{m}_ci95_hi", float("nan"))
    out.attrs["params"], out.attrs["metrics"] = params, metrics
    return out


def changed_params(df: pd.DataFrame) -> list[str]:
    """The params whose value differs between rows (the others say nothing about the comparison)."""
    return [p for p in df.attrs.get("params", []) if df[p].astype(str).nunique(dropna=False) > 1]


def seeds(df: pd.DataFrame) -> pd.DataFrame:
    """Per variant (baseline commit + every param but the seed): how many seeds ran, and for each metric
    the mean and the standard deviation between seeds (NaN with one seed; ``note`` says "one seed")."""
    metrics = df.attrs.get("metrics", [])
    keys = ["baseline"] + [p for p in df.attrs.get("params", []) if p != SEED]
    rows = []
    for _, group in df.astype({k: str for k in keys}).groupby(keys, sort=False, dropna=False):
        group = group.drop_duplicates(SEED) if SEED in group else group
        row = {"variant": ", ".join(group["label"]), "seeds": len(group),
               "note": "one seed" if len(group) == 1 else f"spread of {len(group)} seeds"}
        for m in metrics:
            vals = group[m].dropna()
            row[f"{m}_mean"] = vals.mean() if len(vals) else float("nan")
            row[f"{m}_std"] = vals.std(ddof=1) if len(vals) > 1 else float("nan")
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["metrics"] = metrics
    return out


def _param(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))  # exp_show's table fills gaps with None, which makes integer columns float
    return "—" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)


def _cell(v, lo=None, hi=None) -> str:
    if v is None or pd.isna(v):
        return "—"
    s = f"{v:.4g}"
    return s if lo is None or pd.isna(lo) or pd.isna(hi) else f"{s} [{lo:.4g}, {hi:.4g}]"


def table(df: pd.DataFrame) -> pd.DataFrame:
    """The runs as text cells for reading: label, the params that differ, ``value [lo, hi]`` per metric."""
    metrics = df.attrs.get("metrics", [])
    out = df[["label"] + changed_params(df)].map(_param).copy()
    for m in metrics:
        out[m] = [_cell(v, lo, hi) for v, lo, hi in zip(df[m], df[f"{m}_lo"], df[f"{m}_hi"])]
    return out


def seed_table(s: pd.DataFrame) -> pd.DataFrame:
    out = s[["variant", "seeds"]].copy()
    for m in s.attrs.get("metrics", []):
        out[m] = [_cell(v) if pd.isna(sd) else f"{v:.4g} ± {sd:.2g}" for v, sd in zip(s[f"{m}_mean"], s[f"{m}_std"])]
    out["note"] = s["note"]
    return out


def markdown(df: pd.DataFrame) -> str:
    parts = ["## Runs (95% intervals: sample noise only)", "", table(df).to_markdown(index=False)]
    s = seeds(df)
    if len(s) < len(df):  # some variant ran with several seeds
        parts += ["", "## Variants across seeds (mean ± standard deviation between seeds)", "",
                  seed_table(s).to_markdown(index=False)]
    else:
        parts += ["", "Every variant ran with one seed: the intervals above do not cover training noise."]
    return "\n".join(parts) + "\n"


def csv(df: pd.DataFrame) -> str:
    """The numbers: label, revision, baseline, the params that differ, each metric with ``_lo``/``_hi``."""
    metrics = df.attrs.get("metrics", [])
    cols = ["label", "rev", "baseline"] + changed_params(df) + [c for m in metrics for c in (m, f"{m}_lo", f"{m}_hi")]
    return df[cols].to_csv(index=False)


def plot(df: pd.DataFrame, metric: str, path: str | os.PathLike) -> None:
    """A bar per run (oldest first, as exp_show lists newest first) with its 95% interval: a trend over
    commits, or the experiments side by side. PNG, written atomically."""
    if metric not in df.attrs.get("metrics", []):
        raise GanpipeError(f"--metric {metric}: not among the compared metrics "
                           f"({', '.join(df.attrs.get('metrics', [])) or 'none'})")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = df.iloc[::-1]
    v, lo, hi = d[metric].to_numpy(float), d[f"{metric}_lo"].to_numpy(float), d[f"{metric}_hi"].to_numpy(float)
    err = [[max(x, 0) for x in v - lo], [max(x, 0) for x in hi - v]]
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(d) + 2), 3.5))
    ax.bar(range(len(d)), v, yerr=[[0 if pd.isna(x) else x for x in e] for e in err], capsize=3, color="#4c72b0")
    ax.set_xticks(range(len(d)), list(d["label"]), rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(f"{metric} (95% interval)")
    ax.set_title(f"{metric} by run (oldest first)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)


def compare(revs: list[str], all_commits: bool, num: int, fmt: str, output: str | None, plot_path: str | None,
            metric: str, repo: str = ".") -> str:
    df = runs(repo, revs, -1 if all_commits else num)
    if df.empty:
        raise GanpipeError("no run with metrics/eval.json among the revisions and experiments shown "
                           "(`dvc exp show` lists what there is)")
    text = markdown(df) if fmt == "md" else csv(df)
    if output:
        write_bytes(Path(output), text.encode())
    if plot_path:
        plot(df, metric, plot_path)
    return text
