"""The prepare stage: every source, every bad input, checksums and determinism, on real Fashion-MNIST."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from ganpipe import decoders as S
from ganpipe import transforms as T
import tempfile
from types import SimpleNamespace

from ganpipe.prepare import prepare
from ganpipe.splits import load_split
from ganpipe import params
from ganpipe.errors import DataError
from ganpipe.io import save_npz
from tests.conftest import default_params, write_idx, write_png


def prep_params(**overrides):
    return params.from_dict(params.Prepare, default_params()["prepare"] | overrides)


def prep(cfg, seed: int, **kw) -> SimpleNamespace:
    """Run ``prepare`` into a fresh folder; the two splits read back, their class names and the metrics."""
    root = Path(tempfile.mkdtemp(prefix="prep-"))
    m = prepare(cfg, seed, root / "prepared", root / "data.json", **kw)
    train, test = load_split(root / "prepared/train"), load_split(root / "prepared/test")
    return SimpleNamespace(train=train, test=test, class_names=train.class_names, metrics=m, root=root)


def outputs(root: Path) -> list[Path]:
    """The prepare stage's output files under ``root``, sorted (shards, labels, indexes, metrics)."""
    found = sorted(p for p in (root / "data/prepared").rglob("*") if p.is_file()) if (root / "data/prepared").exists() else []
    return found + [p for p in (root / "metrics/data.json",) if p.exists()]


def no_leftovers(root: Path) -> bool:
    """No output and no temporary file anywhere under root's output folders."""
    for d in (root / "data" / "prepared", root / "metrics"):
        if d.exists() and any(d.iterdir()):
            return False
    return True


# ----------------------------------------------------------------------------- sources


def test_fashion_mnist_default_source_through_the_stage(tmp_path, run_prepare):
    code, err = run_prepare(max_train=600, max_test=200)
    assert code == 0, err
    train, test = load_split(tmp_path / "data/prepared/train"), load_split(tmp_path / "data/prepared/test")
    assert train.x.shape == (600, 28, 28, 1) and train.x.dtype == np.uint8
    assert test.x.shape == (200, 28, 28, 1)
    assert train.class_names[0] == "T-shirt/top"
    m = json.loads((tmp_path / "metrics/data.json").read_text())
    assert m["source"] == "fashion-mnist"
    assert m["files_sha256"] == S.FASHION_MNIST_SHA256
    # stratified caps: 60 of each of the 10 balanced classes
    assert set(m["train"]["per_class"].values()) == {60}
    assert m["test"]["count"] == 200 and 0.2 < m["train"]["pixel_mean"] < 0.4


def test_full_fashion_mnist_has_published_sizes(fashion_dir):
    raw = S.load_fashion_mnist(fashion_dir)
    assert raw.train.x.shape == (60000, 28, 28, 1) and raw.test.x.shape == (10000, 28, 28, 1)
    assert np.bincount(raw.train.y).tolist() == [6000] * 10
    assert np.bincount(raw.test.y).tolist() == [1000] * 10


def test_keras_cache_is_the_fallback(tmp_path, fashion_dir):
    cache = tmp_path / "keras" / "datasets" / "fashion-mnist"
    cache.mkdir(parents=True)
    for f in fashion_dir.iterdir():
        os.symlink(f, cache / f.name)
    assert S.find_fashion_mnist([tmp_path / "absent", cache]) == cache
    with pytest.raises(DataError, match="apt-get install -y dataset-fashion-mnist"):
        S.find_fashion_mnist([tmp_path / "absent"])


def test_checksum_mismatch_names_the_file(tmp_path, fashion_dir):
    d = tmp_path / "fm"
    d.mkdir()
    for f in fashion_dir.iterdir():
        os.symlink(f, d / f.name)
    labels = d / "train-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10  # one label changed: still a valid IDX file
    labels.unlink()
    labels.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: checksum mismatch"):
        S.load_fashion_mnist(d)


def test_fashion_checksums_hold_for_the_installed_files(fashion_dir):
    for name, digest in S.FASHION_MNIST_SHA256.items():
        raw = gzip.decompress((fashion_dir / f"{name}.gz").read_bytes())
        assert hashlib.sha256(raw).hexdigest() == digest


