"""The registry of data sources: what ``prepare.source`` accepts.

- ``fashion-mnist``: the embedded default (Debian's ``dataset-fashion-mnist`` package, else Keras' cache);
- ``idx:<dir>``: any MNIST-format IDX directory;
- ``images:<dir>``: PNG/JPEG files, one subfolder per class or flat (unlabelled);
- ``npz:<file>``: arrays ``x`` and an optional ``y``.

``ganpipe.params`` checks ``prepare.source`` against :data:`SOURCES`, and every stage reads its params, so
this module holds only the registry: its readers live in ``ganpipe.decoders``, which :func:`load_source`
imports by name when it runs (in ``prepare``, which also imports it directly, so ``dvc.yaml``'s dependency
test still sees it). A change to a decoder thus changes ``prepare``'s dependencies and no other stage's.
Adding a source: its reader in ``decoders.py``, an entry here, a test.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from .errors import DataError


@dataclass(frozen=True)
class Source:
    """One kind of ``prepare.source``: ``usage`` as the params file spells it, and ``load(decoders, arg)``
    (``decoders``: the ``ganpipe.decoders`` module; ``arg``: what follows ``kind:``, None for sources
    without one). Images are decoded later, by ``prepare`` (which applies ``on_bad_image`` and the size)."""

    usage: str
    load: Callable

    @property
    def takes_arg(self) -> bool:
        return ":" in self.usage


SOURCES: dict[str, Source] = {
    "fashion-mnist": Source("fashion-mnist", lambda d, arg: d.load_fashion_mnist()),
    "idx": Source("idx:<dir>", lambda d, arg: d.load_idx_dir(arg, f"idx:{arg}")),
    "images": Source("images:<dir>", lambda d, arg: d.list_image_dir(arg)),  # listed; prepare decodes them
    "npz": Source("npz:<file>", lambda d, arg: d.load_npz_source(arg)),
}
_USAGES = [repr(s.usage) for s in SOURCES.values()]
USAGE = ", ".join(_USAGES[:-1]) + " or " + _USAGES[-1]  # 'fashion-mnist', 'idx:<dir>', ... or 'npz:<file>'


def parse_source(source: str) -> tuple[Source, str | None] | None:
    """The registry entry and argument of a ``prepare.source`` value; None when it names no source."""
    kind, sep, arg = source.partition(":")
    entry = SOURCES.get(kind if sep else source)
    if entry is None or entry.takes_arg != bool(sep) or (sep and not arg.strip()):
        return None
    return entry, (arg if sep else None)


def load_source(source: str):
    """The ``decoders.RawData`` of a ``prepare.source`` value (image folders listed, not decoded yet)."""
    parsed = parse_source(source)
    if parsed is None:
        raise DataError(f"prepare.source: unknown source {source!r} (use {USAGE})")
    entry, arg = parsed
    return entry.load(importlib.import_module("ganpipe.decoders"), arg)
