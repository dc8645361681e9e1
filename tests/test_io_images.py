"""Photos in (read_rgb, image_size) and previews out (write_rgb), against files written by Pillow
and tifffile."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from gmsr_cli.errors import FormatError, InputImageError, OutputExistsError
from gmsr_cli.io import image_size, read_rgb, write_rgb
from gmsr_cli.io import _png


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def encode_png(pixels: np.ndarray, exif: bytes | None = None) -> bytes:
    """A PNG (8/16-bit grey/RGB/RGBA) using every filter type in turn (row y uses y % 5), so the
    decoder's Sub/Up/Average/Paeth paths are all exercised; Pillow checks the file independently."""
    h, w, c = pixels.shape
    depth = 16 if pixels.dtype == np.uint16 else 8
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = (pixels.astype(">u2").view(np.uint8) if depth == 16 else pixels).reshape(h, -1).astype(np.int32)
    bpp = c * depth // 8
    prior = np.vstack([np.zeros((1, raw.shape[1]), np.int32), raw[:-1]])
    left = np.hstack([np.zeros((h, bpp), np.int32), raw[:, :-bpp]])
    upleft = np.hstack([np.zeros((h, bpp), np.int32), prior[:, :-bpp]])
    p = left + prior - upleft
    pa, pb, pc = abs(p - left), abs(p - prior), abs(p - upleft)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prior, upleft))
    predictors = [np.zeros_like(raw), left, prior, (left + prior) // 2, paeth]
    rows = [bytes([y % 5]) + ((raw[y] - predictors[y % 5][y]) & 0xFF).astype(np.uint8).tobytes() for y in range(h)]
    out = _png.SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0))
    if exif is not None:
        out += _chunk(b"eXIf", exif)
    return out + _chunk(b"IDAT", zlib.compress(b"".join(rows))) + _chunk(b"IEND", b"")


def exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = exif.tobytes()
    return data[6:] if data.startswith(b"Exif\x00\x00") else data


# --------------------------------------------------------------------------------- 8-bit files

@pytest.mark.parametrize("name,options", [
    ("p.png", {}), ("p.bmp", {}), ("p.webp", {"lossless": True}), ("p.tif", {}),
])
def test_lossless_8bit_formats_read_exactly(tmp_path, photos, name, options):
    pixels = photos.array()
    photos.write(tmp_path / name, **options)
    image = read_rgb(tmp_path / name)
    assert image.bit_depth == 8 and image.warnings == []
    assert image.data.dtype == np.float32 and image.data.shape == pixels.shape
    np.testing.assert_array_equal(np.round(image.data * 255).astype(np.uint8), pixels)
    assert image_size(tmp_path / name) == pixels.shape[:2]


def test_jpeg_reads_as_pillow_decodes_it(tmp_path, photos):
    photos.write(tmp_path / "p.jpg", quality=90)
    image = read_rgb(tmp_path / "p.jpg")
    np.testing.assert_array_equal(np.round(image.data * 255), np.asarray(Image.open(tmp_path / "p.jpg")))
    assert 0.0 <= image.data.min() and image.data.max() <= 1.0


# -------------------------------------------------------------------------------- 16-bit files

def test_16bit_png_keeps_full_precision(tmp_path, photos):
    pixels = photos.array(bit_depth=16)
    (tmp_path / "p16.png").write_bytes(encode_png(pixels))
    # Pillow reads the same file (checking CRCs and filters) but only at 8 bits.
    with Image.open(tmp_path / "p16.png") as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), pixels >> 8)
    image = read_rgb(tmp_path / "p16.png")
    assert image.bit_depth == 16 and image.warnings == []
    np.testing.assert_array_equal(np.round(image.data * 65535).astype(np.uint16), pixels)


def test_png_decoder_matches_pillow_on_8bit_files(tmp_path, photos):
    pixels = photos.array(40, 50)
    photos.write(tmp_path / "pil.png", 40, 50)
    decoded, _ = _png.decode(tmp_path / "pil.png")
    np.testing.assert_array_equal(decoded, pixels)
    (tmp_path / "ours.png").write_bytes(encode_png(pixels))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "ours.png")), pixels)
    np.testing.assert_array_equal(_png.decode(tmp_path / "ours.png")[0], pixels)


