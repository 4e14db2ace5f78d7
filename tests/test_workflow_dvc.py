"""The experiment workflow with real dvc and git: experiments, the queue, diffs across commits, the
offline report, push to the default local remote and pull into a fresh clone, identical reruns."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_repo, dvc, set_params, sh

pytestmark = pytest.mark.slow
def ran_stages(stdout: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", stdout))


def walk(obj):
    yield obj
    if isinstance(obj, dict):
        for v in obj.values():
            yield from walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from walk(v)


def experiments(repo: Path) -> list[dict]:
    """(name, params, eval metrics) of every experiment `dvc exp show --json` reports."""
    shown = json.loads(dvc("exp", "show", "--json", cwd=repo).stdout)
    out = []
    for node in walk(shown):
        if isinstance(node, dict) and node.get("name") and isinstance(node.get("data"), dict):
            data = node["data"]
            params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
            metrics = (data.get("metrics") or {}).get("metrics/eval.json", {}).get("data", {})
            out.append({"name": node["name"], "params": params, "eval": metrics})
    return out


@pytest.fixture(scope="module")
def project(tiny_run, tmp_path_factory):
    repo = copy_repo(tiny_run[0], tmp_path_factory.mktemp("wf"))
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "baseline run"], repo)
    return repo, (repo / "dvc.lock").read_text()


def test_exp_run_with_set_param_is_reported_by_exp_show(project):
    repo, _ = project
    out = dvc("exp", "run", "-S", "model.loss=hinge", "-S", "train.max_steps=64", "-n", "hinge-loss", cwd=repo)
    assert "Running stage 'train'" in out.stdout and "Running stage 'prepare'" not in out.stdout
    exps = {e["name"]: e for e in experiments(repo)}
    assert "hinge-loss" in exps, sorted(exps)
    assert exps["hinge-loss"]["params"]["model"]["loss"] == "hinge"
    assert exps["hinge-loss"]["eval"]["fd_clf"] > 0
    diff = dvc("exp", "diff", "HEAD", "hinge-loss", "--json", cwd=repo).stdout
    assert "model.loss" in diff and "fd_clf" in diff
    # `make compare`'s table: the headline metrics and the protocol parts that decide comparability
    make = (Path(__file__).parents[1] / "Makefile").read_text()
    cmd = shlex.split(re.search(r"dvc exp show (.*)", make).group(1).replace("$$", "$"))
    header = dvc("exp", "show", *cmd, cwd=repo).stdout.splitlines()[0]
    for column in ("fd_clf", "fd_inf_clf", "kid_clf_mean", "coverage_clf", "model.loss"):
        assert column in header, (column, header)
    # plain `dvc exp show` as rendered in a terminal: DVC collapses all but the first column of each kind
    # from the right, about 3 characters for each of ~100 param and dependency columns. At 200 columns
    # fd_clf (eval.json's first, listed first) is shown; at 270, FD, FD-infinity, KID, precision, recall
    # (260 before the training modules were split: each library file is a dependency column).
    def rendered_header(width: int) -> str:
        rendered = sh([str(Path(sys.prefix) / "bin" / "dvc"), "exp", "show", "--no-pager"], repo,
                      env={"COLUMNS": str(width)}).stdout
        return next(line for line in rendered.splitlines() if "Experiment" in line)

    assert " fd_clf " in rendered_header(200), rendered_header(200)
    for column in ("fd_clf", "fd_inf_clf", "kid_clf_mean", "precision_clf", "recall_clf"):
        assert f" {column} " in rendered_header(270), (column, rendered_header(270))
    columns = dvc("exp", "show", "--csv", cwd=repo).stdout.splitlines()[0].split(",")
    assert len([c for c in columns if c.endswith("d_loss")]) <= 1, columns  # not reported twice
    assert not [c for c in columns if "sha256" in c or "per_class" in c or c.startswith("protocol")], columns
    # back to the committed run, from git and the cache (no retraining in the tests that follow)
    sh(["git", "checkout", "HEAD", "--", "."], repo)
    dvc("checkout", "--force", cwd=repo)
    assert "Running stage" not in dvc("repro", "--dry", cwd=repo).stdout


def test_queued_profile_experiments_run_with_exactly_the_params_they_name(project):
    """A workspace `dvc exp run -S` leaves its params in params.yaml, and queued experiments start from the
    workspace: `ganpipe exp` refuses until params.yaml is HEAD's, then each variant is HEAD + its -S."""
    repo, _ = project
    ganpipe = str(Path(sys.prefix) / "bin" / "ganpipe")
    head = yaml.safe_load(sh(["git", "show", "HEAD:params.yaml"], repo).stdout)
    set_params(repo, "model", loss="hinge")  # what `dvc exp run -S model.loss=hinge` leaves behind
    refused = sh([ganpipe, "exp", "default", "--queue", "-S", "train.g_lr=0.0003"], repo, check=False)
    assert refused.returncode == 1 and "params.yaml differs from HEAD" in refused.stderr
    sh(["git", "checkout", "HEAD", "--", "params.yaml"], repo)
    for lr in ("0.0003", "0.0007"):  # 48 steps each (max_steps) keeps the test short
        sh([ganpipe, "exp", "default", "--queue", "-n", f"glr-{lr}", "-S", f"train.g_lr={lr}", "-S",
            "train.max_steps=48"], repo)
    dvc("queue", "start", "-j", "1", cwd=repo)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = dvc("queue", "status", cwd=repo).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    dvc("queue", "stop", "--kill", cwd=repo, check=False)
    assert "Failed" not in status, status + dvc("queue", "logs", "glr-0.0003", cwd=repo, check=False).stdout
    exps = {e["name"]: e for e in experiments(repo)}
    for lr in ("0.0003", "0.0007"):
        want = json.loads(json.dumps(head))
        want["train"]["g_lr"], want["train"]["max_steps"] = float(lr), 48
        assert exps[f"glr-{lr}"]["params"] == want
        assert exps[f"glr-{lr}"]["eval"]["fd_clf"] > 0


