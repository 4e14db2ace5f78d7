"""Per-stage wall time and peak resident memory (RSS) of the pipeline, and the time of a no-op
`dvc repro`, in this repo with its params.yaml (the default profile unless you changed it).

Runs `dvc repro --force --single-item STAGE` for each stage in order (train starts from scratch: its
checkpoint is removed first), timing each and reading its peak RSS from os.wait4: the largest resident
set of the process tree (dvc itself or the stage command it runs). Then `dvc repro` with nothing
changed, --noop times, reporting the median. The run leaves dvc.lock and every output as
`dvc repro` would (commit them).

    .venv/bin/python bench/stages.py [--stages prepare,features,train,generate,evaluate] [--noop 5] [--noop-only]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DVC = str(Path(sys.executable).with_name("dvc"))


def run(args: list[str], quiet: bool = True) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of a command and everything it waited for."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL if quiet else None,
                            stderr=subprocess.DEVNULL if quiet else None)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed with exit code {proc.returncode}")
    return seconds, usage.ru_maxrss / 1024  # Linux reports KiB


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stages", default="prepare,features,train,generate,evaluate")
    ap.add_argument("--noop", type=int, default=5)
    ap.add_argument("--noop-only", action="store_true")
    args = ap.parse_args()
    print(f"{os.cpu_count()} CPUs; dvc {subprocess.run([DVC, '--version'], capture_output=True, text=True).stdout.strip()}")
    if not args.noop_only:
        print(f"{'stage':10} {'seconds':>9} {'peak RSS MiB':>13}")
        for stage in args.stages.split(","):
            if stage == "train":
                shutil.rmtree(REPO / "checkpoints", ignore_errors=True)
            seconds, rss = run([DVC, "repro", "--force", "--single-item", stage])
            print(f"{stage:10} {seconds:9.1f} {rss:13.0f}", flush=True)
    run([DVC, "repro"])  # settle anything left changed
    times = [run([DVC, "repro"])[0] for _ in range(args.noop)]
    status = subprocess.run([DVC, "status"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    print(f"no-op dvc repro: median {statistics.median(times):.2f} s over {args.noop} runs "
          f"(min {min(times):.2f}, max {max(times):.2f}); dvc status: {status or 'clean'}")


if __name__ == "__main__":
    main()
