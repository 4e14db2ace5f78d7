"""Exceptions whose message is meant for the user: one line that names the file or key."""

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(message: object) -> str:
    """``message`` as one printable line: control characters (a newline in a file name, say) are written
    as escapes (``\\n``, ``\\x1b``), so an error is always exactly one line on stderr."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(message))


class GanpipeError(Exception):
    """Base class; stages print ``error: <message>`` and exit 1 on it."""


class ParamsError(GanpipeError, ValueError):
    """A params.yaml key is unknown, missing, of the wrong type or out of range."""


class DataError(GanpipeError, ValueError):
    """An input file or folder is unreadable, corrupt or inconsistent."""