@pytest.mark.parametrize("gz", [True, False])
def test_idx_dir_with_split(tmp_path, fashion_slice, gz):
    x, y = fashion_slice
    d = tmp_path / "idx"
    d.mkdir()
    sfx = ".gz" if gz else ""
    write_idx(d / f"train-images-idx3-ubyte{sfx}", x[:300], gz)
    write_idx(d / f"train-labels-idx1-ubyte{sfx}", y[:300], gz)
    write_idx(d / f"t10k-images-idx3-ubyte{sfx}", x[300:400], gz)
    write_idx(d / f"t10k-labels-idx1-ubyte{sfx}", y[300:400], gz)
    out = prep(prep_params(source=f"idx:{d}"), seed=1)
    np.testing.assert_array_equal(out.train.x[..., 0], x[:300])
    np.testing.assert_array_equal(out.test.y, y[300:400])
    assert out.class_names == [str(i) for i in range(10)]


def test_idx_dir_single_set_is_split_stratified(tmp_path, fashion_slice):
    x, y = fashion_slice
    d = tmp_path / "idx"
    d.mkdir()
    write_idx(d / "images-idx3-ubyte", x[:1000], gz=False)
    write_idx(d / "labels-idx1-ubyte.gz", y[:1000])
    out = prep(prep_params(source=f"idx:{d}", test_fraction=0.25), seed=3)
    assert len(out.train) == 750 and len(out.test) == 250
    full = np.bincount(y[:1000], minlength=10) / 1000
    assert np.abs(np.bincount(out.test.y, minlength=10) / 250 - full).max() < 0.01


def test_image_folder_with_classes(class_folder):
    out = prep(prep_params(source=f"images:{class_folder}", test_fraction=0.25, image_size=32, channels=3), seed=0)
    assert out.class_names == ["bag", "sneaker", "trouser"]
    assert out.train.x.shape == (27, 32, 32, 3) and out.test.x.shape == (9, 32, 32, 3)
    assert np.bincount(out.test.y).tolist() == [3, 3, 3]
    # grey lifted to RGB: the three channels are equal
    assert (out.train.x[..., 0] == out.train.x[..., 2]).all()


def test_flat_image_folder_mixed_sizes_is_unlabelled(tmp_path, fashion_slice):
    x, _ = fashion_slice
    d = tmp_path / "flat"
    for i in range(10):
        size = 28 if i % 2 else 56
        im = np.kron(x[i], np.ones((2, 2), np.uint8)) if size == 56 else x[i]
        write_png(d / f"{i}.png", np.stack([im] * 3, -1))  # RGB input
    out = prep(prep_params(source=f"images:{d}", test_fraction=0.2, image_size=28, channels=1), seed=0)
    assert out.train.y is None and out.class_names is None
    assert out.train.x.shape == (8, 28, 28, 1) and out.test.x.shape == (2, 28, 28, 1)
    # each output is one of the inputs (grey from RGB is exact here); the 2x upscaled ones come back
    # within a few grey levels after anti-aliased downscaling
    for im in np.concatenate([out.train.x, out.test.x])[..., 0].astype(int):
        assert min(np.abs(im - x[i].astype(int)).mean() for i in range(10)) < 8


def test_npz_source_and_class_subset(tmp_path, fashion_slice):
    x, y = fashion_slice
    f = tmp_path / "data.npz"
    save_npz(f, x=x[:500], y=y[:500])
    out = prep(prep_params(source=f"npz:{f}", classes=[7, 1]), seed=0)
    assert out.class_names == ["7", "1"]
    assert set(np.unique(out.train.y)) == {0, 1}
    # label 0 is the old 7, label 1 the old 1
    assert len(out.train) + len(out.test) == int(((y[:500] == 7) | (y[:500] == 1)).sum())


def test_resize_is_antialiased_and_three_channel_to_grey_uses_luma():
    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)[None, ..., None]
    small = T.resize_images(checker, 16)
    assert abs(float(small.mean()) - 127.5) < 2 and small.std() < 5  # aliasing would keep 0/255 stripes
    rgb = np.zeros((1, 2, 2, 3), np.uint8)
    rgb[..., 1] = 200
    assert T.to_channels(rgb, 1)[0, 0, 0, 0] == round(200 * 0.587)


