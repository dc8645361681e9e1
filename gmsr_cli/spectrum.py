"""Spectra of pixels and boxes of a cube, read without loading the cube, as numbers (CSV, JSON) or a plot."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import CubeError, FormatError, GmsrError
from .spectra import on_render_grid

PathLike = str | os.PathLike

PLOT_EXTENSIONS = (".png", ".svg", ".pdf")
NUMBER_EXTENSIONS = {".csv": "csv", ".json": "json"}
# Longest side of the thumbnail beside the plot, in cube pixels (the cube is read strided for it).
THUMBNAIL_SIDE = 320
# Bytes of float64 per block when box statistics stream through a box.
_BOX_BLOCK_BYTES = 32 * 2**20
# Bytes of float32 output per block when a strided copy of a cube is read.
_STRIDE_BLOCK_BYTES = 64 * 2**20
# Lines for spectra whose colour cannot be rendered (cubes not on the 400-700 nm grid).
_FALLBACK_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")

Point = tuple[int, int]
Box = tuple[int, int, int, int]


# ---------------------------------------------------------------------------------------------
# Coordinates
# ---------------------------------------------------------------------------------------------


def parse_point(text: str) -> Point:
    """"X,Y" -> (x, y): X the column, Y the row, both counted from 0. Raises GmsrError."""
    match = re.fullmatch(r"\s*(-?\d+)\s*,\s*(-?\d+)\s*", str(text))
    if not match:
        raise GmsrError(f"--at {text!r}: give a pixel as X,Y (column, row, counted from 0), e.g. --at 120,45")
    return int(match.group(1)), int(match.group(2))


def parse_box(text: str) -> Box:
    """"X0,Y0,X1,Y1" -> (x0, y0, x1, y1): columns x0..x1-1 and rows y0..y1-1 (the end excluded,
    as in Python slices and PIL crop boxes). Raises GmsrError."""
    parts = str(text).split(",")
    if len(parts) != 4 or not all(re.fullmatch(r"\s*-?\d+\s*", p) for p in parts):
        raise GmsrError(f"--box {text!r}: give four whole numbers X0,Y0,X1,Y1 (columns X0..X1-1, "
                        "rows Y0..Y1-1, counted from 0), e.g. --box 10,20,30,40")
    x0, y0, x1, y1 = (int(p) for p in parts)
    if x1 <= x0 or y1 <= y0:
        raise GmsrError(f"--box {text}: X1 must be greater than X0 and Y1 greater than Y0 (the box covers "
                        "columns X0..X1-1 and rows Y0..Y1-1)")
    return x0, y0, x1, y1


def _extent(cube) -> str:
    where = f"{cube.path} is" if cube.path is not None else "the cube is"
    return (f"{where} {cube.width} x {cube.height} pixels: X (column) 0-{cube.width - 1}, "
            f"Y (row) 0-{cube.height - 1}")


def check_point(cube, point: Point) -> None:
    """Raise GmsrError when pixel (x, y) lies outside the cube."""
    x, y = point
    if not (0 <= x < cube.width and 0 <= y < cube.height):
        raise GmsrError(f"--at {x},{y} is outside the image; {_extent(cube)}")


def check_box(cube, box: Box) -> None:
    """Raise GmsrError when a box (x0, y0, x1, y1), end excluded, reaches outside the cube."""
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= cube.width and 0 <= y0 < y1 <= cube.height):
        raise GmsrError(f"--box {x0},{y0},{x1},{y1} reaches outside the image (X1 and Y1 may be at most "
                        f"{cube.width} and {cube.height}); {_extent(cube)}")


# ---------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------


@dataclass
class PixelSpectrum:
    """One pixel's spectrum: x (column), y (row), values (B,) float32 reflectance, and its
    true colour as "#rrggbb" (None when the cube is not on the 400-700 nm grid)."""

    x: int
    y: int
    values: np.ndarray
    colour: str | None = None

    @property
    def label(self) -> str:
        return f"x={self.x} y={self.y}"


@dataclass
class BoxSpectrum:
    """Statistics over a box, columns x0..x1-1 and rows y0..y1-1: per band the mean and the
    population standard deviation (ddof 0, as numpy's default), float64 (B,), over the finite
    values (count (B,) of them); colour: the true colour of the mean spectrum."""

    x0: int
    y0: int
    x1: int
    y1: int
    mean: np.ndarray
    std: np.ndarray
    count: np.ndarray
    colour: str | None = None

    @property
    def pixels(self) -> int:
        return (self.x1 - self.x0) * (self.y1 - self.y0)

    @property
    def label(self) -> str:
        return f"box x={self.x0}-{self.x1 - 1} y={self.y0}-{self.y1 - 1}"


@dataclass
class Spectra:
    """What `gmsr spectrum` shows: the cube's wavelengths (B,) nm, pixel and box spectra."""

    wavelengths_nm: np.ndarray
    pixels: list[PixelSpectrum] = field(default_factory=list)
    boxes: list[BoxSpectrum] = field(default_factory=list)
    cube_path: Path | None = None
    shape: tuple[int, int, int] = (0, 0, 0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; float32 pixel values convert to floats exactly, non-finite ones to None."""
        def numbers(values: np.ndarray) -> list[float | None]:
            return [float(v) if math.isfinite(v) else None for v in np.asarray(values).tolist()]

        return {
            "cube": str(self.cube_path) if self.cube_path is not None else None,
            "shape": list(self.shape),
            "coordinates": "x = column, y = row, from 0; boxes cover x0..x1-1, y0..y1-1",
            "wavelengths_nm": [float(w) for w in self.wavelengths_nm],
            "pixels": [{"x": p.x, "y": p.y, "colour": p.colour, "values": numbers(p.values)} for p in self.pixels],
            "boxes": [{"x0": b.x0, "y0": b.y0, "x1": b.x1, "y1": b.y1, "pixels": b.pixels,
                       "colour": b.colour, "mean": numbers(b.mean), "std": numbers(b.std),
                       "count": [int(c) for c in b.count]} for b in self.boxes],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    def to_csv(self) -> str:
        """One row per wavelength: wavelength_nm, then a column per pixel and two (mean, std) per
        box; 9 significant digits, which reproduce float32 values exactly."""
        columns: list[tuple[str, np.ndarray]] = [(p.label, p.values) for p in self.pixels]
        for b in self.boxes:
            columns += [(f"{b.label} mean", b.mean), (f"{b.label} std", b.std)]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["wavelength_nm"] + [name for name, _ in columns])
        for i, wl in enumerate(self.wavelengths_nm):
            writer.writerow([f"{wl:g}"] + [f"{float(values[i]):.9g}" for _, values in columns])
        return out.getvalue()


def pixel_values(cube, point: Point) -> np.ndarray:
    """(B,) float32 reflectance of pixel (x, y), reading only that pixel's stretch of the file."""
    check_point(cube, point)
    x, y = point
    return cube.read_window(y, y + 1, x, x + 1)[0, 0]


def box_statistics(cube, box: Box, block_bytes: int = _BOX_BLOCK_BYTES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std, count) over a box (x0, y0, x1, y1), each (B,): float64 mean and population
    standard deviation of the finite values, and their int64 count (NaN where a band has none).

    The box is read in row blocks of about `block_bytes` of float64 and the blocks' statistics
    merged (Chan et al.'s pairwise update), so a box of any size costs one block of memory and
    no cancellation.
    """
    check_box(cube, box)
    x0, y0, x1, y1 = box
    bands = cube.bands
    count = np.zeros(bands, dtype=np.int64)
    mean = np.zeros(bands, dtype=np.float64)
    m2 = np.zeros(bands, dtype=np.float64)
    rows = max(1, block_bytes // max(1, (x1 - x0) * bands * 8))
    for ya in range(y0, y1, rows):
        block = cube.read_window(ya, min(y1, ya + rows), x0, x1).reshape(-1, bands).astype(np.float64)
        finite = np.isfinite(block)
        n_b = finite.sum(axis=0)
        filled = np.where(finite, block, 0.0)
        mean_b = filled.sum(axis=0) / np.maximum(n_b, 1)
        m2_b = (np.where(finite, block - mean_b, 0.0) ** 2).sum(axis=0)
        total = count + n_b
        safe = np.maximum(total, 1)
        delta = mean_b - mean
        mean = mean + delta * (n_b / safe)
        m2 = m2 + m2_b + delta ** 2 * (count * n_b / safe)
        count = total
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, mean, np.nan)
        std = np.where(count > 0, np.sqrt(m2 / count), np.nan)
    return mean, std, count


def spectrum_colour(values: np.ndarray) -> str:
    """A (31,) reflectance spectrum's sRGB colour as "#rrggbb" (as `gmsr render` would show it;
    non-finite values count as 0)."""
    from .spectra import render_rgb

    rgb = render_rgb(np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0).reshape(1, -1))[0]
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def sample_spectra(cube, points: Sequence[Point] = (), boxes: Sequence[Box] = ()) -> Spectra:
    """The spectra of `points` (x, y) and the statistics of `boxes` (x0, y0, x1, y1) of an open
    Cube, each coordinate checked first (GmsrError names the bad one and the cube's size)."""
    if not points and not boxes:
        raise GmsrError("give at least one pixel (--at X,Y) or box (--box X0,Y0,X1,Y1)")
    for point in points:
        check_point(cube, point)
    for box in boxes:
        check_box(cube, box)
    colours = on_render_grid(cube.wavelengths_nm)
    result = Spectra(wavelengths_nm=cube.wavelengths_nm.copy(), cube_path=cube.path, shape=cube.shape)
    for point in points:
        values = pixel_values(cube, point)
        result.pixels.append(PixelSpectrum(point[0], point[1], values,
                                           spectrum_colour(values) if colours else None))
    for box in boxes:
        mean, std, count = box_statistics(cube, box)
        result.boxes.append(BoxSpectrum(*box, mean=mean, std=std, count=count,
                                        colour=spectrum_colour(mean) if colours else None))
    return result


# ---------------------------------------------------------------------------------------------
# Downsampled copies and their pictures (the plot's thumbnail, the viewer's cube)
# ---------------------------------------------------------------------------------------------


def stride_for(height: int, width: int, max_pixels: int) -> int:
    """The smallest step s with ceil(H / s) * ceil(W / s) <= max_pixels."""
    if max_pixels < 1:
        raise GmsrError(f"the pixel budget must be 1 or more, got {max_pixels}")
    step = max(1, math.ceil(math.sqrt(height * width / max_pixels)))
    while math.ceil(height / step) * math.ceil(width / step) > max_pixels:
        step += 1
    return step


def read_strided(cube, step: int, block_bytes: int = _STRIDE_BLOCK_BYTES) -> np.ndarray:
    """Every `step`-th row and column of a cube, from (0, 0): (ceil(H / step), ceil(W / step), B)
    float32 reflectance, so that pixel (i, j) of the result is pixel (step * i, step * j) of the
    cube. Read in blocks of about `block_bytes` of output, touching only the rows it keeps."""
    out_h, out_w = math.ceil(cube.height / step), math.ceil(cube.width / step)
    out = np.empty((out_h, out_w, cube.bands), dtype=np.float32)
    rows_out = max(1, block_bytes // max(1, out_w * cube.bands * 4))
    for i0 in range(0, out_h, rows_out):
        i1 = min(out_h, i0 + rows_out)
        y0, y1 = i0 * step, min(cube.height, (i1 - 1) * step + 1)
        out[i0:i1] = cube.read_window(y0, y1, 0, cube.width, step=step)
    return out


def picture(values: np.ndarray, wavelengths_nm: np.ndarray) -> tuple[np.ndarray, str]:
    """An (h, w, 3) uint8 picture of an in-memory (h, w, B) reflectance array and what it shows.

    On the 31-band 400-700 nm grid it is true colour (gmsr_cli.pictures.preview_image: sRGB, as
    `gmsr preview` shows it); other grids get the bands nearest 640, 550 and 460 nm as red,
    green and blue, or the middle band in grey when they do not reach that far.
    """
    from .pictures import preview_image
    from .io import Cube

    small = Cube(data=values, wavelengths_nm=wavelengths_nm)
    if on_render_grid(small.wavelengths_nm):
        return preview_image(small), "true colour (sRGB)"
    wl = small.wavelengths_nm
    try:
        pixels = preview_image(small, rgb=[640.0, 550.0, 460.0], label=False)
        picks = [float(wl[small.band_index(nm)]) for nm in (640.0, 550.0, 460.0)]
        return pixels, "false colour R {:g} G {:g} B {:g} nm".format(*picks)
    except CubeError:
        middle = small.bands // 2
        grey = preview_image(small, band=middle, label=False)
        return np.repeat(grey[:, :, None], 3, axis=2), f"band {wl[middle]:g} nm"


# ---------------------------------------------------------------------------------------------
# The plot
# ---------------------------------------------------------------------------------------------


def _halo(width: float):
    from matplotlib import patheffects

    # A dark edge under every line: a spectrum's own colour can be near-white (paper, sky) and
    # would vanish on the white plot otherwise.
    return [patheffects.Stroke(linewidth=width + 1.6, foreground=(0, 0, 0, 0.55)), patheffects.Normal()]


def plot_spectra(spectra: Spectra, path: Path, *, thumbnail: np.ndarray | None = None, thumbnail_step: int = 1,
                 title: str | None = None) -> None:
    """Draw the spectra (reflectance against wavelength in nm) to `path` (.png, .svg, .pdf),
    each pixel in its own colour, boxes as mean with a +/- one standard deviation band, and
    beside them a thumbnail ((h, w, 3) uint8 of every `thumbnail_step`-th pixel) numbering the
    pixels and outlining the boxes. Writes `path` directly (the caller makes it atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    wl = spectra.wavelengths_nm
    fig = Figure(figsize=(10.0, 4.4) if thumbnail is not None else (7.2, 4.4), dpi=100, layout="constrained")
    if thumbnail is not None:
        h, w = thumbnail.shape[:2]
        grid = fig.add_gridspec(1, 2, width_ratios=[1.0, 2.0])
        ax_img, ax = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    else:
        ax_img, ax = None, fig.add_subplot(1, 1, 1)
    entries = [(p.label, p.colour) for p in spectra.pixels] + [(b.label, b.colour) for b in spectra.boxes]
    colours = [c or _FALLBACK_COLOURS[i % len(_FALLBACK_COLOURS)] for i, (_, c) in enumerate(entries)]
    number = 0
    for p in spectra.pixels:
        colour = colours[number]
        number += 1
        ax.plot(wl, p.values, color=colour, lw=2.0, marker="o", ms=3.0, path_effects=_halo(2.0),
                label=f"{number}: {p.label}")
    for b in spectra.boxes:
        colour = colours[number]
        number += 1
        ax.fill_between(wl, b.mean - b.std, b.mean + b.std, color=colour, alpha=0.25, lw=0)
        ax.plot(wl, b.mean, color=colour, lw=2.0, ls="--", path_effects=_halo(2.0),
                label=f"{number}: {b.label} ({b.pixels} px), mean \u00b1 std")
    for i, values in enumerate([p.values for p in spectra.pixels] + [b.mean for b in spectra.boxes]):
        last = np.flatnonzero(np.isfinite(values))
        if last.size:
            # The number at the line's end ties it to the legend and the thumbnail even where
            # two pixels' colours look alike (dark pixels are all near black).
            ax.annotate(str(i + 1), (float(wl[last[-1]]), float(values[last[-1]])), xytext=(5, 0),
                        textcoords="offset points", va="center", fontsize=8.5, color="#222222",
                        annotation_clip=False)
    ax.set_xlabel("wavelength (nm)")
    ax.set_ylabel("reflectance")
    ax.set_xlim(float(wl.min()), float(wl.max()))
    ax.grid(True, color="#dddddd", lw=0.6)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8, loc="best", framealpha=0.85)
    name = title if title is not None else (spectra.cube_path.name if spectra.cube_path is not None else "cube")
    ax.set_title(name, fontsize=10, loc="left")
    if ax_img is not None:
        s = thumbnail_step
        # Thumbnail pixel (i, j) is cube pixel (s * j, s * i): cube point (x, y) is drawn at (x / s, y / s).
        ax_img.imshow(thumbnail, interpolation="nearest")
        ax_img.set_xticks([])
        ax_img.set_yticks([])
        ax_img.set_title(f"{spectra.shape[1]} x {spectra.shape[0]} px" + (f" (shown 1:{s})" if s > 1 else ""),
                         fontsize=9)
        number = 0
        for p in spectra.pixels:
            colour = colours[number]
            number += 1
            cx, cy = p.x / s, p.y / s
            ax_img.plot([cx], [cy], marker="o", ms=10, mfc=colour, mec="white", mew=2.0, path_effects=_halo(0.5))
            ax_img.annotate(str(number), (cx, cy), xytext=(6, 5), textcoords="offset points", color="white",
                            fontsize=9, fontweight="bold", path_effects=_halo(0.5))
        for b in spectra.boxes:
            colour = colours[number]
            number += 1
            x0, y0 = (b.x0 - 0.5) / s, (b.y0 - 0.5) / s
            # White outline: the box's own (mean) colour is often that of its surroundings.
            rect = Rectangle((x0, y0), (b.x1 - b.x0) / s, (b.y1 - b.y0) / s, fill=False, ec="white", lw=1.5,
                             path_effects=_halo(1.5))
            ax_img.add_patch(rect)
            ax_img.annotate(str(number), (x0, y0), xytext=(2, 3), textcoords="offset points", color="white",
                            fontsize=9, fontweight="bold", path_effects=_halo(0.5))
        ax_img.set_xlim(-0.5, w - 0.5)
        ax_img.set_ylim(h - 0.5, -0.5)
    fig.savefig(path, format=path.suffix.lower().lstrip("."))


# ---------------------------------------------------------------------------------------------
# The command's job
# ---------------------------------------------------------------------------------------------


def output_kind(path: PathLike) -> str:
    """"plot", "csv" or "json" from an output's extension; FormatError for others."""
    suffix = Path(path).suffix.lower()
    if suffix in PLOT_EXTENSIONS:
        return "plot"
    if suffix in NUMBER_EXTENSIONS:
        return NUMBER_EXTENSIONS[suffix]
    raise FormatError(f"{path}: spectra are written as a plot ({', '.join(PLOT_EXTENSIONS)}) or as numbers "
                      f"(.csv, .json); got extension {Path(path).suffix or '(none)'!r}")


def default_spectrum_path(cube_path: PathLike) -> Path:
    """Where the plot goes when no output is given: beside the cube, CUBE_spectrum.png."""
    cube_path = Path(cube_path)
    return cube_path.with_name(f"{cube_path.stem}_spectrum.png")


def read_spectra(cube_path: PathLike, points: Sequence[Point] = (), boxes: Sequence[Box] = ()) -> Spectra:
    """Open a cube file (any format gmsr reads) and sample it (see sample_spectra)."""
    from .io import read_cube

    with read_cube(cube_path) as cube:
        return sample_spectra(cube, points, boxes)


def write_spectra(cube_path: PathLike, output_path: PathLike, points: Sequence[Point] = (),
                  boxes: Sequence[Box] = (), *, thumbnail: bool = True, overwrite: bool = False) -> Path:
    """Write the spectra of `points` and `boxes` of a cube file to `output_path`: a plot (.png,
    .svg, .pdf; with a thumbnail of the image unless `thumbnail` is False: it reads a strided
    copy of the whole cube, which for a compressed HDF5 file means decompressing all of it) or
    the numbers (.csv, .json; see Spectra). The output appears only when complete; an existing
    one is replaced only with `overwrite`."""
    from .io import read_cube
    from .io.atomic import atomic_output, check_output_paths

    output_path = Path(output_path)
    kind = output_kind(output_path)
    check_output_paths([output_path], overwrite)  # before reading anything
    with read_cube(cube_path) as cube:
        spectra = sample_spectra(cube, points, boxes)
        small, step = None, 1
        if kind == "plot" and thumbnail:
            step = max(1, math.ceil(max(cube.height, cube.width) / THUMBNAIL_SIDE))
            small, _ = picture(read_strided(cube, step), cube.wavelengths_nm)
    with atomic_output([output_path], overwrite=overwrite) as files:
        if kind == "plot":
            plot_spectra(spectra, files.path, thumbnail=small, thumbnail_step=step)
        else:
            text = spectra.to_json() if kind == "json" else spectra.to_csv()
            files.path.write_text(text, encoding="utf-8")
    return output_path
