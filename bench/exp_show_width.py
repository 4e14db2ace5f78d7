"""Which headline metrics plain `dvc exp show` keeps at a terminal width, as DVC's own renderer draws it.

DVC (3.67.1 here) renders `exp show` with a rich table that collapses every column but the first of each
kind (metrics, params, deps) from the right to fit the terminal (dvc/utils/table.py, dvc PR #5381). The
columns are this repo's: the metrics of `metrics/eval.json` and `metrics/features.json` in `dvc.yaml`'s
order, every param of `params.yaml` (flattened as DVC flattens them), every file dependency of
`dvc.yaml`'s stages; three rows (the workspace and two experiments) with values of the committed widths.
The same table is then drawn with fewer params or dependency columns to show what decides the fit.

    .venv/bin/python bench/exp_show_width.py [--widths 160,200,240,270]

Prints a Markdown table: for each variant and width, the headline metrics that are visible.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HEADLINE = ("fd_clf", "fd_inf_clf", "kid_clf_mean", "precision_clf", "recall_clf")


def repo_columns() -> tuple[dict, dict, list[str]]:
    """(metrics name -> value, param name -> value, dependency paths) of this repo, in DVC's order."""
    from dvc.utils.flatten import flatten
    from ruamel.yaml import YAML

    dvc_yaml = YAML(typ="safe").load((REPO / "dvc.yaml").read_text())
    metrics = {}
    for path in dvc_yaml.get("metrics", []):
        metrics |= json.loads((REPO / path).read_text())
    params = {k: v for k, v in flatten(YAML(typ="safe").load((REPO / "params.yaml").read_text())).items()}
    deps: list[str] = []
    for stage in dvc_yaml["stages"].values():
        deps += [d for d in stage.get("deps", []) if d not in deps]
    return metrics, params, sorted(deps)


def visible(metrics: dict, params: dict, deps: list[str], width: int) -> list[str]:
    """The headline metrics whose header DVC's `exp show` renderer draws at ``width`` columns."""
    from dvc.commands.experiments.show import show_experiments
    from dvc.compare import TabularData
    from dvc.ui import ui
    from rich.console import Console

    cols = ["Experiment", "rev", "typ", "Created", "parent", "State", "Executor", *metrics, *params, *deps]
    td = TabularData(cols, fill_value="-")
    for r in range(3):
        td.append([f"exp-{r}" if r else "workspace", "1a2b3c4", "baseline" if r == 0 else "branch_commit",
                   "09:1%d AM" % r, "", "", ""] + [f"{v:.5g}" if isinstance(v, float) else str(v) for v in
                                                   (*metrics.values(), *params.values())] + ["5d41402"] * len(deps))
    buf = io.StringIO()
    ui.enable()
    ui.rich_console = Console(file=buf, width=width, force_terminal=False, color_system=None)
    show_experiments(td, {"metrics": list(metrics), "params": list(params), "deps": deps}, pager=False)
    header = "\n".join(buf.getvalue().splitlines()[:4])
    return [m for m in HEADLINE if m in header]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", default="160,200,240,270")
    a = ap.parse_args()
    widths = [int(w) for w in a.widths.split(",")]
    metrics, params, deps = repo_columns()
    data = [d for d in deps if not d.endswith((".py", ".sh"))]
    few_params = dict(list(params.items())[:30])
    variants = [
        (f"this repo: {len(params)} params, {len(deps)} deps ({len(data)} data)", params, deps),
        (f"code as 2 folder deps: {len(params)} params, {len(data) + 2} deps", params, data + ["ganpipe", "stages"]),
        (f"no code deps: {len(params)} params, {len(data)} deps", params, data),
        (f"30 params, {len(deps)} deps", few_params, deps),
        (f"30 params, {len(data) + 2} deps", few_params, data + ["ganpipe", "stages"]),
    ]
    print("| columns | " + " | ".join(f"{w} wide" for w in widths) + " |")
    print("| --- |" + " --- |" * len(widths))
    for name, p, d in variants:
        cells = [", ".join(visible(metrics, p, d, w)) or "-" for w in widths]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
