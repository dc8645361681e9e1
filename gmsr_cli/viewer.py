"""`gmsr view`: one self-contained HTML page to explore a cube's spectra (preview, hover, pin, bands, CSV)."""

from __future__ import annotations

import base64
import importlib.resources
import io
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FormatError, GmsrError
from .spectrum import picture, read_strided, stride_for

PathLike = str | os.PathLike

# Pixels whose spectra the page embeds by default: a 500 x 500 image at full resolution. At 2
# bytes per value that is 15.5 MB of codes before compression and 20.7 MB as base64; band-wise
# differences compress to about 60 % of that on reconstructed photos, so pages stay under ~20 MB.
DEFAULT_MAX_PIXELS = 250_000
# Code marking a value that is not a finite number (NaN, inf); finite values use 0..QUANT_LEVELS.
NON_FINITE_CODE = 65535
QUANT_LEVELS = 65534
VIEWER_TEMPLATE = "data/viewer.html"
_DATA_MARK = "/*GMSR_DATA*/null"


@dataclass
class Quantised:
    """A cube as 16-bit codes: value = lo[b] + code * step[b] (float64 arithmetic), where lo is
    the band's smallest finite value and step = (max - min) / 65534 (1.0 for a flat band), so
    every finite value is within step / 2 of its code's value; code 65535 = not finite.
    `codes`: (h, w, B) uint16; lo, hi (largest finite value), step: (B,) float64."""

    codes: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    step: np.ndarray

    def values(self) -> np.ndarray:
        """The (h, w, B) float64 values the codes stand for (NaN for NON_FINITE_CODE), as the page computes them."""
        out = self.lo + self.codes.astype(np.float64) * self.step
        return np.where(self.codes == NON_FINITE_CODE, np.nan, out)


def quantise(values: np.ndarray) -> Quantised:
    """(h, w, B) reflectance to per-band linear 16-bit codes (see Quantised)."""
    values = np.asarray(values, dtype=np.float32)
    flat = values.reshape(-1, values.shape[-1]).astype(np.float64)
    finite = np.isfinite(flat)
    with np.errstate(invalid="ignore"):
        lo = np.where(finite.any(axis=0), np.min(np.where(finite, flat, np.inf), axis=0), 0.0)
        hi = np.where(finite.any(axis=0), np.max(np.where(finite, flat, -np.inf), axis=0), 0.0)
    step = np.where(hi > lo, (hi - lo) / QUANT_LEVELS, 1.0)
    codes = np.rint((np.where(finite, flat, lo) - lo) / step)
    codes = np.where(finite, np.clip(codes, 0, QUANT_LEVELS), NON_FINITE_CODE).astype(np.uint16)
    return Quantised(codes.reshape(values.shape), lo, hi, step)


def pack_codes(codes: np.ndarray) -> bytes:
    """zlib stream of the codes as the page unpacks them: per pixel, the first band's code then
    each band's difference from the previous one (mod 65536; neighbouring bands are alike, so the
    high bytes are mostly 0 or 255), all high bytes first, then all low bytes."""
    flat = codes.reshape(-1, codes.shape[-1]).astype(np.uint16)
    delta = flat.copy()
    delta[:, 1:] = flat[:, 1:] - flat[:, :-1]  # uint16 arithmetic wraps mod 65536
    delta = delta.ravel()
    planes = np.concatenate([(delta >> 8).astype(np.uint8), (delta & 0xFF).astype(np.uint8)])
    return zlib.compress(planes.tobytes(), 6)


