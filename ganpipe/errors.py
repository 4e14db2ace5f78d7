"""Exceptions whose message is meant for the user: one line that names the file or key."""


class GanpipeError(Exception):
    """Base class; stages print ``error: <message>`` and exit 1 on it."""


class ParamsError(GanpipeError, ValueError):
    """A params.yaml key is unknown, missing, of the wrong type or out of range."""


class DataError(GanpipeError, ValueError):
    """An input file or folder is unreadable, corrupt or inconsistent."""
