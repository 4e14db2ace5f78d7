"""The readers behind every ``prepare.source`` (registered in ``ganpipe.sources``): IDX files, the
embedded Fashion-MNIST, image folders (listed here, decoded in ``prepare``'s worker processes) and NPZ.

- ``fashion-mnist``: the four IDX ``.gz`` files from Debian's ``dataset-fashion-mnist`` package
  (``/usr/share/datasets/fashion-mnist``) or, where that is absent, Keras' dataset cache. Each file's
  decompressed bytes are checked against the SHA-256 of the published files. (Debian recompresses the
  archives, so the published ``.gz`` MD5s do not apply to its copies; the decompressed content is the same.)
- ``idx:<dir>``: any MNIST-format IDX directory, gzipped or raw.
- ``images:<dir>``: PNG/JPEG files, one subfolder per class or flat (unlabelled).
- ``npz:<file>``: array ``x`` (N,H,W) or (N,H,W,C) uint8 and an optional integer ``y``.

Every error names the file and what is wrong. (Over 300 lines, one job: raw files to arrays; the four
formats share their error conventions and checks, and only ``prepare`` depends on them.) Only the stages that read raw data import this module
(``prepare``; ``ganpipe evaluate --samples``), so a change here makes ``dvc status`` list only them.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DataError
from .io import NpyRows, load_npz, npz_rows, sha256_file
from .splits import Split
from .transforms import to_channels


FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# SHA-256 of the decompressed files, equal for the publisher's archives (whose published MD5s are
# 8d4fb7e6..., 25c81989..., bef4ecab..., bb300cfd...) and for Debian's recompressed copies.
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_CLASSES = 100_000


@dataclass(frozen=True)
class ImageFiles:
    """Image files listed but not decoded yet: ``prepare`` decodes only the chosen ones, in worker
    processes, after the split and the caps are drawn (``ganpipe.prepare``)."""

    root: Path
    paths: tuple[Path, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, idx) -> "ImageFiles":
        return ImageFiles(self.root, tuple(self.paths[i] for i in np.asarray(idx)))


@dataclass
class RawData:
    source: str
    train: Split
    test: Split | None  # None: the source has no split of its own
    class_names: list[str] | None
    files: dict[str, str]  # file name -> SHA-256 of its (decompressed) content
    skipped: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# IDX


def _read_maybe_gzip(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except EOFError:
        raise DataError(f"{path}: truncated gzip file (ends before the end of its compressed stream)") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as e:
        raise DataError(f"{path}: corrupt gzip file ({e})") from None


def parse_idx(data: bytes, path: Path | str) -> np.ndarray:
    """Parse IDX bytes of unsigned bytes (magic 0x0000 08 NN) into an array."""
    if len(data) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08 or not 1 <= data[3] <= 4:
        raise DataError(
            f"{path}: wrong IDX magic number 0x{data[:4].hex()} (expected 0x000008NN: unsigned bytes, N=1..4 dimensions)"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = math.prod(dims)  # Python ints: no overflow for any header
    actual = len(data) - header
    if actual != expected:
        raise DataError(
            f"{path}: data size does not match the header: {actual} bytes after the header, "
            f"dimensions {'x'.join(map(str, dims))} need {expected}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """Read an IDX file (gzipped or raw); return the array and the SHA-256 of the raw IDX bytes."""
    path = Path(path)
    data = _read_maybe_gzip(path)
    return parse_idx(data, path), hashlib.sha256(data).hexdigest()


def _idx_images(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.ndim in (3, 4) and arr.shape[0] == 0:
        raise DataError(f"{path}: holds no images (the header says 0)")
    if arr.ndim in (3, 4) and 0 in arr.shape[1:3]:
        raise DataError(f"{path}: images of size {arr.shape[1]}x{arr.shape[2]}")
    if arr.ndim == 3:
        return arr[..., None]
    if arr.ndim == 4 and arr.shape[-1] in (1, 3, 4):
        return arr
    raise DataError(f"{path}: image IDX must have shape (N,H,W) or (N,H,W,C), got {arr.shape}")


def _idx_labels(arr: np.ndarray, path: Path, n: int, images: Path) -> np.ndarray:
    if arr.ndim != 1:
        raise DataError(f"{path}: label IDX must have one dimension, got shape {arr.shape}")
    if len(arr) != n:
        raise DataError(f"{path}: {len(arr)} labels but {images.name} has {n} images")
    return arr.astype(np.int64)


def _idx_split(images: Path, labels: Path | None, files: dict[str, str]) -> Split:
    x, digest = read_idx(images)
    files[images.name] = digest
    x = _idx_images(x, images)
    y = None
    if labels is not None:
        ly, digest = read_idx(labels)
        files[labels.name] = digest
        y = _idx_labels(ly, labels, len(x), images)
    return Split(x, y)


_IDX_NAME = re.compile(r"^(?P<prefix>.*?)[-_.]?(?P<kind>images|labels)[-_.]idx(?P<ndim>\d)[-_.]ubyte(\.gz)?$")


def load_idx_dir(directory: str | os.PathLike, source: str | None = None) -> RawData:
    """Load an MNIST-format IDX directory.

    Files are named ``<prefix>-images-idx3-ubyte[.gz]`` and ``<prefix>-labels-idx1-ubyte[.gz]``.
    Prefixes ``train`` and ``t10k``/``test`` give the split; a single prefix is split later.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: IDX directory not found")
    groups: dict[str, dict[str, Path]] = {}
    for f in sorted(directory.iterdir()):
        m = _IDX_NAME.match(f.name)
        if m and f.is_file():
            kinds = groups.setdefault(m["prefix"], {})
            if m["kind"] in kinds:
                raise DataError(f"{f}: duplicate {m['kind']} file for prefix {m['prefix']!r} (also {kinds[m['kind']].name})")
            kinds[m["kind"]] = f
    groups = {k: v for k, v in groups.items() if "images" in v}
    if not groups:
        raise DataError(f"{directory}: no IDX image file (*-images-idx3-ubyte[.gz]) in this folder")
    files: dict[str, str] = {}
    test_key = next((k for k in ("t10k", "test") if k in groups), None)
    if "train" in groups and test_key:
        train = _idx_split(groups["train"]["images"], groups["train"].get("labels"), files)
        test = _idx_split(groups[test_key]["images"], groups[test_key].get("labels"), files)
        if (train.y is None) != (test.y is None):
            raise DataError(f"{directory}: labels exist for only one of the train and test splits")
    elif len(groups) == 1:
        (g,) = groups.values()
        train, test = _idx_split(g["images"], g.get("labels"), files), None
    else:
        raise DataError(
            f"{directory}: several IDX image sets ({', '.join(sorted(groups))}); expected one, or 'train' with 't10k'/'test'"
        )
    if test is not None and train.x.shape[1:] != test.x.shape[1:]:
        raise DataError(f"{directory}: train images are {train.x.shape[1:]} but test images are {test.x.shape[1:]}")
    return RawData(source or f"idx:{directory}", train, test, None, files)


