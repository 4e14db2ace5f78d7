"""The evaluate stage's results in two git-tracked files.

``metrics/eval.json`` holds the headline numbers, one per metric (DVC's metric columns in ``dvc exp show``
and ``dvc metrics diff``); ``metrics/eval_details.json`` (an output, not a metric) holds their intervals,
the subsets' spread, the reference points, per-class figures and the protocol. :func:`merge` puts them
back together (``ganpipe report`` and the tests read results through it; revisions from before the
split have everything in ``eval.json``, which merges to the same thing).
"""

from __future__ import annotations

import json
from pathlib import Path

EVAL = "metrics/eval.json"
DETAILS = "metrics/eval_details.json"
# numbers that qualify a headline number rather than being one
_QUALIFIERS = ("_ci95_lo", "_ci95_hi", "_std", "_max", "_samples")


def is_headline(key: str, value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and not key.endswith(_QUALIFIERS)
            and not key.startswith("ssim_pairwise_real"))  # the real set's diversity: a reference point


def split(result: dict) -> tuple[dict, dict]:
    """(headline, details) of the evaluate stage's result. Timing (img/s) stays in ``metrics/train.json``:
    the evaluate stage's outputs are the same bytes on every rerun, and a timing would break that."""
    headline = {k: v for k, v in result.items() if is_headline(k, v)}  # in the result's (the registry's) order
    return headline, {k: v for k, v in result.items() if k not in headline}


def merge(headline: bytes | str | None, details: bytes | str | None) -> dict:
    """The whole result from the two files' contents (either may be None: absent)."""
    out = json.loads(details) if details is not None else {}
    return out | (json.loads(headline) if headline is not None else {})


def reader(rev: str | None, repo: str = "."):
    """A function reading a file's bytes at git revision or experiment ``rev`` of ``repo`` through
    ``dvc.api`` (so DVC-tracked files come from the cache or the remote), or from the working tree when
    ``rev`` is None; None where the file is absent (or not pulled)."""
    if rev is None:
        def read(path: str) -> bytes | None:
            p = Path(repo) / path
            return p.read_bytes() if p.is_file() else None
        return read

    import dvc.api

    def read(path: str) -> bytes | None:
        try:
            return dvc.api.read(path, repo=repo, rev=rev, mode="rb")
        except Exception:  # noqa: BLE001 - absent at that revision, or not pulled: shown as missing
            return None
    return read
