"""The cube format table (names, extensions, modules) and the format-independent read/write entry points."""

from __future__ import annotations

import datetime as _dt
import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from gmsr_cli.errors import CubeError, FormatError
from gmsr_cli.io.atomic import atomic_output
from gmsr_cli.io.cube import Cube
from gmsr_cli.io.formats._base import CubeWriter

# Rows per block when write_cube streams a Cube: about this many bytes of float32 per block.
BLOCK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class CubeFormat:
    """One cube format: its name (for --format), file extensions (lower case, first is the
    usual one), implementing module (imported on first use), output dtypes, writer options."""

    name: str
    extensions: tuple[str, ...]
    module: str
    description: str
    dtypes: tuple[str, ...] = ("float32", "float16")
    options: tuple[str, ...] = ()

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


FORMATS: tuple[CubeFormat, ...] = (
    CubeFormat("hdf5", (".h5", ".hdf5"), "gmsr_cli.io.formats.hdf5",
               "HDF5: chunked, gzip-compressed `cube` (H, W, B) + `wavelengths` (nm) as its dimension scale + provenance attributes",
               options=("compression", "compression_level", "threads", "keep_bits")),
    CubeFormat("envi", (".hdr", ".img"), "gmsr_cli.io.formats.envi",
               "ENVI: float32 BIP .img + .hdr with wavelengths, fwhm, band names, default bands",
               dtypes=("float32",)),
    CubeFormat("mat", (".mat",), "gmsr_cli.io.formats.mat",
               "MATLAB: `cube` (H, W, B) single + `bands` (1, B), v5, or v7.3 (HDF5) above 2 GB or when asked",
               dtypes=("float32",), options=("mat_version",)),
    CubeFormat("tiff", (".tif", ".tiff"), "gmsr_cli.io.formats.tiff",
               "TIFF: one (H, W, B) page, uncompressed or deflate/zstd/lzw, wavelengths in ImageDescription JSON and GDAL_METADATA",
               options=("compression", "threads")),
    CubeFormat("npy", (".npy",), "gmsr_cli.io.formats.npy",
               "NumPy .npy (H, W, B) array; stores no wavelengths (read back as 400-700 nm when 31 bands)"),
)
FORMAT_NAMES: tuple[str, ...] = tuple(f.name for f in FORMATS)
_BY_NAME = {f.name: f for f in FORMATS}
DEFAULT_FORMAT = "hdf5"  # what a cube is written as when neither --format nor an extension says

# Photos gmsr reads (gmsr_cli.io.images), by extension: what batch folders are searched for.
PHOTO_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def is_photo(path: str | Path) -> bool:
    """Whether ``path`` names a photo gmsr reads (by extension; hidden files are not photos)."""
    path = Path(path)
    return path.suffix.lower() in PHOTO_EXTENSIONS and not path.name.startswith(".")


def default_extension(format: str | None = None) -> str:
    """The usual extension of ``format`` (None: the default format), e.g. ``.h5``."""
    return format_for("x", format or DEFAULT_FORMAT).extensions[0]


# Options that read_cube / open_cube_writer take where a call gives none: how the CLI's --var,
# --compression, --mat-version ... reach the readers and writers that the API functions open.
_READ_DEFAULTS: ContextVar[dict[str, Any]] = ContextVar("gmsr_read_defaults", default={})
_WRITE_DEFAULTS: ContextVar[dict[str, Any]] = ContextVar("gmsr_write_defaults", default={})
# Formats whose files hold named variables (read_cube's variable / wavelength_variable).
VARIABLE_FORMATS = ("hdf5", "mat")


@contextmanager
def default_options(*, read: dict[str, Any] | None = None, write: dict[str, Any] | None = None) -> Iterator[None]:
    """Within the block (this thread or task), read_cube uses `read` (variable,
    wavelength_variable) and open_cube_writer uses `write` (format options such as compression,
    mat_version, keep_bits) where the call itself gives none. None values are ignored."""
    read_token = _READ_DEFAULTS.set({k: v for k, v in (read or {}).items() if v is not None})
    write_token = _WRITE_DEFAULTS.set({k: v for k, v in (write or {}).items() if v is not None})
    try:
        yield
    finally:
        _WRITE_DEFAULTS.reset(write_token)
        _READ_DEFAULTS.reset(read_token)