def test_16bit_rgba_png_drops_alpha(tmp_path, photos):
    pixels = photos.array(bit_depth=16, channels=4)
    (tmp_path / "a16.png").write_bytes(encode_png(pixels))
    image = read_rgb(tmp_path / "a16.png")
    assert any("alpha" in w for w in image.warnings)
    np.testing.assert_array_equal(np.round(image.data * 65535).astype(np.uint16), pixels[:, :, :3])


def test_16bit_png_exif_orientation(tmp_path, photos):
    pixels = photos.array(10, 16, bit_depth=16)
    (tmp_path / "r16.png").write_bytes(encode_png(pixels, exif=exif_bytes(6)))
    image = read_rgb(tmp_path / "r16.png")
    assert image.data.shape == (16, 10, 3)
    np.testing.assert_array_equal(np.round(image.data * 65535).astype(np.uint16), np.rot90(pixels, -1))
    assert image_size(tmp_path / "r16.png") == (16, 10)


@pytest.mark.parametrize("layout", ["contig", "separate", "zlib", "alpha"])
def test_16bit_tiff_keeps_full_precision(tmp_path, photos, layout):
    pixels = photos.array(bit_depth=16, channels=4 if layout == "alpha" else 3)
    path = tmp_path / "p16.tif"
    if layout == "separate":
        tifffile.imwrite(path, pixels.transpose(2, 0, 1), photometric="rgb", planarconfig="separate")
    elif layout == "zlib":
        tifffile.imwrite(path, pixels, photometric="rgb", compression="zlib")
    elif layout == "alpha":
        tifffile.imwrite(path, pixels, photometric="rgb", extrasamples=["unassalpha"])
    else:
        tifffile.imwrite(path, pixels, photometric="rgb")
    image = read_rgb(path)
    assert image.bit_depth == 16
    assert any("alpha" in w for w in image.warnings) is (layout == "alpha")
    np.testing.assert_array_equal(np.round(image.data * 65535).astype(np.uint16), pixels[:, :, :3])
    assert image_size(path) == pixels.shape[:2]


@pytest.mark.parametrize("depth", [8, 16])
def test_tiff_orientation_tag(tmp_path, photos, depth):
    pixels = photos.array(10, 16, bit_depth=depth)
    tifffile.imwrite(tmp_path / "o.tif", pixels, photometric="rgb", extratags=[(274, "H", 1, 8, True)])
    image = read_rgb(tmp_path / "o.tif")
    top = 255 if depth == 8 else 65535
    np.testing.assert_array_equal(np.round(image.data * top), np.rot90(pixels, 1))
    assert image_size(tmp_path / "o.tif") == (16, 10)


# ------------------------------------------------------------------------ orientation, modes

def test_exif_rotated_jpeg_comes_out_rotated(tmp_path, photos):
    pixels = photos.array(h=20, w=40)
    exif = Image.Exif()
    exif[0x0112] = 6  # camera held upright: rotate 90 degrees clockwise to display
    Image.fromarray(pixels).save(tmp_path / "r.jpg", exif=exif, quality=95)
    image = read_rgb(tmp_path / "r.jpg")
    assert image.data.shape == (40, 20, 3)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "r.jpg")))
    np.testing.assert_array_equal(np.round(image.data * 255).astype(np.uint8), upright)
    assert image_size(tmp_path / "r.jpg") == (40, 20)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(tmp_path, photos, orientation):
    pixels = photos.array(h=6, w=9)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(tmp_path / "o.png", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    image = read_rgb(tmp_path / "o.png")
    np.testing.assert_array_equal(np.round(image.data * 255).astype(np.uint8), expected)
    assert image_size(tmp_path / "o.png") == expected.shape[:2]


def test_rgba_warns_and_drops_alpha(tmp_path, photos):
    pixels = photos.array()
    alpha = np.full(pixels.shape[:2] + (1,), 100, np.uint8)
    Image.fromarray(np.concatenate([pixels, alpha], axis=-1)).save(tmp_path / "a.png")
    image = read_rgb(tmp_path / "a.png")
    assert len(image.warnings) == 1 and "alpha" in image.warnings[0]
    np.testing.assert_array_equal(np.round(image.data * 255).astype(np.uint8), pixels)


def test_palette_image_converts_with_warning(tmp_path, photos):
    Image.fromarray(photos.array()).quantize(16).save(tmp_path / "p.png")
    image = read_rgb(tmp_path / "p.png")
    assert any("palette" in w for w in image.warnings)
    expected = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
    np.testing.assert_array_equal(np.round(image.data * 255).astype(np.uint8), expected)


def test_cmyk_jpeg_converts_with_warning(tmp_path):
    cmyk = np.random.default_rng(0).integers(0, 256, (12, 16, 4), dtype=np.uint8)
    Image.fromarray(cmyk, mode="CMYK").save(tmp_path / "c.jpg")
    image = read_rgb(tmp_path / "c.jpg")
    assert any("CMYK" in w for w in image.warnings)
    expected = np.asarray(Image.open(tmp_path / "c.jpg").convert("RGB"))
    np.testing.assert_array_equal(np.round(image.data * 255).astype(np.uint8), expected)


# ----------------------------------------------------------------------------- refused inputs

def _grey_files(tmp_path: Path, photos) -> list[Path]:
    grey = photos.array()[:, :, 0]
    Image.fromarray(grey).save(tmp_path / "l.png")
    Image.fromarray(grey).save(tmp_path / "l.jpg")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "i16.png")
    tifffile.imwrite(tmp_path / "g16.tif", grey.astype(np.uint16) * 257, photometric="minisblack")
    return [tmp_path / n for n in ("l.png", "l.jpg", "i16.png", "g16.tif")]