def test_skip_bad_images_counts_them(tmp_path, run_prepare, class_folder):
    (class_folder / "bag" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (class_folder / "bag" / "empty.jpg").write_bytes(b"")
    code, err = run_prepare(source=f"images:{class_folder}", on_bad_image="skip")
    assert code == 0, err
    m = json.loads((tmp_path / "metrics/data.json").read_text())
    assert m["skipped_images"] == 2
    assert sorted(m["skipped_files"]) == ["bag/broken.png", "bag/empty.jpg"]
    assert m["train"]["count"] + m["test"]["count"] == 36


# ----------------------------------------------------------------------------- bad input


def _idx_dir(tmp_path, fashion_slice) -> Path:
    x, y = fashion_slice
    d = tmp_path / "idx"
    d.mkdir(exist_ok=True)
    write_idx(d / "train-images-idx3-ubyte.gz", x[:100])
    write_idx(d / "train-labels-idx1-ubyte.gz", y[:100])
    return d


def _truncate_gzip(d):
    f = d / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-500])
    return f"idx:{d}", "train-images-idx3-ubyte.gz: truncated gzip file"


def _corrupt_gzip(d):
    f = d / "train-images-idx3-ubyte.gz"
    b = bytearray(f.read_bytes())
    b[20:40] = b"\xff" * 20
    f.write_bytes(bytes(b))
    return f"idx:{d}", "train-images-idx3-ubyte.gz: corrupt gzip file"


def _wrong_magic(d):
    f = d / "train-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(f.read_bytes()))
    raw[2] = 0x0D  # float32 instead of unsigned bytes
    f.write_bytes(gzip.compress(bytes(raw)))
    return f"idx:{d}", "train-images-idx3-ubyte.gz: wrong IDX magic number 0x00000d03"


def _size_mismatch(d):
    f = d / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(f.read_bytes())
    f.write_bytes(gzip.compress(raw[:-28]))
    return f"idx:{d}", "train-images-idx3-ubyte.gz: data size does not match the header"


def _count_mismatch(d):
    f = d / "train-labels-idx1-ubyte.gz"
    write_idx(f, np.zeros(99, np.uint8))
    return f"idx:{d}", "train-labels-idx1-ubyte.gz: 99 labels but train-images-idx3-ubyte.gz has 100 images"


def _ok_images(folder: Path, n: int = 9) -> None:
    """Readable images beside the bad one: enough for a held-out split, so decoding is reached."""
    for i in range(n):
        write_png(folder / f"ok{i}.png", np.full((8, 8), 10 * i, np.uint8))


def _unreadable_image(d):
    root = d.parent / "imgs"
    _ok_images(root / "a")
    (root / "a" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    return f"images:{root}", "bad.png: unreadable image"


def _zero_byte_image(d):
    root = d.parent / "imgs"
    _ok_images(root)
    (root / "zero.jpg").write_bytes(b"")
    return f"images:{root}", "zero.jpg: empty file (0 bytes)"


def _empty_folder(d):
    root = d.parent / "empty"
    root.mkdir()
    return f"images:{root}", "empty: empty folder"


def _empty_class_folder(d):
    root = d.parent / "imgs"
    write_png(root / "a" / "ok.png", np.zeros((8, 8), np.uint8))
    (root / "b").mkdir()
    (root / "b" / "notes.txt").write_text("no images here")
    return f"images:{root}", "imgs/b: class folder has no PNG/JPEG images"


def _npz_missing_key(d):
    f = d.parent / "bad.npz"
    save_npz(f, images=np.zeros((4, 8, 8), np.uint8))
    return f"npz:{f}", "bad.npz: missing array 'x'"


def _npz_wrong_dtype(d):
    f = d.parent / "bad.npz"
    save_npz(f, x=np.zeros((4, 8, 8), np.float32))
    return f"npz:{f}", "bad.npz: array 'x' must have dtype uint8, got float32"


def _npz_wrong_shape(d):
    f = d.parent / "bad.npz"
    save_npz(f, x=np.zeros((4, 8), np.uint8))
    return f"npz:{f}", "bad.npz: array 'x' must have shape"


def _npz_label_mismatch(d):
    f = d.parent / "bad.npz"
    save_npz(f, x=np.zeros((4, 8, 8), np.uint8), y=np.zeros(3, np.int64))
    return f"npz:{f}", "bad.npz: 3 labels in 'y' but 4 images in 'x'"


def _npz_not_a_zip(d):
    f = d.parent / "bad.npz"
    f.write_bytes(b"PK\x03\x04 truncated")
    return f"npz:{f}", "bad.npz: not a readable .npz archive"


def _unknown_source(d):
    return "s3:bucket/x", "prepare.source: must be 'fashion-mnist', 'idx:<dir>', 'images:<dir>' or 'npz:<file>'"


def _missing_dir(d):
    return f"idx:{d.parent / 'nowhere'}", "nowhere: IDX directory not found"


def _postscript_named_png(d):
    root = d.parent / "imgs"
    _ok_images(root)
    (root / "evil.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n")
    return f"images:{root}", "evil.png: holds PostScript data, not PNG or JPEG"


def _npz_huge_label(d):
    f = d.parent / "bad.npz"
    save_npz(f, x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, 2, 3_000_000_000], np.int64))
    return f"npz:{f}", "bad.npz: array 'y' has label 3000000000; labels are class indices below 100,000"


