"""What every stage script shares: user errors become one line on stderr and exit status 1."""

from __future__ import annotations

import errno
import os
import signal
import sys
from typing import Callable

from .errors import GanpipeError, one_line

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow start-up chatter out of stage logs


WRITE_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT, errno.EPERM}
BEFORE_EXIT: list[Callable[[], None]] = []  # run before os._exit (stages/launch.py drains its stderr filter)


class Terminated(BaseException):
    """SIGTERM (``kill``, a queue being stopped, a CI timeout) as an exception, so that what a stage was
    writing is removed and its worker processes are ended, as on Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def _end_progress_bars() -> None:
    """Close any progress bar still drawn, so that the message after it starts a line of its own."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        if not bar.disable:  # (tqdm's close() skips the newline of a bar drawn only by refresh())
            bar.disable = True
            bar.fp.write("\n")
            bar.fp.flush()


def run_stage(main: Callable[[], None]) -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        main()
    except Terminated:
        _end_progress_bars()
        print("terminated (SIGTERM); previous outputs are unchanged", file=sys.stderr)
        sys.exit(143)
    except GanpipeError as e:
        _end_progress_bars()
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        if e.errno not in WRITE_ERRORS:
            raise
        # A full disk or a read-only output folder: one line. Atomic writes left the previous outputs.
        where = os.fsdecode(e.filename) if e.filename else "an output file"
        print(one_line(f"error: cannot write {where}: {e.strerror} (previous outputs are unchanged)"), file=sys.stderr)
        sys.stderr.flush()
        for hook in BEFORE_EXIT:
            hook()
        os._exit(1)  # skip interpreter shutdown, where TensorFlow's exit hooks print noise after such errors
    except KeyboardInterrupt:
        _end_progress_bars()
        print("interrupted", file=sys.stderr)
        sys.exit(130)