def test_greyscale_is_refused_with_advice(tmp_path, photos):
    for path in _grey_files(tmp_path, photos):
        with pytest.raises(InputImageError) as info:
            read_rgb(path)
        message = str(info.value)
        assert path.name in message and "greyscale" in message and "colour" in message


def test_missing_file(tmp_path):
    with pytest.raises(InputImageError, match=r"nope\.jpg: file not found"):
        read_rgb(tmp_path / "nope.jpg")
    with pytest.raises(InputImageError, match=r"nope\.jpg: file not found"):
        image_size(tmp_path / "nope.jpg")


@pytest.mark.parametrize("name,content", [
    ("empty.png", b""),
    ("text.jpg", b"hello, this is a text file\n" * 10),
    ("noise.png", bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8))),
    ("noise.tif", b"II*\x00" + bytes(range(200))),
])
def test_non_image_files(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputImageError) as info:
        read_rgb(tmp_path / name)
    assert name in str(info.value) and "\n" not in str(info.value)


def _truncated(tmp_path: Path, photos, kind: str) -> Path:
    if kind == "png16":
        (tmp_path / "t.png").write_bytes(encode_png(photos.array(64, 64, bit_depth=16)))
    else:
        photos.write(tmp_path / f"t.{kind[:3]}", 64, 64, bit_depth=16 if kind == "tif16" else 8)
    path = next(tmp_path.iterdir())
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    return path


@pytest.mark.parametrize("kind", ["jpg", "png", "png16", "tif16"])
def test_truncated_files(tmp_path, photos, kind):
    path = _truncated(tmp_path, photos, kind)
    with pytest.raises(InputImageError) as info:
        read_rgb(path)
    assert path.name in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------------- write_rgb

@pytest.mark.parametrize("name", ["o.png", "o.jpg", "o.jpeg", "o.tif", "o.tiff"])
def test_write_rgb_round_trip(tmp_path, photos, name):
    pixels = photos.array()
    assert write_rgb(tmp_path / name, pixels) == tmp_path / name
    back = np.asarray(Image.open(tmp_path / name))
    if name.endswith(("jpg", "jpeg")):
        assert np.abs(back.astype(int) - pixels).mean() < 4
    else:
        np.testing.assert_array_equal(back, pixels)
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_write_rgb_greyscale_and_bad_inputs(tmp_path, photos):
    grey = photos.array()[:, :, 0]
    write_rgb(tmp_path / "g.png", grey)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "g.png")), grey)
    with pytest.raises(ValueError, match="uint8"):
        write_rgb(tmp_path / "f.png", photos.array().astype(np.float32))
    with pytest.raises(FormatError, match=r"\.gif.*\.png"):
        write_rgb(tmp_path / "o.gif", photos.array())


def test_write_rgb_overwrite_rule(tmp_path, photos):
    write_rgb(tmp_path / "o.png", photos.array(seed=1))
    with pytest.raises(OutputExistsError, match=r"o\.png.*--overwrite"):
        write_rgb(tmp_path / "o.png", photos.array(seed=2))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o.png")), photos.array(seed=1))
    write_rgb(tmp_path / "o.png", photos.array(seed=2), overwrite=True)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o.png")), photos.array(seed=2))