# --------------------------------------------------------------------------------------------
# Fashion-MNIST


def fashion_mnist_dirs() -> list[Path]:
    """Where Fashion-MNIST is looked for, in order: Debian's package, then Keras' dataset cache."""
    dirs = [DEBIAN_FASHION_MNIST_DIR]
    if os.environ.get("KERAS_HOME"):
        dirs.append(Path(os.environ["KERAS_HOME"]) / "datasets" / "fashion-mnist")
    dirs += [Path.home() / ".keras" / "datasets" / "fashion-mnist", Path("/tmp/.keras/datasets/fashion-mnist")]
    return dirs


def _fashion_file(directory: Path, name: str) -> Path | None:
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def find_fashion_mnist(dirs: Sequence[Path] | None = None) -> Path:
    dirs = fashion_mnist_dirs() if dirs is None else dirs
    for d in dirs:
        if all(_fashion_file(d, n) for n in FASHION_MNIST_FILES.values()):
            return d
    raise DataError(
        "fashion-mnist: the dataset was not found in "
        + ", ".join(str(d) for d in dirs)
        + ". On Debian/Ubuntu run (as root) 'apt-get install -y dataset-fashion-mnist'; elsewhere load it once "
        "with keras.datasets.fashion_mnist.load_data() on a machine with internet to fill Keras' cache."
    )


