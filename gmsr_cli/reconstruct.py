"""Reconstruction: a photo (array or file) to its cube, in memory or streamed to a cube file."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from .colour import DEFAULT_EXACT_COLOUR, correct_cube, correcting_rows, resolve_exact_colour
from .errors import GmsrError, InputImageError, OutputExistsError
from .model.loading import LoadedModel, load_model
from .model.weights import DEFAULT_WEIGHTS
from .tiling import DEFAULT_OVERLAP_PX, DEFAULT_TILE_PX, ProgressCallback, reconstruct_array, tiled_forward

PathLike = str | os.PathLike


@dataclass
class ReconstructResult:
    """What reconstruct_file did: files written (final names), cube size, seconds, conversion warnings."""

    input_path: Path
    output_paths: list[Path]
    height: int
    width: int
    seconds: float
    warnings: list[str] = field(default_factory=list)


def _compact_pixels(image) -> np.ndarray:
    """read_rgb's float32 (H, W, 3) back to its stored integers (exact: it was n / 255 or n / 65535),
    so a big photo costs 1-2 bytes per value while the tiles are converted one at a time."""
    scale, dtype = (255.0, np.uint8) if image.bit_depth == 8 else (65535.0, np.uint16)
    out = np.empty(image.data.shape, dtype=dtype)
    step = 256  # rows at a time: no full-size float temporaries
    for y0 in range(0, out.shape[0], step):
        out[y0:y0 + step] = np.rint(image.data[y0:y0 + step] * np.float32(scale))
    return out


def _read_photo(path: Path, on_warning: Callable[[str], None] | None):
    from .io import read_rgb

    image = read_rgb(path)
    for message in image.warnings:
        if on_warning is not None:
            on_warning(f"{path}: {message}")
    return image


def reconstruct_image(image: np.ndarray | PathLike, *, model: LoadedModel | None = None,
                      weights: PathLike | None = DEFAULT_WEIGHTS, device: str = "auto", backend: str = "auto",
                      tile_px: int = DEFAULT_TILE_PX, overlap_px: int = DEFAULT_OVERLAP_PX,
                      batch_tiles: int | None = None, tta: bool = False,
                      exact_colour: bool | None = DEFAULT_EXACT_COLOUR,
                      progress: ProgressCallback | None = None) -> np.ndarray:
    """A photo's cube in memory: (H, W, 31) float32 reflectance, bands 400..700 nm at 10 nm.

    image: (H, W, 3) RGB float in [0, 1] (or uint8 / uint16), or the path of a photo. ``model``
    (from load_model) saves loading the weights again; otherwise weights/device/backend are used.
    exact_colour: correct each pixel's spectrum so that the weights' camera model renders it back to
    the photo's linear RGB (gmsr_cli.colour; pixels with a clipped channel are left as they are);
    None: as the weights' card says (colour.resolve_exact_colour).
    For photos larger than memory allows, use reconstruct_file, which streams to disk.
    """
    if isinstance(image, (str, os.PathLike)):
        image = _compact_pixels(_read_photo(Path(image), None))  # as reconstruct_file: same cube, bit for bit
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputImageError(f"reconstruct_image needs an (H, W, 3) RGB array, got shape {image.shape}")
    if model is None:
        model = load_model(weights, device, backend)
    cube = reconstruct_array(model.runner, image, tile_px=tile_px, overlap_px=overlap_px,
                             batch_tiles=batch_tiles, device=model.device, tta=tta, progress=progress)
    return correct_cube(cube, image, model.camera) if resolve_exact_colour(exact_colour, model) else cube


def provenance_attrs(input_path: Path, model: LoadedModel, tile_px: int, overlap_px: int, tta: bool,
                     bit_depth: int | None = None, exact_colour: bool = False) -> dict[str, Any]:
    """The attributes stored with a reconstructed cube (the writer adds version and date)."""
    info = model.weights
    return {
        "software": "gmsr-cli",
        "source_image": str(input_path),
        "source_bit_depth": bit_depth,
        "weights": info.name if info is not None else "random-init",
        "weights_sha256": info.sha256 if info is not None else None,
        "camera": model.camera,
        "tile_px": int(tile_px),
        "overlap_px": int(overlap_px),
        "tta": int(bool(tta)),
        "exact_colour": int(bool(exact_colour)),
        "units": "reflectance",
    }


def reconstruct_file(input_path: PathLike, output_path: PathLike, *, model: LoadedModel | None = None,
                     weights: PathLike | None = DEFAULT_WEIGHTS, device: str = "auto", backend: str = "auto",
                     tile_px: int = DEFAULT_TILE_PX, overlap_px: int = DEFAULT_OVERLAP_PX,
                     batch_tiles: int | None = None, tta: bool = False, format: str | None = None,
                     dtype: str = "float32", overwrite: bool = False,
                     exact_colour: bool | None = DEFAULT_EXACT_COLOUR,
                     progress: ProgressCallback | None = None,
                     on_warning: Callable[[str], None] | None = None) -> ReconstructResult:
    """Reconstruct a photo and stream its (H, W, 31) cube to ``output_path`` tile row by tile row.

    The format comes from ``format`` (hdf5, envi, mat, tiff, npy) or the extension. The output is
    written under a temporary name and renamed when complete: on any error or interrupt nothing is
    left under the final name and an existing file is untouched; an existing output raises
    OutputExistsError unless ``overwrite``. Conversion warnings (alpha dropped...) go to
    ``on_warning`` one line each; progress(done, total) counts tiles. ``exact_colour``: as in
    reconstruct_image, applied to each finished row block; recorded in the cube's attrs.
    """
    from . import interrupts
    from .firstrun import first_run_note
    from .io import image_size, open_cube_writer
    from .io.limits import check_pixels
    from .io.registry import check_output_space, output_format
    from .spectra import WAVELENGTHS_NM

    start = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    output_format(output_path, format)  # an unknown or contradictory format fails before any work
    outputs = output_paths(output_path, format)
    if any(p.resolve() == input_path.resolve() for p in outputs):
        raise GmsrError(f"{input_path}: the cube would be written over the photo itself; choose another output (-o)")
    check_outputs(outputs, overwrite)  # before the model loads or the photo is read
    height, width = image_size(input_path)
    check_pixels(input_path, height, width)  # a decompression bomb is refused before the model loads
    check_output_space(output_path, height, width, len(WAVELENGTHS_NM), format=format, dtype=dtype)
    if model is None:
        model = load_model(weights, device, backend)
    exact_colour = resolve_exact_colour(exact_colour, model)
    note = first_run_note(model.device, model.backend) if on_warning is not None else None
    if note is not None:
        on_warning(note)  # else the first tile looks like a hang
    image = _read_photo(input_path, on_warning)
    height, width, warnings = image.height, image.width, list(image.warnings)
    attrs = provenance_attrs(input_path, model, tile_px, overlap_px, tta, image.bit_depth, exact_colour)
    pixels = _compact_pixels(image)
    del image
    with open_cube_writer(output_path, height, width, WAVELENGTHS_NM, format=format, dtype=dtype,
                          overwrite=overwrite, attrs=attrs) as writer:
        def write(y0: int, block: np.ndarray) -> None:
            interrupts.check()  # a safe point: a Ctrl-C swallowed by a finalizer stops the run here
            writer.write_rows(y0, block)

        def on_progress(done: int, total: int) -> None:
            interrupts.check()
            if progress is not None:
                progress(done, total)

        on_rows = correcting_rows(write, pixels, model.camera) if exact_colour else write
        tiled_forward(model.runner, pixels, tile_px=tile_px, overlap_px=overlap_px, batch_tiles=batch_tiles,
                      device=model.device, tta=tta, on_rows=on_rows, progress=on_progress)
    return ReconstructResult(input_path=input_path, output_paths=outputs, height=height, width=width,
                             seconds=time.perf_counter() - start, warnings=warnings)


def check_outputs(paths: Iterable[Path], overwrite: bool) -> None:
    """Refuse outputs that cannot be written, before any slow work: a folder that does not exist,
    or a file that exists without ``overwrite`` (the writers check again when they rename)."""
    for path in paths:
        folder = path.parent
        if not folder.is_dir():
            raise GmsrError(f"{path}: the folder {folder} does not exist; create it or choose another output")
        if path.exists() and not overwrite:
            raise OutputExistsError(f"{path} already exists; pass --overwrite to replace it")


def output_paths(path: PathLike, format: str | None = None) -> list[Path]:
    """The files a cube output writes (ENVI: the .hdr and its data file)."""
    from .io.registry import output_paths as _output_paths

    return _output_paths(Path(path), format)
