"""Cubes to pictures: true-colour and camera renderings, single-band and false-colour previews, colour maps."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import CubeError, FormatError, GmsrError
from .reconstruct import check_outputs

PathLike = str | os.PathLike

# Row blocks read from a cube for rendering, previews and statistics: about this many bytes each.
_BLOCK_BYTES = 64 * 2**20
# Pixels sampled for percentiles (contrast stretch, auto exposure): enough for stable 1 %/99 % points.
_SAMPLE_PIXELS = 1 << 20

PICTURE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

# Colour maps as anchor colours at equal steps (matplotlib's maps sampled at 10 points; linear
# interpolation between them is within a few 8-bit levels of the originals).
_CMAP_ANCHORS = {
    "gray": ("#000000", "#ffffff"),
    "viridis": ("#440154", "#482878", "#3e4a89", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6dcd59",
                "#b4de2c", "#fde725"),
    "magma": ("#000004", "#180f3e", "#451077", "#721f81", "#9f2f7f", "#cd4071", "#f1605d", "#fd9567",
              "#fec98d", "#fcfdbf"),
    "inferno": ("#000004", "#1b0c42", "#4b0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925", "#fb9a06",
                "#f7d03c", "#fcffa4"),
}
CMAP_NAMES = tuple(_CMAP_ANCHORS)
DEFAULT_STRETCH = (1.0, 99.0)


def colormap(name: str) -> np.ndarray:
    """(256, 3) uint8 lookup table of a colour map (gray, viridis, magma, inferno)."""
    if name not in _CMAP_ANCHORS:
        raise GmsrError(f"unknown colour map {name!r}; choose one of: {', '.join(CMAP_NAMES)}")
    anchors = np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in _CMAP_ANCHORS[name]], dtype=np.float64)
    positions = np.linspace(0.0, 1.0, len(anchors))
    x = np.linspace(0.0, 1.0, 256)
    table = np.stack([np.interp(x, positions, anchors[:, c]) for c in range(3)], axis=-1)
    return np.rint(table).astype(np.uint8)


def _check_picture_path(path: Path, overwrite: bool) -> None:
    if path.suffix.lower() not in PICTURE_EXTENSIONS:
        raise FormatError(f"{path}: pictures are written as {', '.join(PICTURE_EXTENSIONS)}; "
                          f"got extension {path.suffix or '(none)'!r}")
    check_outputs([path], overwrite)


def block_rows(cube) -> int:
    """Rows of ``cube`` per block when it is read block by block (about 64 MB of float32)."""
    return max(1, _BLOCK_BYTES // max(1, cube.width * cube.bands * 4))


def _check_render_grid(cube) -> None:
    from .spectra import on_render_grid

    wl = cube.wavelengths_nm
    if not on_render_grid(wl):
        span = f"{wl.min():g}-{wl.max():g} nm" if wl.size else "none"
        raise CubeError(f"{cube.path}: rendering needs the 31 bands 400-700 nm at 10 nm; this cube has "
                        f"{wl.size} bands ({span}); use --band or --rgb for a preview")


def _render_cube(cube, camera: str, gain: float = 1.0) -> np.ndarray:
    """(H, W, 3) uint8 of a Cube through ``camera``, read in row blocks."""
    from .spectra import render_rgb

    out = np.empty((cube.height, cube.width, 3), dtype=np.uint8)
    for y0, block in cube.iter_rows(block_rows(cube)):
        if gain != 1.0:
            block *= np.float32(gain)
        out[y0:y0 + block.shape[0]] = render_rgb(block, camera)
    return out


def render_file(cube_path: PathLike, output_path: PathLike, *, camera: str = "srgb",
                overwrite: bool = False) -> Path:
    """Render a 31-band cube file (400-700 nm) to an 8-bit RGB picture (.png, .jpg, .tif) as the
    camera model ``camera`` (srgb, cie1964 or a measured camera) would see it, exactly as
    spectra.render_rgb. Returns the picture's path."""
    from .io import read_cube, write_rgb
    from .spectra import camera_matrix

    output_path = Path(output_path)
    camera_matrix(camera)  # an unknown camera fails before any work
    _check_picture_path(output_path, overwrite)
    with read_cube(cube_path) as cube:
        _check_render_grid(cube)
        rgb = _render_cube(cube, camera)
    return write_rgb(output_path, rgb, overwrite=overwrite)


