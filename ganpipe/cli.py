"""The `ganpipe` command: `ganpipe report [REV ...]` writes reports/report.html and reports/report.md."""

from __future__ import annotations

import argparse
import sys

from .errors import GanpipeError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ganpipe", description="ganpipe tools")
    sub = ap.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="offline HTML + Markdown comparison of the workspace, revisions, experiments")
    rep.add_argument("revs", nargs="*", help="git revisions or experiment names; 'workspace' for the working tree "
                                             "(default: the workspace alone). The first is the baseline.")
    rep.add_argument("-o", "--output", default="reports/report.html", help="HTML file (Markdown beside it, .md)")
    args = ap.parse_args(argv)
    try:
        out = args.output
        md = out[:-5] + ".md" if out.endswith(".html") else out + ".md"
        from .report import write_report

        runs = write_report(args.revs, out, md)
        missing = [r.label for r in runs if not r.eval]
        print(f"report: {out} and {md} ({len(runs)} runs)")
        if missing:
            print(f"report: no metrics/eval.json for {', '.join(missing)} (not run, or not pulled)", file=sys.stderr)
    except GanpipeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