def test_commits_compare_with_metrics_and_params_diff_and_the_offline_report(project):
    repo, _ = project
    set_params(repo, "generate", n_samples=1100)
    dvc("repro", cwd=repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "more samples"], repo)
    params = json.loads(dvc("params", "diff", "HEAD~1", "--json", cwd=repo).stdout)
    change = params["params.yaml"]["generate.n_samples"]
    assert (change["old"], change["new"]) == (1000, 1100)
    metrics = json.loads(dvc("metrics", "diff", "HEAD~1", "--json", cwd=repo).stdout)
    # stable names: another sample count is a change of fd_clf, not one metric removed and another added
    fd = metrics["metrics/eval.json"]["fd_clf"]
    assert fd["old"] is not None and fd["new"] is not None and fd["old"] != fd["new"], metrics

    plots = dvc("plots", "diff", "HEAD~1", "--json", cwd=repo).stdout
    assert "d_loss.tsv" in plots and "samples.png" in plots
    # each plot once: every image file under one id, the losses in one plot (not also one per table)
    shown = json.loads(dvc("plots", "show", "--json", cwd=repo).stdout)["data"]
    urls = [e["url"] for entries in shown.values() for e in entries if e.get("type") == "image"]
    assert urls and len(urls) == len(set(urls)), urls
    assert not [k for k in shown if k.endswith(".tsv") or k.endswith("plots/metrics")], sorted(shown)
    for title, curves in (("Quality during training (x = step)", {"fd_clf", "kid_clf"}),
                          ("Augmentation (x = step)", {"rt", "augment_p"})):
        rows = [row for entry in shown[title] for row in entry["content"]["data"]["values"]]
        assert rows and curves <= {k for row in rows for k in row}, (title, rows[:2])
    # plain `dvc plots show` writes the offline page (.dvc/config's plots.html_template): Vega inline, no
    # CDN; the sample grids in DVCLive's step layout, ordered by step
    dvc("plots", "show", "-o", "offline-plots", cwd=repo)
    page = (repo / "offline-plots/index.html").read_text()
    assert "cdn.jsdelivr" not in page and "<script src=" not in page and "vegaEmbed(" in page
    assert "Losses per epoch" in page
    steps = [int(s) for s in re.findall(r"samples[/\\](\d+)\.png", page)]
    assert len(steps) >= 2 and steps == sorted(steps), steps

    out = sh([str(Path(sys.prefix) / "bin" / "ganpipe"), "report", "HEAD~1", "HEAD", "-o", "reports/cmp.html"], repo)
    assert "2 runs" in out.stdout
    page = (repo / "reports/cmp.html").read_text()
    md = (repo / "reports/cmp.md").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page.lower()
    assert page.count("data:image/png;base64,") >= 3  # curves + one sample grid per run
    assert "HEAD~1" in md and "generate.n_samples" in md
    # the same model and 1000 vs 1100 samples: FD-infinity is comparable across counts, and agrees
    row = next(line for line in md.splitlines() if line.startswith("| fd_inf_clf |"))
    assert row.endswith("within intervals |")
    assert "![samples HEAD~1](report_samples_0.png)" in md and (repo / "reports/report_samples_1.png").is_file()
    bad = subprocess.run([str(Path(sys.prefix) / "bin" / "ganpipe"), "report", "HEAD", "no-such-rev"], cwd=repo,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "revision 'no-such-rev': no such git revision or experiment" in bad.stderr


def test_a_fresh_clone_without_cache_or_remote_shows_every_number(project, tmp_path):
    """Metrics, params, loss tables and the report come from git: no `dvc pull`, no cache, no remote."""
    repo, _ = project
    set_params(repo, "evaluate", kid_subsets=21)
    assert ran_stages(dvc("repro", cwd=repo).stdout) == {"evaluate"}
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "21 KID subsets"], repo)
    clone = tmp_path / "bare-clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    os.symlink(sys.prefix, clone / ".venv")
    (clone / ".dvc/config").write_text("")  # no remote either
    assert not (clone / ".dvc/cache").exists()
    shown = json.loads(dvc("metrics", "show", "--json", cwd=clone).stdout)
    assert "fd_inf_clf" in json.dumps(shown) and "test_accuracy" in json.dumps(shown)
    diff = json.loads(dvc("metrics", "diff", "HEAD~1", "--json", cwd=clone).stdout)
    assert "kid_clf_mean" in diff["metrics/eval.json"], diff  # 20 -> 21 subsets moved the KID estimate
    assert "evaluate.kid_subsets" in dvc("params", "diff", "HEAD~1", cwd=clone).stdout
    plots = json.loads(dvc("plots", "diff", "HEAD~1", "--json", cwd=clone).stdout)
    assert plots["data"]["Losses per epoch (x = step)"], plots.get("errors")
    out = sh([str(Path(sys.prefix) / "bin" / "ganpipe"), "report", "HEAD~1", "HEAD", "-o", "r/r.html"], clone)
    md = (clone / "r/r.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| fd_inf_clf |"))
    num = r"-?[0-9.]+(?:e[-+]?[0-9]+)?"
    assert re.search(rf"\| {num} \[{num}, {num}\] \| {num} \[", row), row  # values with intervals
    assert "2 runs" in out.stdout


