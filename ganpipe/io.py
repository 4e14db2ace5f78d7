"""Atomic, byte-deterministic writers for the files stages hand to each other.

Every output is written to a temporary file in the destination folder and then moved into place
with ``os.replace``, so an interrupted or failed stage never leaves a partial file behind.
Archives (``.npz``) are written with fixed zip timestamps so that equal arrays give equal bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from .errors import DataError

# The earliest date a zip entry can carry; used for every entry so that archives are reproducible.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``, else delete it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # read-only or full file system: name the output
        raise OSError(e.errno, e.strerror, str(path)) from e
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(e, OSError) and e.errno is not None and not e.filename:
            raise OSError(e.errno, e.strerror, str(path)) from e  # name the output, not a temporary file
        raise


@contextlib.contextmanager
def fresh_dir(path: str | os.PathLike) -> Iterator[Path]:
    """``path`` emptied (as DVC removes a stage's outputs before it runs the stage) and yielded to be written
    in place, so that readers (DVC's VS Code extension, Studio) see it grow; deleted when the body fails, so
    a failed run leaves no partial folder for git to pick up."""
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    try:
        yield path
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` (a previous folder there is
    moved aside, then deleted), else it is deleted. Errors name ``path``, not the temporary folder."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from e
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", suffix=".tmp", dir=path.parent))
            os.replace(path, old / path.name)
        try:
            os.replace(tmp, path)
        except OSError:
            if old is not None:
                os.replace(old / path.name, path)  # put the previous folder back
            raise
        if old is not None:
            shutil.rmtree(old)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno is not None:
            name = str(path) if not e.filename else str(e.filename).replace(str(tmp), str(path))
            raise OSError(e.errno, e.strerror, name) from e
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | os.PathLike, obj, sort_keys: bool = True) -> None:
    """Write ``obj`` as indented JSON, key-sorted unless ``sort_keys=False`` keeps a deliberate order
    (stable bytes for equal content either way)."""
    text = json.dumps(obj, indent=2, sort_keys=sort_keys, allow_nan=False) + "\n"
    write_bytes(path, text.encode())


def _write_npz(f, arrays: Mapping[str, np.ndarray]) -> None:
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name in sorted(arrays):
            arr = np.asarray(arrays[name])
            if arr.dtype == object:
                raise TypeError(f"array {name!r} has dtype object, which would need pickle")
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as out:
                np.lib.format.write_array(out, arr, allow_pickle=False)  # keeps 0-d shapes


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Write ``arrays`` as a deterministic ``.npz``, streamed to a temporary file, then moved into place."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        _write_npz(f, arrays)


def load_npz(path: str | os.PathLike, skip: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file but those named in ``skip`` (never unpickling); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files if k not in skip}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz archive ({e})") from None


def read_npy_header(f) -> tuple[tuple, bool, np.dtype, int]:
    """Shape, Fortran order, dtype and data offset of the ``.npy`` array starting at ``f``'s position
    (never unpickling). Raises ValueError for anything that is not a ``.npy`` header."""
    version = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(f)
    return shape, fortran, dtype, f.tell()


class NpyRows:
    """Rows of an array stored in a file at ``offset`` (C order), read with ``os.pread`` when indexed: no
    copy of the array in memory and no mapping that would keep its pages resident. ``rows`` selects and
    orders a subset lazily (``x[idx]`` with an index array gives another ``NpyRows``); a slice reads."""

    def __init__(self, path: Path, dtype: np.dtype, shape: tuple, offset: int, rows: np.ndarray | None = None):
        self.path, self.dtype, self.offset = Path(path), np.dtype(dtype), offset
        self.full_shape = tuple(shape)
        self.rows = np.arange(shape[0]) if rows is None else rows
        self.shape = (len(self.rows), *shape[1:])
        self.ndim = len(shape)

    def __len__(self) -> int:
        return len(self.rows)

    def reshape_rows(self, *row_shape: int) -> "NpyRows":
        assert np.prod(row_shape) == np.prod(self.full_shape[1:])
        return NpyRows(self.path, self.dtype, (self.full_shape[0], *row_shape), self.offset, self.rows)

    def __getitem__(self, idx):
        if not isinstance(idx, slice):
            return NpyRows(self.path, self.dtype, self.full_shape, self.offset, self.rows[np.asarray(idx)])
        rows = self.rows[idx]
        row_bytes = self.dtype.itemsize * int(np.prod(self.full_shape[1:]))
        out = np.empty((len(rows), row_bytes), np.uint8)
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1  # runs of consecutive rows: one read each
        with open(self.path, "rb") as f:
            for a, b in zip([0, *breaks], [*breaks, len(rows)]):
                if b > a:
                    n = (b - a) * row_bytes
                    data = os.pread(f.fileno(), n, self.offset + int(rows[a]) * row_bytes)
                    if len(data) != n:
                        raise DataError(f"{self.path}: truncated (a read of rows {rows[a]}..{rows[b - 1]} came short)")
                    out[a:b] = np.frombuffer(data, np.uint8).reshape(b - a, row_bytes)
        return out.view(self.dtype).reshape(len(rows), *self.full_shape[1:])


def npz_rows(path: str | os.PathLike, name: str) -> np.ndarray | NpyRows:
    """Array ``name`` of an ``.npz``: an :class:`NpyRows` over the file when the member is stored
    uncompressed (``np.savez``, :func:`save_npz`), so that an array larger than memory can be streamed; a
    compressed member (``np.savez_compressed``) is read whole."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(f"{name}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            return load_npz(path)[name]
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)
            if local[:4] != b"PK\x03\x04":
                raise ValueError("bad local file header")
            name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
            f.seek(info.header_offset + 30 + name_len + extra_len)
            shape, fortran, dtype, offset = read_npy_header(f)
    except KeyError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz archive ({e})") from None
    if dtype.hasobject:
        raise DataError(f"{path}: array {name!r} holds Python objects (would need pickle)")
    if fortran or not shape:
        return load_npz(path)[name]
    if offset + dtype.itemsize * int(np.prod(shape)) > path.stat().st_size:
        raise DataError(f"{path}: array {name!r} is truncated")
    return NpyRows(path, dtype, shape, offset)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def normalize_zip(src: str | os.PathLike, dst: str | os.PathLike, rewrite=None) -> None:
    """Copy a zip archive with fixed entry timestamps and sorted entries.

    ``rewrite(name, data) -> data`` may change an entry's content (for example to drop a save
    time recorded inside it).
    """
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", allowZip64=True) as zout:
        for name in sorted(zin.namelist()):
            data = zin.read(name)
            if rewrite is not None:
                data = rewrite(name, data)
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zin.getinfo(name).compress_type
            info.external_attr = 0o644 << 16
            zout.writestr(info, data)