def _npz_empty_images(d):
    f = d.parent / "bad.npz"
    save_npz(f, x=np.zeros((4, 0, 0), np.uint8))
    return f"npz:{f}", "bad.npz: array 'x' has empty images"


def _idx_zero_images(d):
    write_idx(d / "train-images-idx3-ubyte.gz", np.zeros((0, 28, 28), np.uint8))
    write_idx(d / "train-labels-idx1-ubyte.gz", np.zeros(0, np.uint8))
    return f"idx:{d}", "train-images-idx3-ubyte.gz: holds no images"


def _idx_empty_test_split(d):
    write_idx(d / "t10k-images-idx3-ubyte.gz", np.zeros((0, 28, 28), np.uint8))
    write_idx(d / "t10k-labels-idx1-ubyte.gz", np.zeros(0, np.uint8))
    return f"idx:{d}", "t10k-images-idx3-ubyte.gz: holds no images"


def _idx_header_overflow(d):
    import struct

    f = d / "train-images-idx3-ubyte.gz"
    f.write_bytes(gzip.compress(bytes([0, 0, 8, 4]) + struct.pack(">4I", 2**32 - 1, 2**32 - 1, 2**32 - 1, 3) + b"x" * 10))
    return f"idx:{d}", "train-images-idx3-ubyte.gz: data size does not match the header"


BAD = [_postscript_named_png, _npz_huge_label, _npz_empty_images, _idx_zero_images, _idx_empty_test_split,
       _idx_header_overflow, _truncate_gzip, _corrupt_gzip, _wrong_magic, _size_mismatch, _count_mismatch, _unreadable_image,
       _zero_byte_image, _empty_folder, _empty_class_folder, _npz_missing_key, _npz_wrong_dtype, _npz_wrong_shape,
       _npz_label_mismatch, _npz_not_a_zip, _unknown_source, _missing_dir]


@pytest.mark.parametrize("make_bad", BAD, ids=[f.__name__[1:] for f in BAD])
def test_bad_input_fails_with_one_line_naming_the_file(tmp_path, fashion_slice, run_prepare, make_bad):
    source, message = make_bad(_idx_dir(tmp_path, fashion_slice))
    code, err = run_prepare(source=source)
    assert code == 1
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert outputs(tmp_path) == [] and no_leftovers(tmp_path)


def test_bad_params_fail_before_any_output(tmp_path, run_prepare):
    code, err = run_prepare(image_size=30)
    assert code == 1 and "params.yaml: prepare.image_size: must be 'auto' or a multiple of 4" in err
    assert outputs(tmp_path) == []


def test_classes_on_unlabelled_source_is_an_error(tmp_path, fashion_slice):
    f = tmp_path / "x.npz"
    save_npz(f, x=fashion_slice[0][:20])
    with pytest.raises(DataError, match="prepare.classes: the source npz:.* has no labels"):
        prep(prep_params(source=f"npz:{f}", classes=[1]), seed=0)


def test_a_failed_run_keeps_earlier_outputs_intact(tmp_path, run_prepare):
    assert run_prepare(max_train=100, max_test=50)[0] == 0
    before = {p: p.read_bytes() for p in outputs(tmp_path)}
    code, _ = run_prepare(source=f"npz:{tmp_path / 'absent.npz'}")
    assert code == 1
    assert {p: p.read_bytes() for p in outputs(tmp_path)} == before
    assert not [p for p in (tmp_path / "data/prepared").iterdir() if p.name.startswith(".")]


# ----------------------------------------------------------------------------- determinism