def _choices() -> str:
    return "; ".join(f"{f.name} ({', '.join(f.extensions)})" for f in FORMATS)


def format_for(path: str | Path, format: str | None = None) -> CubeFormat:
    """The CubeFormat for `path`: an explicit `format` name wins, then the file extension.
    Unknown names or extensions raise FormatError listing the choices."""
    if format is not None:
        fmt = _BY_NAME.get(format.lower())
        if fmt is None:
            raise FormatError(f"unknown cube format {format!r}; choose one of: {_choices()}")
        return fmt
    suffix = Path(path).suffix.lower()
    for fmt in FORMATS:
        if suffix in fmt.extensions:
            return fmt
    what = f"extension {suffix!r}" if suffix else "no extension"
    raise FormatError(
        f"{path}: {what} does not name a cube format; use one of: {_choices()} (or pass --format)"
    )


def output_format(path: str | Path, format: str | None = None) -> CubeFormat:
    """The CubeFormat to write `path` in (see format_for); raises FormatError when `format`
    disagrees with an extension of another format (an NPY file named .h5 could not be read
    back as what its name says)."""
    fmt = format_for(path, format)
    suffix = Path(path).suffix.lower()
    named = next((f for f in FORMATS if suffix in f.extensions), None)
    if format is not None and named is not None and named is not fmt:
        raise FormatError(
            f"{path}: --format {fmt.name} disagrees with the extension {suffix} ({named.name}); "
            f"name the file {Path(path).with_suffix(fmt.extensions[0]).name} or drop --format"
        )
    return fmt


