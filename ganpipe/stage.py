"""What every stage script shares: user errors become one line on stderr and exit status 1."""

from __future__ import annotations

import errno
import os
import sys
from typing import Callable

from .errors import GanpipeError, one_line

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow start-up chatter out of stage logs


WRITE_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT, errno.EPERM}
BEFORE_EXIT: list[Callable[[], None]] = []  # run before os._exit (stages/launch.py drains its stderr filter)


def run_stage(main: Callable[[], None]) -> None:
    try:
        main()
    except GanpipeError as e:
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
        print("interrupted", file=sys.stderr)
        sys.exit(130)
