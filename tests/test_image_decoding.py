"""Image decoding of user folders: a format allow-list (no external decoder ever runs), a pixel limit
read from the header, reduce-before-resize for large photos, EXIF orientation, 16-bit rescaling."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from PIL import Image

from ganpipe import decoders as S
from ganpipe import transforms as T
from ganpipe.errors import DataError
from tests.conftest import default_params, run_stage_in


def test_postscript_named_png_never_starts_ghostscript(tmp_path, monkeypatch, capsys):
    """A stub `gs` on PATH records any call: Pillow's EPS plugin would start it for this file."""
    bin_dir, log = tmp_path / "bin", tmp_path / "gs-called"
    bin_dir.mkdir()
    gs = bin_dir / "gs"
    gs.write_text(f"#!/bin/sh\necho called >> {log}\nexit 1\n")
    gs.chmod(gs.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    root = tmp_path / "imgs"
    root.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "ok.png")
    (root / "evil.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n0 0 moveto showpage\n")
    with pytest.raises(DataError, match="evil.png: holds PostScript data, not PNG or JPEG"):
        S.read_image(root / "evil.png")
    params = default_params()
    params["prepare"] |= {"source": f"images:{root}", "on_bad_image": "skip", "test_fraction": 0.5}
    (root / "ok2.png").write_bytes((root / "ok.png").read_bytes())
    code, err = run_stage_in(tmp_path, "prepare", params, capsys)
    assert code == 0, err
    assert not log.exists()  # no process was started


