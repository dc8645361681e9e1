"""The Python API behind every command: one plain function per job (reconstruct, batch, render, preview, describe)."""

from __future__ import annotations

import glob
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .errors import CubeError, FormatError, GmsrError, InputImageError, OutputExistsError, WeightsError
from .model.weights import DEFAULT_WEIGHTS, WeightsInfo
from .tiling import DEFAULT_OVERLAP_PX, DEFAULT_TILE_PX, ProgressCallback, reconstruct_array, tiled_forward

PathLike = str | os.PathLike

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
WEIGHTS_EXTENSIONS = (".safetensors", ".pt", ".pth", ".ckpt", ".bin")
DEFAULT_FORMAT = "hdf5"
# Row blocks read from a cube for rendering, previews and statistics: about this many bytes each.
_BLOCK_BYTES = 64 * 2**20
# Pixels sampled for percentiles (contrast stretch, auto exposure): enough for stable 1 %/99 % points.
_SAMPLE_PIXELS = 1 << 20


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """GMSR-Net ready for inference: the module (eval mode, on ``device``), its weights' info."""

    module: Any
    weights: WeightsInfo | None
    device: Any

    @property
    def camera(self) -> str:
        """The camera model the weights expect photos from."""
        return self.weights.camera if self.weights is not None else "srgb"


def load_model(weights: PathLike | None = DEFAULT_WEIGHTS, device: str = "auto", backend: str = "auto") -> LoadedModel:
    """Build GMSR-Net with ``weights`` (a shipped name or a file; None: random initialisation, for
    tests) on ``device`` (auto, cpu, cuda[:N]) with the scan ``backend``. Raises WeightsError /
    BackendError with what to do."""
    from .model.weights import build_model

    module, info = build_model(weights=weights, device=device, backend=backend)
    return LoadedModel(module=module, weights=info, device=next(module.parameters()).device)


# ---------------------------------------------------------------------------------------------
# Reconstruction
# ---------------------------------------------------------------------------------------------


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
                      progress: ProgressCallback | None = None) -> np.ndarray:
    """A photo's cube in memory: (H, W, 31) float32 reflectance, bands 400..700 nm at 10 nm.

    image: (H, W, 3) RGB float in [0, 1] (or uint8 / uint16), or the path of a photo. ``model``
    (from load_model) saves loading the weights again; otherwise weights/device/backend are used.
    For photos larger than memory allows, use reconstruct_file, which streams to disk.
    """
    if isinstance(image, (str, os.PathLike)):
        image = _read_photo(Path(image), None).data
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputImageError(f"reconstruct_image needs an (H, W, 3) RGB array, got shape {image.shape}")
    if model is None:
        model = load_model(weights, device, backend)
    return reconstruct_array(model.module, image, tile_px=tile_px, overlap_px=overlap_px,
                             batch_tiles=batch_tiles, device=model.device, tta=tta, progress=progress)


def provenance_attrs(input_path: Path, model: LoadedModel, tile_px: int, overlap_px: int, tta: bool,
                     bit_depth: int | None = None) -> dict[str, Any]:
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
        "units": "reflectance",
    }


def reconstruct_file(input_path: PathLike, output_path: PathLike, *, model: LoadedModel | None = None,
                     weights: PathLike | None = DEFAULT_WEIGHTS, device: str = "auto", backend: str = "auto",
                     tile_px: int = DEFAULT_TILE_PX, overlap_px: int = DEFAULT_OVERLAP_PX,
                     batch_tiles: int | None = None, tta: bool = False, format: str | None = None,
                     dtype: str = "float32", overwrite: bool = False,
                     progress: ProgressCallback | None = None,
                     on_warning: Callable[[str], None] | None = None) -> ReconstructResult:
    """Reconstruct a photo and stream its (H, W, 31) cube to ``output_path`` tile row by tile row.

    The format comes from ``format`` (hdf5, envi, mat, tiff, npy) or the extension. The output is
    written under a temporary name and renamed when complete: on any error or interrupt nothing is
    left under the final name and an existing file is untouched; an existing output raises
    OutputExistsError unless ``overwrite``. Conversion warnings (alpha dropped...) go to
    ``on_warning`` one line each; progress(done, total) counts tiles.
    """
    from .io import format_for, open_cube_writer
    from .spectra import WAVELENGTHS_NM

    start = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    format_for(output_path, format)  # an unknown format fails before any work
    outputs = _output_paths(output_path, format)
    _refuse_existing(outputs, overwrite)  # before the slow part; the writer checks again when it renames
    if model is None:
        model = load_model(weights, device, backend)
    image = _read_photo(input_path, on_warning)
    height, width, warnings = image.height, image.width, list(image.warnings)
    attrs = provenance_attrs(input_path, model, tile_px, overlap_px, tta, image.bit_depth)
    pixels = _compact_pixels(image)
    del image
    with open_cube_writer(output_path, height, width, WAVELENGTHS_NM, format=format, dtype=dtype,
                          overwrite=overwrite, attrs=attrs) as writer:
        tiled_forward(model.module, pixels, tile_px=tile_px, overlap_px=overlap_px, batch_tiles=batch_tiles,
                      device=model.device, tta=tta, on_rows=writer.write_rows, progress=progress)
    return ReconstructResult(input_path=input_path, output_paths=outputs, height=height, width=width,
                             seconds=time.perf_counter() - start, warnings=warnings)


