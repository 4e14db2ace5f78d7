"""Byte-deterministic, atomic saving and safe-mode loading of Keras models.

``model.save`` writes a zip whose entries carry the save time, ``metadata.json`` records it too, and
``config.json`` holds ``shared_object_id`` values that are Python object ids, so equal weights would give
different bytes. We save to a temporary file, rewrite the archive with fixed entry times, without
``date_saved`` and with shared-object ids renumbered in order of appearance, then move it into place.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import keras

from .errors import DataError
from .io import atomic_path, normalize_zip


def _renumber_shared_ids(obj, ids: dict):
    """Replace ``shared_object_id`` values (Python ``id()``s, different each run) by 0, 1, 2, ..."""
    if isinstance(obj, dict):
        return {k: (ids.setdefault(v, len(ids)) if k == "shared_object_id" else _renumber_shared_ids(v, ids))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_renumber_shared_ids(v, ids) for v in obj]
    return obj


def _make_deterministic(name: str, data: bytes) -> bytes:
    if name == "metadata.json":
        meta = json.loads(data)
        meta.pop("date_saved", None)  # the save time
        return json.dumps(meta, sort_keys=True).encode()
    if name == "config.json":
        return json.dumps(_renumber_shared_ids(json.loads(data), {})).encode()
    return data


def save_model(model: keras.Model, path: str | os.PathLike) -> None:
    path = Path(path)
    # Keras' own save goes to the system's temporary folder: nothing but the final file (written
    # atomically) ever appears among the outputs, even after a SIGKILL or on a read-only output folder.
    with tempfile.TemporaryDirectory(prefix="ganpipe-save-") as tmp:
        raw = Path(tmp) / path.name
        model.save(raw)
        with atomic_path(path) as out:
            normalize_zip(raw, out, rewrite=_make_deterministic)


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a ``.keras`` model in safe mode (no arbitrary code); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: model file not found")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # keras raises many types for a broken archive
        raise DataError(f"{path}: cannot load model ({type(e).__name__}: {str(e).splitlines()[0]})") from None