def test_same_params_same_bytes(tmp_path, capsys, class_folder):
    from tests.conftest import run_stage_in

    digests = []
    for run in ("a", "b"):
        work = tmp_path / run
        work.mkdir()
        p = default_params()
        p["prepare"].update(source=f"images:{class_folder}", image_size=32, test_fraction=0.3)
        code, err = run_stage_in(work, "prepare", p, capsys)
        assert code == 0, err
        digests.append([hashlib.sha256(f.read_bytes()).hexdigest() for f in outputs(work)])
    assert len(digests[0]) == 7 and digests[0] == digests[1]  # 2 x (shard, labels, index) + metrics


def test_seed_changes_the_split(fashion_slice, tmp_path):
    x, y = fashion_slice
    f = tmp_path / "d.npz"
    save_npz(f, x=x[:400], y=y[:400])
    a = prep(prep_params(source=f"npz:{f}"), seed=1)
    b = prep(prep_params(source=f"npz:{f}"), seed=2)
    c = prep(prep_params(source=f"npz:{f}"), seed=1)
    assert not np.array_equal(a.test.x, b.test.x)
    np.testing.assert_array_equal(a.test.x, c.test.x)


def test_image_modes_become_grey_or_rgb(tmp_path):
    from PIL import Image

    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0] = 200
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgba[..., :3]).convert("P").save(tmp_path / "palette.png")
    Image.fromarray(np.full((10, 12), 7, np.uint8)).convert("LA").save(tmp_path / "la.png")
    assert S.read_image(tmp_path / "rgba.png").shape == (10, 12, 3)
    assert S.read_image(tmp_path / "rgba.png")[0, 0, 0] == 200
    assert S.read_image(tmp_path / "palette.png").shape == (10, 12, 3)
    la = S.read_image(tmp_path / "la.png")
    assert la.shape == (10, 12, 1) and la[0, 0, 0] == 7


# ----------------------------------------------------------------------------- shards and workers


def test_worker_processes_and_shard_size_change_no_image(tmp_path, class_folder):
    """Image files decoded by 2 worker processes into 1 KiB shards give the images, labels and file digest
    of a single-process run into one shard; a split reads back whole or a row at a time, in any order."""
    cfg = prep_params(source=f"images:{class_folder}", test_fraction=0.25, image_size=16, channels=3)
    one = prep(cfg, seed=0, workers=1)
    many = prep(cfg, seed=0, workers=2, shard_bytes=1024)  # 1 KiB: one 16x16x3 image per shard
    assert len(load_split_index(many.root / "prepared/train")["shards"]) == 27
    for a, b in ((one.train, many.train), (one.test, many.test)):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
    assert one.metrics == many.metrics
    mapped = load_split(many.root / "prepared/train", mmap=True).x
    idx = np.array([26, 0, 13, 13, 5])
    np.testing.assert_array_equal(mapped[idx], one.train.x[idx])
    np.testing.assert_array_equal(np.asarray(mapped), one.train.x)


def load_split_index(d):
    return json.loads((d / "index.json").read_text())


@pytest.mark.parametrize("damage", ["flip", "truncate", "remove"])
def test_a_damaged_shard_is_an_error_naming_it(tmp_path, fashion_slice, damage):
    x, y = fashion_slice
    f = tmp_path / "d.npz"
    save_npz(f, x=x[:200], y=y[:200])
    out = prep(prep_params(source=f"npz:{f}"), seed=0, shard_bytes=784 * 50)
    shard = out.root / "prepared/train/x-00001.npy"
    data = shard.read_bytes()
    if damage == "flip":
        shard.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif damage == "truncate":
        shard.write_bytes(data[:-784])
    else:
        shard.unlink()
    with pytest.raises(DataError, match=r"x-00001\.npy: "):
        load_split(out.root / "prepared/train")
    if damage == "truncate":  # also without the checksums
        with pytest.raises(DataError, match=r"x-00001\.npy: .*truncated"):
            load_split(out.root / "prepared/train", verify=False)


def test_a_label_outside_the_class_names_is_an_error_naming_the_file(tmp_path, fashion_slice):
    import hashlib

    x, y = fashion_slice
    f = tmp_path / "d.npz"
    save_npz(f, x=x[:100], y=y[:100])
    out = prep(prep_params(source=f"npz:{f}"), seed=0)
    d = out.root / "prepared/train"
    labels = np.load(d / "y.npy")
    labels[3] = 99
    np.save(d / "y.npy", labels)
    index = load_split_index(d)
    index["labels"]["sha256"] = hashlib.sha256((d / "y.npy").read_bytes()).hexdigest()  # consistent, still wrong
    (d / "index.json").write_text(json.dumps(index))
    with pytest.raises(DataError, match=r"y\.npy: label 99 is outside the 10 class names"):
        load_split(d)