def load_fashion_mnist(directory: str | os.PathLike | None = None) -> RawData:
    """Load Fashion-MNIST, verifying each file against the published checksums."""
    directory = find_fashion_mnist() if directory is None else Path(directory)
    files: dict[str, str] = {}
    arrays = {}
    for key, name in FASHION_MNIST_FILES.items():
        path = _fashion_file(directory, name)
        if path is None:
            raise DataError(f"{directory / (name + '.gz')}: file not found")
        data = _read_maybe_gzip(path)
        digest = hashlib.sha256(data).hexdigest()
        if digest != FASHION_MNIST_SHA256[name]:
            raise DataError(
                f"{path}: checksum mismatch: content SHA-256 {digest[:16]}... differs from the published "
                f"Fashion-MNIST file's {FASHION_MNIST_SHA256[name][:16]}..."
            )
        files[name] = digest
        arrays[key] = parse_idx(data, path)
    train = Split(arrays["train_images"][..., None], arrays["train_labels"].astype(np.int64))
    test = Split(arrays["test_images"][..., None], arrays["test_labels"].astype(np.int64))
    return RawData("fashion-mnist", train, test, list(FASHION_MNIST_CLASSES), files)


# --------------------------------------------------------------------------------------------
# image folders


def _hidden(p: Path) -> bool:
    """Dot files and folders (macOS's AppleDouble ``._x.png`` among them) and the ``__MACOSX`` folder that
    unzipping a macOS archive leaves: never images or classes."""
    return p.name.startswith(".") or p.name == "__MACOSX"


def _is_image(p: Path) -> bool:
    return p.is_file() and not _hidden(p) and p.suffix.lower() in IMAGE_SUFFIXES


# Formats handed to Pillow: an allow-list, so that no other decoder (Ghostscript for PostScript, say)
# ever sees a user's file, whatever its name.
IMAGE_FORMATS = ("PNG", "JPEG")
MAX_PIXELS = 2**27  # 134M pixels (11,585 x 11,585): refused from the header, before decoding
GREY_MODES = ("1", "L", "LA", "La")  # 8-bit grey (16-bit "I;16*" and float "F" are handled first)


def read_image(path: Path, size: int | None = None) -> np.ndarray:
    """Decode one PNG/JPEG into an (H,W,C) uint8 array with C = 1 (grey) or 3 (RGB), EXIF orientation
    applied, 16-bit images rescaled to 8 bits. With ``size`` (the prepared size), large images are
    shrunk while decoding (JPEG's DCT scaling) and by box-filter reduction to at most 4x ``size`` on
    their short side before the anti-aliased resize (``resize_images``), which gives the same result
    within a grey level or two on average and takes a fraction of the time. Every decoding failure is
    a ``DataError`` naming the file (so ``on_bad_image: skip`` covers it)."""
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: empty file (0 bytes)")
        with Image.open(path, formats=IMAGE_FORMATS) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise DataError(f"{path}: {w}x{h} is {w * h:,} pixels, over the limit of {MAX_PIXELS:,}")
            if size is not None and im.format == "JPEG":
                im.draft(im.mode, (4 * size, 4 * size))  # decode at 1/2, 1/4 or 1/8 scale when large
            im = ImageOps.exif_transpose(im)
            arr = _to_uint8(im, size)
    except DataError:
        raise
    except UnidentifiedImageError:
        kind = _sniff(path)
        if kind in IMAGE_FORMATS:  # the signature of one, but Pillow cannot identify the rest
            raise DataError(f"{path}: unreadable image (damaged {kind}: its header is not one Pillow can read)") from None
        what = f"holds {kind} data" if kind else "is not an image that can be read"
        raise DataError(f"{path}: {what}, not PNG or JPEG (only those are read, whatever the file's name)") from None
    except Exception as e:  # noqa: BLE001 - Pillow raises many types (bombs, truncation, codecs): all one line
        raise DataError(f"{path}: unreadable image ({type(e).__name__}: {e})") from None
    return arr[..., None] if arr.ndim == 2 else arr


