"""The train stage's DVCLive logs: one entry per epoch record and per quality evaluation, at DVCLive's
explicit step numbers, published as they are made (VS Code and Studio update live), and replayed from the
checkpoint's records when a run resumes, so an interrupted run's logs are the same bytes as an
uninterrupted one's."""

from __future__ import annotations

import numpy as np
from dvclive import Live
from PIL import Image

NOT_LOGGED = ("epoch", "step", "images_seen", "partial")  # an epoch record's bookkeeping, not a curve


def open_live(directory) -> Live:
    return Live(dir=str(directory), save_dvc_exp=False, dvcyaml=None, report=None)


def log_epoch(live, rec: dict, grid: np.ndarray | None) -> None:
    """Every value of an epoch record: the epoch means of whatever the step reports and p."""
    live.step = rec["step"]
    for k in sorted(rec):  # sorted: a record read back from a checkpoint has its keys sorted, and DVCLive's
        if k not in NOT_LOGGED:  # summary keeps the order of first logging (a resumed run's must be the same bytes)
            live.log_metric(k, rec[k])
    if grid is not None:
        # DVCLive's step layout (name/{step}.png): DVC's plots and VS Code's step slider page through it
        live.log_image(f"samples/{rec['step']}.png", Image.fromarray(grid.squeeze(-1) if grid.shape[-1] == 1 else grid))


def log_eval(live, rec: dict) -> None:
    live.step = rec["step"]
    for k, v in rec.items():
        if k != "step":
            live.log_metric(k, v)


def publish(live) -> None:
    """What ``Live.next_step()`` does at the end of a step, for our explicit step numbers: write the summary
    (and Studio's live update, where configured) and signal DVC's VS Code extension that a step is done."""
    from dvclive.vscode import mark_dvclive_step_completed

    live.sync()
    mark_dvclive_step_completed(live.step)


def replay(live, history: list, evals: list, grids: dict) -> None:
    """Log again what earlier (interrupted) runs logged, in step order (evaluations before epochs)."""
    events = [(r["step"], 0, r) for r in evals] + [(r["step"], 1, r) for r in history]
    for _, kind, rec in sorted(events, key=lambda e: e[:2]):
        if kind == 0:
            log_eval(live, rec)
        else:
            log_epoch(live, rec, grids.get(rec["epoch"]))