def test_an_npz_source_is_streamed_and_equals_its_compressed_copy(tmp_path, fashion_slice):
    """An uncompressed .npz is read a chunk at a time (``NpyRows``: class selection and caps stay lazy); a
    compressed one is read whole; both prepare to the same images."""
    x, y = fashion_slice
    np.savez(tmp_path / "plain.npz", x=x[:600], y=y[:600])
    np.savez_compressed(tmp_path / "packed.npz", x=x[:600], y=y[:600])
    raw = S.load_npz_source(tmp_path / "plain.npz")
    assert isinstance(raw.train.x, S.NpyRows) and raw.train.x.shape == (600, 28, 28, 1)
    sub = raw.train.take(np.array([5, 3, 4, 100, 599]))
    np.testing.assert_array_equal(sub.x[:], x[[5, 3, 4, 100, 599]][..., None])
    cfg = dict(classes=[3, 8, 1], max_train=120, test_fraction=0.25)
    a = prep(prep_params(source=f"npz:{tmp_path / 'plain.npz'}", **cfg), seed=4, shard_bytes=784 * 32)
    b = prep(prep_params(source=f"npz:{tmp_path / 'packed.npz'}", **cfg), seed=4)
    np.testing.assert_array_equal(a.train.x, b.train.x)
    np.testing.assert_array_equal(a.test.y, b.test.y)
    assert len(a.train) == 120


def test_mapped_pages_are_dropped_and_read_again_unchanged(tmp_path, fashion_slice, monkeypatch):
    """``ShardedImages`` unmaps the pages it has mapped once the process's resident file pages grew by
    MAPPED_BUDGET (here: any growth), so a long epoch does not keep the whole split resident; rows read
    after a release are the same bytes."""
    from ganpipe import splits

    x, y = fashion_slice
    splits.write_split(tmp_path / "s", splits.Split(x[:1000, ..., None], y[:1000]), shard_bytes=784 * 300)
    monkeypatch.setattr(splits, "MAPPED_BUDGET", -1)
    monkeypatch.setattr(splits, "RELEASE_BYTES", 784 * 64)  # the rule where /proc is absent
    mapped = load_split(tmp_path / "s", mmap=True).x
    released = []
    monkeypatch.setattr(mapped, "release", lambda orig=mapped.release: (released.append(1), orig()))
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = rng.choice(1000, 50, replace=False)
        np.testing.assert_array_equal(mapped[idx], x[idx][..., None])
    assert len(released) >= 10


@pytest.mark.parametrize("field, value, message", [
    ("shard_images", "abc", r"shard_images must be an integer >= 1, got 'abc'"),
    ("class_names", None, r"class_names must be a list of names, got None"),
    ("count", -1, r"count must be an integer >= 0"),
    ("image_shape", [28, 28], r"image_shape must be \[height, width, channels\]"),
    ("shards", [{"file": "/etc/passwd", "count": 1, "sha256": "0"}], r"shard 0 must be \{file: x-00000.npy"),
    ("labels", {"file": "../y.npy", "sha256": "0"}, r"labels must be null or \{file: y.npy"),
])
def test_a_malformed_split_index_is_one_error_naming_it(tmp_path, field, value, message):
    from ganpipe.splits import write_split
    from ganpipe.splits import Split

    d = tmp_path / "split"
    write_split(d, Split(np.zeros((4, 8, 8, 1), np.uint8), np.arange(4) % 2), ["a", "b"])
    index = load_split_index(d)
    index[field] = value
    (d / "index.json").write_text(json.dumps(index))
    with pytest.raises(DataError, match=r"index\.json: malformed split index \(" + message):
        load_split(d)


def test_a_fortran_ordered_shard_says_so(tmp_path):
    from ganpipe.splits import write_split
    from ganpipe.splits import Split

    d = tmp_path / "split"
    x = np.arange(4 * 8 * 8, dtype=np.uint8).reshape(4, 8, 8, 1)
    write_split(d, Split(x, None))
    np.save(d / "x-00000.npy", np.asfortranarray(x))
    with pytest.raises(DataError, match=r"x-00000\.npy: is stored in Fortran order"):
        load_split(d, verify=False)