# What a file that is not PNG/JPEG is, from its first bytes: named in the error, so that a GIF or a
# macOS metadata file saved as `x.png` is recognised for what it is.
MAGIC = (
    (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"BM", "BMP"), (b"II*\0", "TIFF"), (b"MM\0*", "TIFF"),
    (b"\x00\x05\x16\x07", "AppleDouble (macOS metadata)"), (b"%!PS", "PostScript"), (b"%PDF", "PDF"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"\x89PNG", "PNG"), (b"\xff\xd8\xff", "JPEG"),
)


def _sniff(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:8] == b"ftyp":
        return "HEIF/AVIF"
    return next((kind for magic, kind in MAGIC if head.startswith(magic)), None)


def image_is_colour(path: Path) -> bool:
    """Whether an image file holds colour, from its header alone (a palette image: from its palette); an
    unreadable file counts as grey (decoding reports it)."""
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as im:
            if im.mode in ("P", "PA"):
                pal = np.asarray(im.getpalette() or [], np.int64).reshape(-1, 3)
                return bool(len(pal)) and not (np.all(pal[:, 0] == pal[:, 1]) and np.all(pal[:, 1] == pal[:, 2]))
            return not (im.mode in GREY_MODES or im.mode.startswith("I") or im.mode == "F")
    except Exception:  # noqa: BLE001 - decoding names the file
        return False


def _to_uint8(im, size: int | None) -> np.ndarray:
    if im.mode.startswith("I"):
        target = "I"  # 16-bit (or 32-bit) grey: rescaled below, never clipped
    elif im.mode == "F":
        target = "F"
    else:
        target = "L" if im.mode in GREY_MODES else "RGB"  # alpha is dropped
    im = im.convert(target)
    if size is not None:
        factor = min(im.size) // (4 * size)
        if factor >= 2:
            im = im.reduce(factor)  # box filter over factor x factor blocks
    if target in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        a = a / 257.0 if target == "I" else a  # PNG's only "I" images are 16-bit: 65535 -> 255
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return np.asarray(im, dtype=np.uint8)