def _png_data_uri(pixels: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _band_stretch(values: np.ndarray) -> list[list[float]]:
    """Per band the 1st and 99th percentile of the finite values (the band pictures' grey range,
    as `gmsr preview --band`'s default stretch)."""
    flat = values.reshape(-1, values.shape[-1])
    out = []
    for column in flat.T:
        finite = column[np.isfinite(column)]
        lo, hi = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
        out.append([float(lo), float(hi) if hi > lo else float(lo) + 1e-6])
    return out


@dataclass
class ViewerResult:
    """What write_viewer wrote: the page, the cube's size, the step of the embedded grid (1: every
    pixel) and its size, and the page's size in bytes."""

    path: Path
    height: int
    width: int
    step: int
    grid_height: int
    grid_width: int
    bytes: int


def viewer_page(cube, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None) -> tuple[str, int]:
    """The viewer page of an open Cube as HTML text, and the step of its pixel grid.

    The page embeds every `step`-th pixel in each direction (step 1 when H * W <= max_pixels,
    otherwise the smallest step that fits) as 16-bit codes (see quantise, pack_codes), and a
    PNG of those pixels (true colour on the 400-700 nm grid, see spectrum.picture).
    """
    step = stride_for(cube.height, cube.width, max_pixels)
    values = read_strided(cube, step)
    pixels, shows = picture(values, cube.wavelengths_nm)
    q = quantise(values)
    data = {
        "name": name if name is not None else (cube.path.name if cube.path is not None else "cube"),
        "sourceHeight": cube.height,
        "sourceWidth": cube.width,
        "height": int(values.shape[0]),
        "width": int(values.shape[1]),
        "bands": cube.bands,
        "step": step,
        "wavelengths": [float(w) for w in cube.wavelengths_nm],
        "lo": [float(v) for v in q.lo],
        "scale": [float(v) for v in q.step],
        "hi": [float(v) for v in q.hi],
        "nonFiniteCode": NON_FINITE_CODE,
        "stretch": _band_stretch(values),
        "shows": shows,
        "preview": _png_data_uri(pixels),
        "codes": base64.b64encode(pack_codes(q.codes)).decode("ascii"),
    }
    template = importlib.resources.files("gmsr_cli").joinpath(VIEWER_TEMPLATE).read_text(encoding="utf-8")
    if _DATA_MARK not in template:
        raise GmsrError(f"internal error: the viewer template has no {_DATA_MARK} mark")
    # "</" inside a <script> would end it early (a cube named "</script>.h5").
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return template.replace(_DATA_MARK, payload, 1), step


def default_viewer_path(cube_path: PathLike) -> Path:
    """Where the page goes when no output is given: beside the cube, CUBE_view.html."""
    cube_path = Path(cube_path)
    return cube_path.with_name(f"{cube_path.stem}_view.html")


def check_viewer_path(path: PathLike, overwrite: bool) -> Path:
    """The page's path, checked before any work: an .html name, its folder exists, and no file
    there unless `overwrite`. Raises FormatError / GmsrError / OutputExistsError."""
    from .io.atomic import check_output_paths

    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise FormatError(f"{path}: the viewer is an HTML page; name it .html")
    check_output_paths([path], overwrite)
    return path


def write_viewer(cube_path: PathLike, output_path: PathLike | None = None, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                 overwrite: bool = False) -> ViewerResult:
    """Write the viewer page of a cube file (any format gmsr reads) to `output_path` (default:
    beside the cube, CUBE_view.html), atomically; an existing page is replaced only with
    `overwrite`. The page needs no server or network: open it in any current browser."""
    from .io import read_cube
    from .io.atomic import atomic_output

    if max_pixels < 1:
        raise GmsrError(f"--max-pixels {max_pixels}: give 1 or more")
    output_path = check_viewer_path(output_path if output_path is not None else default_viewer_path(cube_path),
                                    overwrite)
    with read_cube(cube_path) as cube:
        html, step = viewer_page(cube, max_pixels=max_pixels)
        height, width = cube.height, cube.width
    encoded = html.encode("utf-8")
    with atomic_output([output_path], overwrite=overwrite) as files:
        files.path.write_bytes(encoded)
    return ViewerResult(path=output_path, height=height, width=width, step=step,
                        grid_height=-(-height // step), grid_width=-(-width // step), bytes=len(encoded))