def _sample(values: np.ndarray) -> np.ndarray:
    """At most about _SAMPLE_PIXELS values of an (H, W) or (H, W, C) array, evenly strided."""
    step = max(1, int(np.sqrt(values.shape[0] * values.shape[1] / _SAMPLE_PIXELS)))
    return values[::step, ::step]


def _stretch(values: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Map the low/high percentiles of ``values`` (per channel if 3-D) to 0..255 -> uint8."""
    lo_pct, hi_pct = percentiles
    sample = _sample(values)
    sample = sample.reshape(-1, sample.shape[-1]) if values.ndim == 3 else sample.reshape(-1, 1)
    finite = [col[np.isfinite(col)] for col in sample.T]
    lo = np.array([np.percentile(c, lo_pct) if c.size else 0.0 for c in finite], dtype=np.float32)
    hi = np.array([np.percentile(c, hi_pct) if c.size else 1.0 for c in finite], dtype=np.float32)
    span = np.where(hi > lo, hi - lo, 1.0).astype(np.float32)
    if values.ndim == 2:
        lo, span = lo[0], span[0]
    scaled = np.nan_to_num((values - lo) / span, nan=0.0)
    return np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def _bands(cube, indices: Sequence[int]) -> np.ndarray:
    """(H, W, len(indices)) float32 reflectance of some bands, read in row blocks."""
    out = np.empty((cube.height, cube.width, len(indices)), dtype=np.float32)
    for y0, block in cube.iter_rows(block_rows(cube)):
        out[y0:y0 + block.shape[0]] = block[:, :, list(indices)]
    return out


def resolve_band(cube, band: int | float | str) -> int:
    """The index of ``band`` in ``cube``: an int is an index; a string "560nm" / "560 nm" or a
    float is a wavelength (nearest band); a bare whole number below the band count ("12") is an
    index, any other number ("560") a wavelength in nm. Raises CubeError outside the cube."""
    if isinstance(band, str):
        text = band.strip()
        if re.fullmatch(r"\d+", text) and int(text) < cube.bands:
            return cube.band_index(int(text))
    return cube.band_index(band)


def _label(pixels: np.ndarray, text: str) -> np.ndarray:
    """Draw ``text`` in the top-left corner on a dark box, sized to the picture."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(pixels)
    size = max(10, min(pixels.shape[0], pixels.shape[1]) // 16)
    try:
        font = ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or without FreeType: the bitmap font
        font = ImageFont.load_default()
    draw = ImageDraw.Draw(image)
    pad = max(2, size // 4)
    left, top, right, bottom = draw.textbbox((pad, pad), text, font=font)
    draw.rectangle((0, 0, right + pad, bottom + pad), fill=0)
    draw.text((pad, pad), text, font=font, fill=255 if image.mode == "L" else (255, 255, 255))
    return np.asarray(image)


def preview_image(cube, *, band: int | float | str | None = None, rgb: Sequence[int | float | str] | None = None,
                  cmap: str | None = None, stretch: tuple[float, float] | None = None,
                  exposure: float | str | None = None, label: bool = True) -> np.ndarray:
    """A picture of a Cube: uint8 (H, W) grey or (H, W, 3) RGB.

    Default: true colour, the cube rendered as an sRGB photo (``exposure``: None or 1 = as is,
    a number multiplies the reflectance, "auto" brings the 99th percentile of the brightest
    channel to white). ``band``: one band (see resolve_band) in grey, or through ``cmap``.
    ``rgb``: three bands as red, green, blue. band and rgb are contrast-stretched between the
    ``stretch`` percentiles (default 1, 99; per channel for rgb) and labelled unless ``label``
    is False.
    """
    if band is not None and rgb is not None:
        raise GmsrError("choose either --band or --rgb, not both")
    if band is None and rgb is None:
        if stretch is not None or cmap is not None:
            raise GmsrError("--stretch and --cmap apply to --band and --rgb previews; true colour takes --exposure")
        return _true_colour(cube, exposure)
    if exposure is not None:
        raise GmsrError("--exposure applies to true-colour previews; --band and --rgb take --stretch")
    percentiles = DEFAULT_STRETCH if stretch is None else tuple(stretch)
    if not (0 <= percentiles[0] < percentiles[1] <= 100):
        raise GmsrError(f"--stretch {percentiles[0]:g},{percentiles[1]:g}: need 0 <= low < high <= 100")
    wl = cube.wavelengths_nm
    if band is not None:
        index = resolve_band(cube, band)
        pixels = _stretch(_bands(cube, [index])[:, :, 0], percentiles)
        if cmap is not None:
            pixels = colormap(cmap)[pixels]
        text = f"{wl[index]:g} nm (band {index})"
    else:
        if len(rgb) != 3:
            raise GmsrError(f"--rgb needs three bands (red, green, blue), got {len(rgb)}")
        if cmap is not None:
            raise GmsrError("--cmap applies to single-band previews (--band)")
        indices = [resolve_band(cube, b) for b in rgb]
        pixels = _stretch(_bands(cube, indices), percentiles)
        text = "R {:g} G {:g} B {:g} nm".format(*(wl[i] for i in indices))
    return _label(pixels, text) if label else pixels


def _true_colour(cube, exposure: float | str | None) -> np.ndarray:
    from .spectra import camera_matrix

    _check_render_grid(cube)
    if exposure is None:
        gain = 1.0
    elif isinstance(exposure, str) and exposure.strip().lower() == "auto":
        matrix = camera_matrix("srgb").astype(np.float32)
        brightest = []
        step = max(1, int(np.sqrt(cube.height * cube.width / _SAMPLE_PIXELS)))
        for _, block in cube.iter_rows(block_rows(cube)):
            brightest.append((block[::step, ::step] @ matrix).max(axis=-1).ravel())
        values = np.concatenate(brightest)
        values = values[np.isfinite(values)]
        top = float(np.percentile(values, 99)) if values.size else 0.0
        gain = 1.0 / top if top > 0 else 1.0
    else:
        try:
            gain = float(exposure)
        except ValueError:
            raise GmsrError(f"--exposure {exposure!r}: give 'auto' or a positive number") from None
        if not gain > 0:
            raise GmsrError(f"--exposure {exposure!r}: give 'auto' or a positive number")
    return _render_cube(cube, "srgb", gain)


def preview_file(cube_path: PathLike, output_path: PathLike, *, band: int | float | str | None = None,
                 rgb: Sequence[int | float | str] | None = None, cmap: str | None = None,
                 stretch: tuple[float, float] | None = None, exposure: float | str | None = None,
                 label: bool = True, overwrite: bool = False) -> Path:
    """Write preview_image of a cube file to a picture (.png, .jpg, .tif). Returns its path."""
    from .io import read_cube, write_rgb

    output_path = Path(output_path)
    if cmap is not None:
        colormap(cmap)
    _check_picture_path(output_path, overwrite)
    with read_cube(cube_path) as cube:
        pixels = preview_image(cube, band=band, rgb=rgb, cmap=cmap, stretch=stretch, exposure=exposure,
                               label=label)
    return write_rgb(output_path, pixels, overwrite=overwrite)


def default_preview_path(cube_path: PathLike, band: str | None = None, rgb: Sequence[str] | None = None) -> Path:
    """Where a preview goes when no output is given: beside the cube, named after what it shows."""
    cube_path = Path(cube_path)
    if band is not None:
        tag = "band" + re.sub(r"[^0-9a-zA-Z.]+", "", str(band))
    elif rgb is not None:
        tag = "rgb" + "-".join(re.sub(r"[^0-9a-zA-Z.]+", "", str(b)) for b in rgb)
    else:
        tag = "preview"
    return cube_path.with_name(f"{cube_path.stem}_{tag}.png")
