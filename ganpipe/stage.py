"""What every stage script shares: user errors become one line on stderr and exit status 1."""

from __future__ import annotations

import sys
from typing import Callable

from .errors import GanpipeError


def run_stage(main: Callable[[], None]) -> None:
    try:
        main()
    except GanpipeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