def test_compare_tables_every_commit_and_experiment_and_plots_them(project, tmp_path):
    """`ganpipe compare -A`: pandas over dvc.api.exp_show, intervals from each run's details, a PNG plot."""
    import pandas as pd

    repo, _ = project
    ganpipe = str(Path(sys.prefix) / "bin" / "ganpipe")
    out = sh([ganpipe, "compare", "-A", "--plot", str(tmp_path / "fd.png"), "-o", str(tmp_path / "cmp.md")], repo)
    for name in ("hinge-loss", "glr-0.0003", "glr-0.0007"):
        assert f"| {name} " in out.stdout, out.stdout
    assert (tmp_path / "cmp.md").read_text() == out.stdout
    assert "one seed" in out.stdout  # no variant ran with several seeds: said, not hidden
    assert (tmp_path / "fd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(__import__("io").StringIO(sh([ganpipe, "compare", "-A", "--csv"], repo).stdout))
    assert len(table) >= 6 and {"hinge-loss", "glr-0.0003"} <= set(table["label"])  # 3+ commits, 3 experiments
    assert "model.loss" in table.columns and "train.g_lr" in table.columns  # the params that differ
    ok = table.dropna(subset=["fd_clf_lo"])
    assert len(ok) >= 5 and (ok["fd_clf_lo"] <= ok["fd_clf"]).all() and (ok["fd_clf"] <= ok["fd_clf_hi"]).all()
    out = sh([ganpipe, "report", "HEAD", "hinge-loss", "-o", str(tmp_path / "exp.html")], repo)  # an experiment name
    assert "2 runs" in out.stdout and "model.loss" in (tmp_path / "exp.md").read_text()
    bad = subprocess.run([ganpipe, "compare", "no-such-rev"], cwd=repo, capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1, bad.stderr


def test_push_then_pull_in_a_fresh_clone_restores_everything(project, tmp_path):
    repo, _ = project
    dvc("push", cwd=repo)
    clone = repo.parent / "clone"
    if clone.exists():
        shutil.rmtree(clone)
    sh(["git", "clone", "-q", str(repo), str(clone)], repo.parent)
    os.symlink(sys.prefix, clone / ".venv")
    dvc("pull", cwd=clone)
    status = dvc("status", cwd=clone).stdout
    assert "up to date" in status, status
    for f in ("models/generator.keras", "metrics/eval.json", "data/prepared/train/x-00000.npy", "checkpoints/ckpt.npz"):
        assert (clone / f).read_bytes() == (repo / f).read_bytes(), f
    assert "Running stage" not in dvc("repro", cwd=clone).stdout