def list_image_dir(directory: str | os.PathLike) -> RawData:
    """List PNG/JPEG images, one subfolder per class (labels from sorted names) or flat (unlabelled),
    without decoding them: ``train.x`` is an :class:`ImageFiles`. ``files`` is filled in by whoever
    decodes them (:func:`decode_files`), from the images actually used."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: image folder not found")
    entries = sorted(p for p in directory.iterdir() if not _hidden(p))
    subdirs = [p for p in entries if p.is_dir()]
    top_images = [p for p in entries if _is_image(p)]
    if subdirs and top_images:
        raise DataError(f"{directory}: mixes image files ({top_images[0].name}, ...) with class folders; use one layout")
    if subdirs:
        class_names = [d.name for d in subdirs]
        paths, labels = [], []
        for label, d in enumerate(subdirs):
            imgs = sorted(p for p in d.rglob("*") if _is_image(p) and not any(map(_hidden, p.relative_to(d).parents)))
            if not imgs:
                raise DataError(f"{d}: class folder has no PNG/JPEG images")
            paths += imgs
            labels += [label] * len(imgs)
    else:
        class_names = None
        paths, labels = top_images, None
        if not paths:
            raise DataError(f"{directory}: empty folder (no PNG/JPEG images and no class folders)")
    y = None if labels is None else np.asarray(labels, dtype=np.int64)
    return RawData(f"images:{directory}", Split(ImageFiles(directory, tuple(paths)), y), None, class_names, {})


@dataclass
class Decoded:
    """What :func:`decode_files` made of a list of files: the readable images (mixed sizes), the positions
    they came from, the unreadable files (relative names) and one ``name\\0sha256\\n`` line per image."""

    images: list[np.ndarray]
    kept: list[int]
    skipped: list[str]
    digest_lines: list[bytes]


def decode_files(files: ImageFiles, on_bad_image: str = "fail", size: int | None = None) -> Decoded:
    """Decode ``files`` in order (``read_image``); an unreadable one is an error, or with ``on_bad_image:
    skip`` listed in ``skipped``."""
    out = Decoded([], [], [], [])
    for i, path in enumerate(files.paths):
        try:
            out.images.append(read_image(path, size))
        except DataError:
            if on_bad_image != "skip":
                raise
            out.skipped.append(str(path.relative_to(files.root)))
            continue
        out.kept.append(i)
        out.digest_lines.append(os.fsencode(path.relative_to(files.root)) + f"\0{sha256_file(path)}\n".encode())
    return out


def load_image_dir(directory: str | os.PathLike, on_bad_image: str = "fail", size: int | None = None) -> RawData:
    """Load PNG/JPEG images into memory (a list of (H,W,C) arrays of their own sizes, grey lifted to RGB
    when the folder mixes both): for scoring a folder of samples. The ``prepare`` stage streams instead."""
    raw = list_image_dir(directory)
    d = decode_files(raw.train.x, on_bad_image, size)
    if not d.images:
        raise DataError(f"{directory}: every image was unreadable ({len(d.skipped)} skipped)")
    images = d.images
    if len({im.shape[-1] for im in images}) > 1:  # mixed grey and colour: lift grey to RGB
        images = [to_channels(im[None], 3)[0] for im in images]
    y = None if raw.train.y is None else raw.train.y[d.kept]
    files = {f"{Path(directory).name}/ ({len(images)} images)": hashlib.sha256(b"".join(d.digest_lines)).hexdigest()}
    return RawData(raw.source, Split(images, y), None, raw.class_names, files, d.skipped)


# --------------------------------------------------------------------------------------------
# NPZ


def load_npz_source(path: str | os.PathLike) -> RawData:
    path = Path(path)
    arrays = load_npz(path, skip=("x",))  # x is read a chunk at a time by prepare (npz_rows)
    try:
        x = npz_rows(path, "x")
    except KeyError:
        raise DataError(f"{path}: missing array 'x' (found: {', '.join(sorted(arrays)) or 'none'})") from None
    if x.dtype != np.uint8:
        raise DataError(f"{path}: array 'x' must have dtype uint8, got {x.dtype}")
    if x.ndim == 3:
        x = x.reshape_rows(*x.shape[1:], 1) if isinstance(x, NpyRows) else x[..., None]
    elif not (x.ndim == 4 and x.shape[-1] in (1, 3, 4)):
        raise DataError(f"{path}: array 'x' must have shape (N,H,W) or (N,H,W,C) with C in 1, 3, 4; got {x.shape}")
    if len(x) == 0:
        raise DataError(f"{path}: array 'x' holds no images")
    if 0 in x.shape[1:3]:
        raise DataError(f"{path}: array 'x' has empty images (shape {x.shape})")
    y = arrays.get("y")
    if y is not None:
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{path}: array 'y' must be 1-D integers, got shape {y.shape} dtype {y.dtype}")
        if len(y) != len(x):
            raise DataError(f"{path}: {len(y)} labels in 'y' but {len(x)} images in 'x'")
        if len(y) and y.min() < 0:
            raise DataError(f"{path}: array 'y' has negative labels")
        if len(y) and y.max() >= MAX_CLASSES:
            raise DataError(f"{path}: array 'y' has label {int(y.max())}; labels are class indices below {MAX_CLASSES:,}")
        y = y.astype(np.int64)
    return RawData(f"npz:{path}", Split(x, y), None, None, {path.name: sha256_file(path)})
