"""What every stage script shares: user errors become one line on stderr and exit status 1."""

from __future__ import annotations

import os
import sys
from typing import Callable

from .errors import GanpipeError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow start-up chatter out of stage logs


def run_stage(main: Callable[[], None]) -> None:
    try:
        main()
    except GanpipeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
