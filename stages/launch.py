"""Run a stage script with Keras' backend chosen and TensorFlow's C++ start-up chatter filtered out of stderr
(stages/python.sh runs this).

``TF_CPP_MIN_LOG_LEVEL`` hides TensorFlow's info and warning logs only after absl's logging starts; the
lines logged before that (the absl banner, CUDA stub probes on machines without a GPU, the CPU-feature
note, a tf.data attribute notice) reach stderr whatever it says. Here the process's fd 2 goes through a
pipe whose reader drops exactly those lines and passes everything else on at once (partial lines too, so
progress bars still move). ``TF_CPP_MIN_LOG_LEVEL=0`` turns the filter off.
"""

from __future__ import annotations

import atexit
import os
import re
import runpy
import sys
import threading

CHATTER = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "  # absl info/warning lines
    rb"|E\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] (failed call to cuInit|NodeDef mentions attribute use_unbounded|remapper failed: )"
    rb"|To enable the following instructions: .* rebuild TensorFlow)"
)


MAX_HELD = 1 << 16  # bytes of a partial line held back to judge it


def _pump(read_fd: int, out_fd: int) -> None:
    pending = b""
    while chunk := os.read(read_fd, 65536):
        pending += chunk
        # whole lines are judged; a partial line (a progress bar's \r update) is passed on at once
        *lines, pending = re.split(rb"(?<=\n)", pending)
        for line in lines:
            if not CHATTER.match(line):
                os.write(out_fd, line)
        # a partial line goes on at once unless it may be chatter still arriving; a long one (chatter lines
        # are short) goes on whole, so a huge line without newlines costs linear time, not quadratic
        if pending and not CHATTER.match(pending) and (b"\r" in pending or not pending[:1].isalnum()
                                                       or len(pending) > MAX_HELD):
            os.write(out_fd, pending)
            pending = b""
    if pending and not CHATTER.match(pending):
        os.write(out_fd, pending)


def filter_stderr() -> None:
    original = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    reader = threading.Thread(target=_pump, args=(read_fd, original), daemon=True)
    reader.start()

    def drain() -> None:
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last write end: the reader sees EOF
        reader.join(timeout=5)

    atexit.register(drain)
    try:  # a stage that ends with os._exit (ganpipe.stage, on a full disk) skips atexit: it drains first
        from ganpipe import stage

        stage.BEFORE_EXIT.append(drain)
    except ImportError:
        pass


def choose_backend() -> None:
    """Keras' backend before the stage imports Keras: ``KERAS_BACKEND`` or ``auto``'s choice (the train stage
    then applies ``train.backend``); on JAX, TensorFlow is made unimportable (``ganpipe.backend``)."""
    try:
        from ganpipe import backend
        from ganpipe.errors import GanpipeError, one_line
    except ImportError:  # a script outside the project (the tests' probes)
        return
    try:
        backend.use(backend.default(), deterministic=True, key="KERAS_BACKEND")
    except GanpipeError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(1)


def main() -> None:
    script = sys.argv[1]
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2") != "0":
        filter_stderr()
    choose_backend()
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