def provenance(attrs: dict[str, Any] | None) -> dict[str, Any]:
    """The caller's attrs plus `gmsr_cli_version` and `created` (UTC ISO 8601), which we set."""
    from gmsr_cli import __version__

    out = {k: v for k, v in (attrs or {}).items() if v is not None}
    out["gmsr_cli_version"] = __version__
    out["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return out


def output_paths(path: str | Path, format: str | None = None) -> list[Path]:
    """Every file an output at `path` consists of (two for ENVI: .img and .hdr)."""
    fmt = format_for(path, format)
    return fmt.load().output_paths(Path(path))


@contextmanager
def open_cube_writer(path: str | Path, height: int, width: int, wavelengths_nm: Any, *,
                     format: str | None = None, dtype: str = "float32",
                     attrs: dict[str, Any] | None = None, overwrite: bool = False,
                     **options: Any) -> Iterator[CubeWriter]:
    """Stream a cube to `path` row block by row block.

    Yields a writer: call `writer.write_rows(y0, block)` with (h, W, B) float32 reflectance
    blocks, top to bottom, covering all `height` rows once. The output appears under its final
    name only when the block ends normally and every row was written; on any exception nothing
    is left behind and an existing output is untouched. `dtype`: "float32" or "float16" where
    the format has it. `attrs`: provenance (str/number values); `gmsr_cli_version` and `created`
    are added. `options`: format-specific (hdf5: compression, compression_level, threads,
    keep_bits; tiff: compression, threads; mat: mat_version); a None value means the default.
    Raises FormatError, OutputExistsError.
    """
    fmt = output_format(path, format)
    dtype = str(np.dtype(dtype))
    if dtype not in fmt.dtypes:
        raise FormatError(
            f"{path}: the {fmt.name} format cannot store {dtype} "
            f"(it has {', '.join(fmt.dtypes)}); use --dtype float32 or an HDF5/TIFF/NPY output"
        )
    options = {**_WRITE_DEFAULTS.get(), **{k: v for k, v in options.items() if v is not None}}
    unknown = sorted(set(options) - set(fmt.options))
    if unknown:
        has = ", ".join(fmt.options) or "none"
        raise FormatError(f"the {fmt.name} format has no option {', '.join(unknown)} (its options: {has})")
    wl = np.asarray(wavelengths_nm, dtype=np.float64).reshape(-1)
    module = fmt.load()
    finals = module.output_paths(Path(path))
    needed, size, exact = output_size(fmt, int(height), int(width), wl.size, dtype, options)
    with atomic_output(finals, overwrite=overwrite, needed_bytes=needed, size_bytes=size,
                       size_exact=exact) as files:
        writer = module.open_writer(
            list(files.paths), height=int(height), width=int(width), wavelengths_nm=wl,
            dtype=dtype, attrs=provenance(attrs), scratch=files.scratch, **options,
        )
        try:
            yield writer
            writer.close()
        except BaseException:
            try:
                writer.abort()
            except Exception:
                pass  # a close that fails again (no space to flush): the first error is the one to report
            raise


# Free space asked for before a compressed cube is written, as a fraction of its raw size: well
# below what gzip + shuffle makes of reconstructed reflectance (0.73-0.77 of the raw size for the
# three example photos with the shipped weights; smooth synthetic cubes reach about 0.57), so that
# the check never refuses a cube that would fit.
COMPRESSED_FLOOR = 0.2


def output_size(fmt: CubeFormat, height: int, width: int, bands: int, dtype: str,
                options: dict[str, Any]) -> tuple[int, int, bool]:
    """(least bytes, most bytes, exact) an output of this size takes: the raw size for
    uncompressed formats; for compressed ones (HDF5 unless compression="none", MAT v7.3) a floor
    below any real cube and the raw size as the most."""
    raw = height * width * bands * np.dtype(dtype).itemsize
    compressed = (fmt.name == "hdf5" and options.get("compression", "gzip") != "none") or (
        fmt.name == "mat" and options.get("mat_version") == "7.3")
    return (int(raw * COMPRESSED_FLOOR), raw, False) if compressed else (raw, raw, True)


def check_output_space(path: str | Path, height: int, width: int, bands: int, *, format: str | None = None,
                       dtype: str = "float32", **options: Any) -> None:
    """Raise DiskFullError if the folder of ``path`` cannot hold an (height, width, bands) cube in
    this format: called before slow work, so that a full disk is refused at once."""
    from gmsr_cli.io.atomic import check_free_space

    fmt = format_for(path, format)
    needed, _, exact = output_size(fmt, height, width, bands, str(np.dtype(dtype)), options)
    check_free_space(Path(path), needed, exact)


def write_cube(cube: Cube, path: str | Path, *, format: str | None = None, dtype: str = "float32",
               attrs: dict[str, Any] | None = None, overwrite: bool = False, **options: Any) -> list[Path]:
    """Write a whole Cube (read row block by row block, so lazy cubes stay lazy). `attrs` are
    added to the cube's own. Returns the files written. See open_cube_writer."""
    merged = {**cube.attrs, **(attrs or {})}
    rows = max(1, BLOCK_BYTES // max(1, cube.width * cube.bands * 4))
    with open_cube_writer(path, cube.height, cube.width, cube.wavelengths_nm, format=format,
                          dtype=dtype, attrs=merged, overwrite=overwrite, **options) as writer:
        for y0, block in cube.iter_rows(rows):
            writer.write_rows(y0, block)
    return output_paths(path, format)


def read_cube(path: str | Path, format: str | None = None, *, variable: str | None = None,
              wavelength_variable: str | None = None) -> Cube:
    """Open a cube file (lazily where the format allows; close it or use `with`).

    Returns a Cube with data (H, W, B), wavelengths_nm (B,) and attrs. `variable`,
    `wavelength_variable`: for HDF5 and MAT files, the names of the cube and the wavelengths
    when they are not found by their usual names. A missing, corrupt or truncated file, or one
    without a cube or wavelengths, raises CubeError naming the file (listing the variables where
    the choice is ambiguous); an unknown extension raises FormatError.
    """
    path = Path(path)
    fmt = format_for(path, format)
    chosen = {**_READ_DEFAULTS.get(), **{k: v for k, v in (("variable", variable),
                                                          ("wavelength_variable", wavelength_variable))
                                         if v is not None}}
    if chosen and fmt.name not in VARIABLE_FORMATS:
        raise FormatError(f"{path}: {fmt.name} files have no named variables; --var and "
                          "--wavelength-var are for HDF5 and MAT files")
    if not path.exists():
        raise CubeError(f"{path}: file not found")
    if path.is_dir():
        raise CubeError(f"{path}: is a folder, not a cube file")
    try:
        return fmt.load().read(path, **chosen)
    except (CubeError, FormatError):
        raise
    except (OSError, ValueError, KeyError, EOFError, TypeError) as exc:
        # A reader met a failure it did not foresee: still one line that names the file.
        raise CubeError(f"{path}: cannot read as {fmt.name} ({type(exc).__name__}: {exc})") from None