def _output_paths(path: Path, format: str | None) -> list[Path]:
    from .io.registry import output_paths

    return output_paths(path, format)


def _refuse_existing(paths: Iterable[Path], overwrite: bool) -> None:
    if overwrite:
        return
    for path in paths:
        if path.exists():
            raise OutputExistsError(f"{path} already exists; pass --overwrite to replace it")


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchItem:
    """One photo of a batch and the cube file it becomes."""

    input_path: Path
    output_path: Path


@dataclass
class BatchResult:
    """The fate of one BatchItem: status "done", "skipped" (its output was complete) or "failed"."""

    item: BatchItem
    status: str
    message: str = ""
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n): part i of n, numbered from 1 (``1/4`` .. ``4/4``). Raises GmsrError."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise GmsrError(f"--shard {text!r}: expected I/N such as 1/4 (part I of N, counted from 1)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise GmsrError(f"--shard {text}: N must be 1 or more")
    if not 1 <= index <= count:
        raise GmsrError(f"--shard {text}: I must be 1 to {count}; shards are counted from 1 "
                        "(for a 0-based job array use $((TASK_ID + 1)))")
    return index, count


def _has_wildcard(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _glob_base(pattern: str) -> Path:
    """The folder part of a glob pattern before its first wildcard: outputs mirror the tree below it."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if _has_wildcard(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _is_photo(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder)
        return True
    except ValueError:
        return False


def _walk_photos(folder: Path, exclude: Path | None) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        root_path = Path(root)
        # Hidden folders hold temporaries and tool state; the output folder holds our own results.
        dirs[:] = [d for d in dirs if not d.startswith(".")
                   and (exclude is None or not _inside(root_path / d, exclude))]
        found += [root_path / f for f in files if _is_photo(root_path / f)]
    return found


def batch_plan(inputs: Sequence[PathLike], outdir: PathLike, format: str = DEFAULT_FORMAT,
               shard: tuple[int, int] | str | None = None) -> list[BatchItem]:
    """The photos of ``inputs`` and the cube files they become under ``outdir``.

    inputs: folders (searched recursively for PNG, JPEG, TIFF, BMP, WebP; hidden entries and
    ``outdir`` itself skipped), glob patterns (``**`` recursive) or photo files. The tree below
    each folder (or below a pattern's fixed part) is mirrored under outdir, with the extension
    of ``format``. Items are sorted by output path; ``shard`` (i, n) or "i/n" keeps items
    i-1, i-1+n, i-1+2n, ... so that n machines split a batch with every photo in exactly one
    shard. Raises GmsrError for a missing input, no photos, or two photos with one output name.
    """
    from .io import format_for

    fmt = format_for(f"x.{format}" if format else "x.h5", format)
    extension = fmt.extensions[0]
    outdir = Path(outdir)
    exclude = outdir.resolve()
    pairs: list[tuple[Path, Path]] = []  # (photo, path relative to outdir without extension)
    for entry in inputs:
        text = str(entry)
        path = Path(text)
        if path.is_dir():
            # Skip the output folder when it lies inside an input folder (not when it is that folder).
            skip = exclude if not _inside(path, exclude) else None
            pairs += [(p, p.relative_to(path)) for p in _walk_photos(path, skip)]
        elif path.is_file():
            pairs.append((path, Path(path.name)))
        elif _has_wildcard(text):
            base = _glob_base(text)
            for match in sorted(glob.glob(text, recursive=True)):
                p = Path(match)
                if p.is_file() and _is_photo(p) and (_inside(base, exclude) or not _inside(p, exclude)):
                    pairs.append((p, p.relative_to(base)))
        else:
            raise GmsrError(f"batch input not found: {text} (give folders, photo files or glob patterns)")
    if not pairs:
        listed = ", ".join(str(i) for i in inputs)
        raise GmsrError(f"no photos ({', '.join(IMAGE_EXTENSIONS)}) found in {listed}")
    items: dict[Path, BatchItem] = {}
    for photo, rel in pairs:
        out = outdir / rel.with_suffix(extension)
        if out in items:
            if items[out].input_path.resolve() == photo.resolve():
                continue  # the same photo reached twice (a folder and a pattern)
            raise GmsrError(f"{items[out].input_path} and {photo} would both be written to {out}; "
                            "rename one of them or run them in separate batches")
        items[out] = BatchItem(photo, out)
    ordered = [items[k] for k in sorted(items, key=lambda p: p.as_posix())]
    if shard is not None:
        index, count = parse_shard(shard) if isinstance(shard, str) else shard
        parse_shard(f"{index}/{count}")
        ordered = ordered[index - 1::count]
    return ordered


def run_batch(items: Sequence[BatchItem], *, model: LoadedModel | None = None,
              weights: PathLike | None = DEFAULT_WEIGHTS, device: str = "auto", backend: str = "auto",
              tile_px: int = DEFAULT_TILE_PX, overlap_px: int = DEFAULT_OVERLAP_PX,
              batch_tiles: int | None = None, tta: bool = False, format: str | None = None,
              dtype: str = "float32", overwrite: bool = False,
              on_file_start: Callable[[int, BatchItem], None] | None = None,
              on_file_end: Callable[[int, BatchResult], None] | None = None,
              progress: ProgressCallback | None = None,
              on_warning: Callable[[str], None] | None = None) -> list[BatchResult]:
    """Reconstruct every item, loading the model once (and only if there is work).

    An item whose output files all exist is skipped (outputs appear only when complete, so this
    resumes an interrupted batch) unless ``overwrite``. A photo that fails is recorded as
    "failed" with its one-line reason and the batch goes on; errors of the weights or device
    stop it. KeyboardInterrupt stops it with the current output removed.
    """
    results = []
    for i, item in enumerate(items):
        if on_file_start is not None:
            on_file_start(i, item)
        start = time.perf_counter()
        finals = _output_paths(item.output_path, format)
        present = [p.exists() for p in finals]
        if all(present) and not overwrite:
            result = BatchResult(item, "skipped", "output exists")
        else:
            if model is None:
                model = load_model(weights, device, backend)
            try:
                item.output_path.parent.mkdir(parents=True, exist_ok=True)
                # Some but not all files of an output: the leftovers of an interrupted rename.
                done = reconstruct_file(item.input_path, item.output_path, model=model, tile_px=tile_px,
                                        overlap_px=overlap_px, batch_tiles=batch_tiles, tta=tta,
                                        format=format, dtype=dtype, overwrite=overwrite or any(present),
                                        progress=progress, on_warning=on_warning)
                result = BatchResult(item, "done", seconds=time.perf_counter() - start, warnings=done.warnings)
            except GmsrError as exc:
                result = BatchResult(item, "failed", str(exc), time.perf_counter() - start)
            except Exception as exc:  # one broken photo must not stop the batch, whatever broke
                result = BatchResult(item, "failed", f"unexpected {type(exc).__name__}: {exc}",
                                     time.perf_counter() - start)
        results.append(result)
        if on_file_end is not None:
            on_file_end(i, result)
    return results


# ---------------------------------------------------------------------------------------------
# Cubes to pictures
# ---------------------------------------------------------------------------------------------

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
    _refuse_existing([path], overwrite)


def _block_rows(cube) -> int:
    return max(1, _BLOCK_BYTES // max(1, cube.width * cube.bands * 4))


def _check_render_grid(cube) -> None:
    from .spectra import WAVELENGTHS_NM

    wl = cube.wavelengths_nm
    if wl.shape != WAVELENGTHS_NM.shape or not np.allclose(wl, WAVELENGTHS_NM, atol=0.5):
        span = f"{wl.min():g}-{wl.max():g} nm" if wl.size else "none"
        raise CubeError(f"{cube.path}: rendering needs the 31 bands 400-700 nm at 10 nm; this cube has "
                        f"{wl.size} bands ({span}); use --band or --rgb for a preview")


def _render_cube(cube, camera: str, gain: float = 1.0) -> np.ndarray:
    """(H, W, 3) uint8 of a Cube through ``camera``, read in row blocks."""
    from .spectra import render_rgb

    out = np.empty((cube.height, cube.width, 3), dtype=np.uint8)
    for y0, block in cube.iter_rows(_block_rows(cube)):
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
    for y0, block in cube.iter_rows(_block_rows(cube)):
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
        for _, block in cube.iter_rows(_block_rows(cube)):
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


# ---------------------------------------------------------------------------------------------
# Describing files
# ---------------------------------------------------------------------------------------------


def describe_weights(name_or_path: PathLike) -> dict[str, Any]:
    """Weights (a shipped name or a file) as a dict: name, sha256, card, parameters, whether they fit GMSR-Net."""
    from .model.gmsr import GMSRNet
    from .model.weights import check_state_dict, read_weights

    state, info = read_weights(name_or_path)
    description: dict[str, Any] = {
        "kind": "weights",
        "path": str(info.path),
        "name": info.name,
        "sha256": info.sha256,
        "file_kind": info.kind,
        "tensors": len(state),
        "parameters": int(sum(t.numel() for t in state.values())),
        "camera": info.camera,
        "card": info.card,
    }
    try:
        check_state_dict(state, GMSRNet().state_dict(), info.path)
        description["fits_gmsr_net"] = True
    except WeightsError as exc:
        description["fits_gmsr_net"] = False
        description["problem"] = str(exc)
    return description


def _describe_cube(path: Path) -> dict[str, Any]:
    from .io import format_for, read_cube

    fmt = format_for(path)
    with read_cube(path) as cube:
        lo, hi, total, count, non_finite = np.inf, -np.inf, 0.0, 0, 0
        for _, block in cube.iter_rows(_block_rows(cube)):
            finite = np.isfinite(block)
            non_finite += int(block.size - np.count_nonzero(finite))
            values = block[finite] if not finite.all() else block
            if values.size:
                lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
                total += float(values.sum(dtype=np.float64))
                count += values.size
        wl = cube.wavelengths_nm
        return {
            "kind": "cube",
            "path": str(path),
            "format": fmt.name,
            "shape": list(cube.shape),
            "dtype": str(np.dtype(cube.data.dtype)),
            "scale": cube.scale,
            "bands": cube.bands,
            "wavelengths_nm": [float(w) for w in wl],
            "value_min": lo if count else None,
            "value_max": hi if count else None,
            "value_mean": total / count if count else None,
            "non_finite_values": non_finite,
            "attrs": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in cube.attrs.items()},
        }


def _describe_photo(path: Path) -> dict[str, Any]:
    from .io import image_size

    height, width = image_size(path)
    return {"kind": "photo", "path": str(path), "height": height, "width": width}


def describe_file(path: PathLike) -> dict[str, Any]:
    """What a file is, as a dict with "kind": "cube" (shape, dtype, wavelengths, value range,
    provenance attrs), "weights" (name, sha256, card, parameter count, whether it fits
    GMSR-Net) or "photo" (size). ``path`` may also be the name of shipped weights."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in WEIGHTS_EXTENSIONS or (not path.exists() and not suffix):
        return describe_weights(path)
    if not path.exists():
        raise GmsrError(f"{path}: file not found")
    if suffix in (".tif", ".tiff"):  # a TIFF is a cube or a photo: try the cube first
        try:
            return _describe_cube(path)
        except CubeError:
            from .io.formats.tiff import looks_like_cube

            if looks_like_cube(path):  # a broken cube stays a cube error, not a "photo"
                raise
            return _describe_photo(path)
    if suffix in IMAGE_EXTENSIONS:
        return _describe_photo(path)
    return _describe_cube(path)
