"""One pixel limit for every photo decoder, checked from the header before any pixel is allocated."""

from __future__ import annotations

import struct
import tracemalloc
import zlib

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from PIL import Image

from gmsr_cli.cli.main import cli
from gmsr_cli.errors import InputImageError
from gmsr_cli.io import read_rgb
from gmsr_cli.io.limits import DEFAULT_MAX_PIXELS, ENV_VAR, set_max_pixels


@pytest.fixture(autouse=True)
def _default_limit(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    set_max_pixels(None)
    yield
    set_max_pixels(None)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png16_bomb(path, side: int = 10_000) -> None:
    """A real, valid 16-bit RGB PNG of side x side black pixels: about 1 MB on disk, 600 MB decoded."""
    packer = zlib.compressobj(1)
    row = b"\0" * (1 + side * 6)  # filter byte + 3 samples x 2 bytes
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 16, 2, 0, 0, 0)))
        fh.write(_chunk(b"IDAT", idat))
        fh.write(_chunk(b"IEND", b""))


def _refused_cheaply(path, size_text: str) -> str:
    tracemalloc.start()
    try:
        with pytest.raises(InputImageError) as info:
            read_rgb(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert str(path) in message and size_text in message and "--max-pixels" in message and ENV_VAR in message
    assert peak < 50 * 2**20, f"{peak / 2**20:.0f} MB allocated before refusing"
    return message


def test_16_bit_png_bomb_is_refused_from_its_header(tmp_path):
    path = tmp_path / "bomb.png"
    png16_bomb(path)
    assert path.stat().st_size < 3 * 2**20
    _refused_cheaply(path, "10000 x 10000 pixels (100.0 megapixels)")


def test_16_bit_tiff_claiming_a_huge_size_is_refused(tmp_path):
    path = tmp_path / "huge.tif"
    with tifffile.TiffWriter(path) as tw:  # a sparse file: the header claims 2.4 GB of samples
        tw.write(None, shape=(20_000, 20_000, 3), dtype=np.uint16, photometric="rgb")
    message = _refused_cheaply(path, "20000 x 20000 pixels (400.0 megapixels)")
    assert "unexpected" not in message


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".bmp", ".webp"])
def test_every_decoder_uses_the_one_limit_from_the_environment(tmp_path, monkeypatch, suffix):
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(np.full((40, 50, 3), 128, np.uint8)).save(path)
    monkeypatch.setenv(ENV_VAR, "1999")
    with pytest.raises(InputImageError, match=r"50 x 40 pixels .* above the limit of 0\.0 megapixels"):
        read_rgb(path)
    monkeypatch.setenv(ENV_VAR, "2000")
    assert read_rgb(path).data.shape == (40, 50, 3)
    monkeypatch.setenv(ENV_VAR, "0")  # no limit
    assert read_rgb(path).data.shape == (40, 50, 3)


def test_pillow_default_is_the_default():
    assert DEFAULT_MAX_PIXELS == Image.MAX_IMAGE_PIXELS or Image.MAX_IMAGE_PIXELS is None
    assert DEFAULT_MAX_PIXELS == 1024 * 1024 * 1024 // 4 // 3


def test_gmsr_refuses_a_bomb_in_one_line_and_max_pixels_lets_it_through(tmp_path):
    path = tmp_path / "bomb.png"
    png16_bomb(path, side=9_000)  # 81 megapixels: under the default limit
    small = tmp_path / "small.png"
    Image.fromarray(np.full((40, 50, 3), 128, np.uint8)).save(small)
    runner = CliRunner()
    done = runner.invoke(cli, ["reconstruct", str(small), "-o", str(tmp_path / "c.h5"), "--max-pixels", "1000"])
    assert done.exit_code == 1
    assert done.output.count("\n") == 1 and "50 x 40 pixels" in done.output and "--max-pixels" in done.output
    assert not (tmp_path / "c.h5").exists()
    done = runner.invoke(cli, ["reconstruct", str(path), "-o", str(tmp_path / "b.h5"), "--max-pixels", "80000000"])
    assert done.exit_code == 1 and "9000 x 9000 pixels (81.0 megapixels)" in done.output
    done = runner.invoke(cli, ["reconstruct", str(small), "--max-pixels", "-1"])
    assert done.exit_code == 2 and "negative" in done.output
