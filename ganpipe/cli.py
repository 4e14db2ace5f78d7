"""The `ganpipe` command.

- ``ganpipe report [REV ...]`` writes reports/report.html and reports/report.md.
- ``ganpipe evaluate --samples DIR_OR_NPZ`` scores a folder of images or an .npz of samples with the
  evaluate stage's protocol and prints the metrics (``--json FILE`` writes them too).
- ``ganpipe compare [REV ...] [-A | --num N] [--csv] [-o FILE] [--plot PNG]`` tables the headline metrics
  of commits and experiments (pandas, through ``dvc.api``) with intervals and the spread between seeds.
- ``ganpipe exp PROFILE [-n NAME] [--queue] [--seeds N] [-S key=value ...] [DVC EXP RUN ARGS]`` runs
  ``profiles/PROFILE.yaml`` as a DVC experiment on top of the committed params (any other ``dvc exp run``
  argument, ``-f``, ``--temp``, ``-m``, a stage, passes through).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import backend
from .errors import GanpipeError, one_line


def _report(args) -> None:
    out = args.output
    md = out[:-5] + ".md" if out.endswith(".html") else out + ".md"
    from .report import write_report

    runs = write_report(args.revs, out, md)
    missing = [r.label for r in runs if not r.eval]
    print(f"report: {out} and {md} ({len(runs)} runs)")
    if missing:
        print(f"report: no metrics/eval.json for {', '.join(missing)} (not run, or not pulled)", file=sys.stderr)


def _evaluate(args) -> None:
    from .io import write_json
    from .score import score, summary

    if args.json:  # checked before minutes of scoring, not after
        target = Path(args.json)
        if target.is_dir():
            raise GanpipeError(f"--json {target}: is a folder; name a file to write")
        if not target.parent.is_dir():
            raise GanpipeError(f"--json {target}: folder {target.parent} does not exist")
    result = score(args.samples)
    print("\n".join(summary(result)))
    p = result["protocol"]
    print(f"protocol: {p['n_generated']} samples vs {p['n_real']} real ({p['real_split']}), {p['extractor']} "
          f"extractor {str(p['extractor_sha256'])[:12]}, feature_dim {p['feature_dim']}")
    if args.json:
        write_json(args.json, result)
        print(f"evaluate: {args.json}")


def _compare(args) -> None:
    from .compare import compare

    text = compare(args.revs, args.all_commits, args.num, "csv" if args.csv else "md", args.output, args.plot,
                   args.metric)
    print(text, end="")
    if args.plot:
        print(f"compare: {args.plot}", file=sys.stderr)


def _exp(args) -> int:
    from .profiles import run_exp

    return run_exp(args.profile, args.name, args.queue, args.set_param, args.from_workspace, dvc_args=args.dvc_args,
                   seeds=args.seeds)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ganpipe", description="ganpipe tools")
    sub = ap.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="offline HTML + Markdown comparison of the workspace, revisions, experiments")
    rep.add_argument("revs", nargs="*", help="git revisions or experiment names; 'workspace' for the working tree "
                                             "(default: the workspace alone). The first is the baseline.")
    rep.add_argument("-o", "--output", default="reports/report.html", help="HTML file (Markdown beside it, .md)")
    ev = sub.add_parser("evaluate", help="score a folder of images or an .npz of samples with the pipeline's protocol")
    ev.add_argument("--samples", required=True, help="a folder of PNG/JPEG images (flat or class folders) or an "
                                                     ".npz with uint8 'x' (N, H, W, C)")
    ev.add_argument("--json", help="also write the metrics and protocol to this JSON file")
    cmp = sub.add_parser("compare", help="headline metrics of commits and experiments as a table (and a plot)")
    cmp.add_argument("revs", nargs="*", help="git revisions to start from (default: HEAD); their experiments are included")
    cmp.add_argument("-A", "--all-commits", action="store_true", help="every first-parent commit and its experiments")
    cmp.add_argument("-n", "--num", type=int, default=1, help="this many commits back from each revision (default 1)")
    cmp.add_argument("--csv", action="store_true", help="CSV (numbers and interval bounds) instead of Markdown")
    cmp.add_argument("-o", "--output", help="also write the table to this file")
    cmp.add_argument("--plot", metavar="PNG", help="write a bar plot of --metric per run, with intervals")
    cmp.add_argument("--metric", default="fd_clf", help="the metric of --plot (default fd_clf)")
    ex = sub.add_parser("exp", help="run profiles/PROFILE.yaml as a DVC experiment on top of the committed params")
    ex.add_argument("profile", help="a profile name: profiles/PROFILE.yaml (tiny, default, gpu-full, ...)")
    ex.add_argument("-n", "--name", help="experiment name (default: the profile's)")
    ex.add_argument("--queue", action="store_true", help="queue it (`dvc queue start` runs the queue)")
    ex.add_argument("-S", "--set-param", action="append", default=[], metavar="KEY=VALUE",
                    help="an override on top of the profile, as in `dvc exp run -S`")
    ex.add_argument("--seeds", type=int, metavar="N", help="queue N experiments of this variant, base.seed = the "
                    "committed seed + 0..N-1, named NAME-seedS (ganpipe compare shows their spread)")
    ex.add_argument("--from-workspace", action="store_true",
                    help="start from the workspace's params.yaml even where it differs from HEAD")
    args, extra = ap.parse_known_args(argv)  # `ganpipe exp` passes what it does not know to `dvc exp run`
    if extra and args.command != "exp":
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    args.dvc_args = extra
    try:
        if args.command == "evaluate":  # the one command that runs Keras: its backend before Keras is imported
            backend.use(backend.default(), key="KERAS_BACKEND")
        if args.command == "exp":
            return _exp(args)
        {"report": _report, "evaluate": _evaluate, "compare": _compare}[args.command](args)
    except GanpipeError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
