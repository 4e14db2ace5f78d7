"""The `ganpipe` command.

- ``ganpipe report [REV ...]`` writes reports/report.html and reports/report.md.
- ``ganpipe evaluate --samples DIR_OR_NPZ`` scores a folder of images or an .npz of samples with the
  evaluate stage's protocol and prints the metrics (``--json FILE`` writes them too).
- ``ganpipe exp PROFILE [-n NAME] [--queue] [-S key=value ...]`` runs ``profiles/PROFILE.yaml`` as a DVC
  experiment on top of the committed params.
- ``ganpipe plots show|diff [DVC ARGS]`` runs ``dvc plots show|diff`` with a page that works offline
  (Vega inline instead of DVC's CDN links).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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


def _exp(args) -> int:
    from .profiles import run_exp

    return run_exp(args.profile, args.name, args.queue, args.set_param, args.from_workspace)


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
    ex = sub.add_parser("exp", help="run profiles/PROFILE.yaml as a DVC experiment on top of the committed params")
    ex.add_argument("profile", help="a profile name: profiles/PROFILE.yaml (tiny, default, gpu-full, ...)")
    ex.add_argument("-n", "--name", help="experiment name (default: the profile's)")
    ex.add_argument("--queue", action="store_true", help="queue it (`dvc queue start` runs the queue)")
    ex.add_argument("-S", "--set-param", action="append", default=[], metavar="KEY=VALUE",
                    help="an override on top of the profile, as in `dvc exp run -S`")
    ex.add_argument("--from-workspace", action="store_true",
                    help="start from the workspace's params.yaml even where it differs from HEAD")
    pl = sub.add_parser("plots", help="dvc plots show|diff with an offline page (Vega inline, no CDN)")
    pl.add_argument("action", choices=["show", "diff"])
    pl.add_argument("dvc_args", nargs=argparse.REMAINDER, help="passed to dvc plots show|diff (revisions, -o DIR, ...)")
    args = ap.parse_args(argv)
    try:
        if args.command == "exp":
            return _exp(args)
        if args.command == "plots":
            from .offline_plots import run

            return run(args.action, args.dvc_args)
        (_report if args.command == "report" else _evaluate)(args)
    except GanpipeError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