def test_pixel_limit_is_checked_from_the_header(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(S, "MAX_PIXELS", 1000)
    with pytest.raises(DataError, match=r"big.png: 50x40 is 2,000 pixels, over the limit of 1,000"):
        S.read_image(tmp_path / "big.png")


def test_decompression_bomb_is_one_line_and_skippable(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow's own guard: an error over 2x this
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "bomb.png")
    with pytest.raises(DataError, match=r"bomb.png: unreadable image \(DecompressionBombError"):
        S.read_image(tmp_path / "bomb.png")


def test_sixteen_bit_grey_is_rescaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    got = S.read_image(tmp_path / "deep.png")[..., 0]
    np.testing.assert_array_equal(got, np.rint(ramp / 257).astype(np.uint8))
    assert (got == 255).mean() < 0.01  # clipping made 99% of this ramp white


def test_exif_orientation_is_applied(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :10] = 255  # a white band on the left of a landscape image
    im = Image.fromarray(img)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    im.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    got = S.read_image(tmp_path / "phone.jpg")
    assert got.shape == (40, 20, 3)  # shown upright: portrait
    assert got[:10].mean() > 200 and got[-10:].mean() < 50  # the band is now at the top


def _photo(seed: int, size: int = 3000) -> np.ndarray:
    """A smooth random RGB image (a photo's low-frequency content, plus fine texture)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (12, 12, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC), np.float64)
    return np.clip(base + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)


def test_large_photos_are_reduced_before_resizing_with_the_same_result(tmp_path):
    # measured: mean 2.1, max 9 grey levels (JPEG's DCT scaling is close to, not exactly, a box filter)
    for i in range(2):
        Image.fromarray(_photo(i, 2000)).save(tmp_path / f"p{i}.jpg", quality=92)
    for i in range(2):
        path = tmp_path / f"p{i}.jpg"
        with Image.open(path) as im:
            full = np.asarray(im.convert("RGB"))
        exact = T.resize_images([full], 28)[0].astype(np.float64)
        fast = T.resize_images([S.read_image(path, 28)], 28)[0].astype(np.float64)
        assert np.abs(fast - exact).mean() < 3.0 and np.abs(fast - exact).max() <= 24


def test_prepare_reads_large_jpegs_quickly(tmp_path):
    """Forty 3000x3000 JPEGs at 28 px. The speed target (under 10 s on 2 cores) is measured in
    bench/prepare_images.py; here the output shape and the reduction (no full-size array) are checked."""
    root = tmp_path / "photos"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
    photo = _photo(0)
    for i in range(4):
        Image.fromarray(photo).save(root / "ab"[i % 2] / f"{i}.jpg", quality=90)
    raw = S.load_image_dir(root, size=28)
    assert all(max(im.shape[:2]) <= 4 * 28 * 2 for im in raw.train.x)


def test_non_utf8_file_names_load(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    for name in (b"\xff\xfe.png", b"ok.png"):
        Image.fromarray(np.full((8, 8), 7, np.uint8)).save(os.fsdecode(os.fsencode(root) + b"/" + name))
    raw = S.load_image_dir(root)
    assert len(raw.train) == 2


def test_a_full_disk_or_read_only_folder_is_one_line(tmp_path):
    """A write that fails with ENOSPC/EROFS/EACCES stops the stage with one line naming the file."""
    import subprocess
    import sys

    from tests.conftest import REPO

    for err, text in ((28, "No space left on device"), (30, "Read-only file system")):
        code = ("from ganpipe.stage import run_stage\n"
                f"def main():\n    raise OSError({err}, {text!r}, 'models/generator.keras')\n"
                "run_stage(main)\n")
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 1
        assert proc.stderr == f"error: cannot write models/generator.keras: {text} (previous outputs are unchanged)\n"


def test_too_few_real_test_images_for_the_feature_dimension_are_refused():
    from ganpipe.features import check_real_count

    check_real_count(129, 128)
    with pytest.raises(DataError, match=r"has 100 images, not more than features.feature_dim=128.*features.reference: all"):
        check_real_count(100, 128)


def _odd_folder(root):
    """Valid images of every awkward kind users' folders hold, plus files that must be ignored."""
    rng = np.random.default_rng(0)
    rgb = lambda h, w: rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # noqa: E731
    root.mkdir()
    Image.fromarray(rgb(10, 10000)).save(root / "wide.png")  # centre-cropped to its 10x10 middle
    Image.fromarray(rgb(1, 1)).save(root / "one.png")
    frames = [Image.fromarray(rgb(16, 16)) for _ in range(3)]
    frames[0].save(root / "anim.png", save_all=True, append_images=frames[1:])  # APNG: the first frame
    Image.fromarray(rgb(16, 16)).convert("CMYK").save(root / "cmyk.jpg", quality=100)
    Image.fromarray(rng.integers(0, 256, (16, 16, 2), dtype=np.uint8), mode="LA").save(root / "grey-alpha.png")
    Image.fromarray(rgb(16, 16)).convert("P").save(root / "palette.png", transparency=0)
    for name in ("ünï cödé.png", "with space.png", "new\nline.png"):
        Image.fromarray(rgb(16, 16)).save(root / name)
    (root / "._anim.png").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")  # AppleDouble
    (root / "__MACOSX").mkdir()
    (root / "__MACOSX" / "._one.png").write_bytes(b"\x00\x05\x16\x07")
    return frames[0]


def test_odd_but_valid_images_are_read_as_documented(tmp_path):
    first_frame = np.asarray(_odd_folder(tmp_path / "imgs"))
    raw = S.list_image_dir(tmp_path / "imgs")
    names = sorted(p.name for p in raw.train.x.paths)
    assert names == sorted(["wide.png", "one.png", "anim.png", "cmyk.jpg", "grey-alpha.png", "palette.png",
                            "ünï cödé.png", "with space.png", "new\nline.png"])  # no ._ file, no __MACOSX
    read = lambda n: S.read_image(tmp_path / "imgs" / n)  # noqa: E731
    np.testing.assert_array_equal(read("anim.png"), first_frame)
    assert read("grey-alpha.png").shape == (16, 16, 1)  # alpha dropped, grey stays grey
    la = np.asarray(Image.open(tmp_path / "imgs" / "grey-alpha.png"))
    np.testing.assert_array_equal(read("grey-alpha.png")[..., 0], la[..., 0])
    assert read("palette.png").shape == (16, 16, 3) and read("cmyk.jpg").shape == (16, 16, 3)
    assert read("wide.png").shape == (10, 10000, 3) and read("one.png").shape == (1, 1, 3)
    assert S.image_is_colour(tmp_path / "imgs" / "palette.png")


def test_a_folder_of_odd_images_prepares_with_the_defaults(tmp_path, capsys):
    _odd_folder(tmp_path / "imgs")
    params = default_params()
    params["prepare"] |= {"source": f"images:{tmp_path / 'imgs'}", "test_fraction": 0.3}
    code, err = run_stage_in(tmp_path, "prepare", params, capsys)
    assert code == 0, err
    from ganpipe.splits import load_split

    train, test = (load_split(tmp_path / "data" / "prepared" / s) for s in ("train", "test"))
    assert len(train) + len(test) == 9
    assert train.x.shape[1:] == (32, 32, 3)  # image folders: 32 px; colour because any image is


def test_a_file_that_is_not_png_or_jpeg_is_one_line_naming_what_it_is(tmp_path, capsys):
    root = tmp_path / "imgs"
    _odd_folder(root)
    (root / "broken\nname.png").write_bytes(b"not an image at all")
    params = default_params()
    params["prepare"] |= {"source": f"images:{root}", "test_fraction": 0.3}
    code, err = run_stage_in(tmp_path, "prepare", params, capsys)
    assert code == 1
    # the newline in the name is escaped: the error stays one line
    assert err == (f"error: {root}/broken\\nname.png: is not an image that can be read, not PNG or JPEG "
                   "(only those are read, whatever the file's name)\n")
    assert not (tmp_path / "data" / "prepared").exists() and not (tmp_path / "metrics").exists()
    (root / "broken\nname.png").unlink()
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (0, 255)]
    frames[0].save(root / "really-a.gif.png", format="GIF", save_all=True, append_images=frames[1:])
    code, err = run_stage_in(tmp_path, "prepare", params, capsys)
    assert code == 1 and err.startswith(f"error: {root}/really-a.gif.png: holds GIF data, not PNG or JPEG")
    assert err.count("\n") == 1 and not (tmp_path / "data" / "prepared").exists()
    params["prepare"]["on_bad_image"] = "skip"
    code, err = run_stage_in(tmp_path, "prepare", params, capsys)
    assert code == 0, err
    import json

    assert json.loads((tmp_path / "metrics" / "data.json").read_text())["skipped_files"] == ["really-a.gif.png"]
