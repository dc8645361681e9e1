"""A small PNG decoder for 16-bit colour PNGs, which Pillow reduces to 8 bits."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Samples per pixel for each PNG colour type (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA).
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


class PngError(ValueError):
    """The file is not a PNG this decoder handles, or it is damaged."""


class PngHeader(NamedTuple):
    width: int
    height: int
    bit_depth: int
    colour_type: int
    interlace: int


def read_header(path: Path) -> PngHeader | None:
    """The IHDR of a PNG file, or None if the file does not start with the PNG signature."""
    with open(path, "rb") as fh:
        head = fh.read(33)
    if not head.startswith(SIGNATURE) or len(head) < 33 or head[12:16] != b"IHDR":
        return None
    width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return PngHeader(width, height, depth, ctype, interlace)


_unfilter_jit = None


def _unfilter(data: np.ndarray, filters: np.ndarray, bpp: int) -> None:
    global _unfilter_jit
    # Sub/Average/Paeth depend on the pixel to the left, so rows cannot be vectorised; numba
    # compiles the plain loop (cached on disk after the first use).
    if _unfilter_jit is None:
        import numba

        _unfilter_jit = numba.njit(cache=True, nogil=True)(_unfilter_kernel)
    status = _unfilter_jit(data, filters.astype(np.int64), bpp)
    if status >= 0:
        raise PngError(f"bad filter type in row {status}")


def _unfilter_kernel(data, filters, bpp):  # pragma: no cover - compiled by numba
    height, stride = data.shape
    for y in range(height):
        f = filters[y]
        if f == 0:
            continue
        if f > 4 or f < 0:
            return y
        for x in range(stride):
            raw = np.int32(data[y, x])
            a = np.int32(data[y, x - bpp]) if x >= bpp else np.int32(0)
            b = np.int32(data[y - 1, x]) if y > 0 else np.int32(0)
            c = np.int32(data[y - 1, x - bpp]) if (y > 0 and x >= bpp) else np.int32(0)
            if f == 1:
                pred = a
            elif f == 2:
                pred = b
            elif f == 3:
                pred = (a + b) >> 1
            else:
                p = a + b - c
                pa = abs(p - a)
                pb = abs(p - b)
                pc = abs(p - c)
                if pa <= pb and pa <= pc:
                    pred = a
                elif pb <= pc:
                    pred = b
                else:
                    pred = c
            data[y, x] = np.uint8((raw + pred) & 0xFF)
    return -1


def decode(path: Path) -> tuple[np.ndarray, list[str]]:
    """Decode a non-interlaced 8- or 16-bit greyscale/RGB/RGBA PNG.

    Returns (pixels (H, W, C) uint8 or uint16 with C = 1, 2, 3 or 4, notes) where notes name
    ignored features (a tRNS transparent colour). Raises PngError for damaged or unsupported files.
    """
    with open(path, "rb") as fh:
        blob = fh.read()
    if not blob.startswith(SIGNATURE):
        raise PngError("not a PNG file")
    pos = len(SIGNATURE)
    header: PngHeader | None = None
    idat: list[bytes] = []
    notes: list[str] = []
    ended = False
    while pos + 8 <= len(blob):
        length, ctype = struct.unpack(">I4s", blob[pos : pos + 8])
        chunk = blob[pos + 8 : pos + 8 + length]
        crc = blob[pos + 8 + length : pos + 12 + length]
        if len(chunk) < length or len(crc) < 4:
            raise PngError("file is truncated")
        if struct.unpack(">I", crc)[0] != zlib.crc32(ctype + chunk) & 0xFFFFFFFF:
            raise PngError(f"CRC error in {ctype.decode('latin-1')} chunk (file is corrupt)")
        if ctype == b"IHDR":
            w, h, depth, colour, comp, filt, interlace = struct.unpack(">IIBBBBB", chunk[:13])
            header = PngHeader(w, h, depth, colour, interlace)
            if comp != 0 or filt != 0:
                raise PngError("unknown compression or filter method")
        elif ctype == b"IDAT":
            idat.append(chunk)
        elif ctype == b"tRNS":
            notes.append("transparent colour (tRNS) ignored")
        elif ctype == b"IEND":
            ended = True
            break
        pos += 12 + length
    if header is None:
        raise PngError("no IHDR chunk")
    if not ended:
        raise PngError("file is truncated (no IEND chunk)")
    if header.colour_type not in (0, 2, 4, 6) or header.bit_depth not in (8, 16):
        raise PngError(f"unsupported PNG layout (colour type {header.colour_type}, {header.bit_depth} bit)")
    if header.interlace:
        raise PngError("interlaced PNG")
    channels = CHANNELS[header.colour_type]
    bpp = channels * header.bit_depth // 8
    stride = header.width * bpp
    expected = header.height * (stride + 1)
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as exc:
        raise PngError(f"image data is corrupt ({exc})") from None
    if len(raw) < expected:
        raise PngError("image data is truncated")
    rows = np.frombuffer(raw, dtype=np.uint8, count=expected).reshape(header.height, stride + 1)
    filters = rows[:, 0].copy()
    data = rows[:, 1:].copy()
    if np.any(filters != 0):
        _unfilter(data, filters, bpp)
    if header.bit_depth == 16:
        pixels = data.view(">u2").astype(np.uint16)
    else:
        pixels = data
    return pixels.reshape(header.height, header.width, channels), notes
