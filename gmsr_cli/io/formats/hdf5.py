"""HDF5 cubes (.h5/.hdf5): our chunked, compressed `cube` + `wavelengths` layout, and CAVE-style files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from gmsr_cli.errors import CubeError, FormatError
from gmsr_cli.io.chunks import ChunkRowWriter
from gmsr_cli.io.codecs import VALUES_LABEL, default_threads, keep_mantissa_bits
from gmsr_cli.io.cube import AxesView, Cube
from gmsr_cli.io.guarded import GuardedFile, close_hdf5
from gmsr_cli.io.formats._base import (CubeWriter, RowBuffer, looks_like_wavelengths, choose_cube_variable,
                                       choose_wavelength_variable, clean_attrs, default_integer_scale,
                                       wavelengths_to_nm)

CUBE_NAMES = ("cube", "rad", "data")
WAVELENGTH_NAMES = ("wavelengths", "wavelength", "bands", "wl")
# Chunks of (32, 64, B) values: 254 KB of float32 for 31 bands, small enough that a chunk row is
# a small part of any cube, large enough that deflate runs at full speed.
CHUNK_ROWS = 32
CHUNK_COLS = 64
# gzip rather than lzf: MATLAB, HDFView, R and C readers decode it without plugins.
COMPRESSIONS = ("gzip", "lzf", "none")
# Names of the dimension scales (netCDF-4 dimensions) of the cube's axes.
DIM_NAMES = ("y", "x", "wavelengths")


def output_paths(path: Path) -> list[Path]:
    return [Path(path)]


class Hdf5Writer(CubeWriter):
    """Streams rows into a chunked (32, 64, B) `cube` with gzip + shuffle.

    Rows are gathered one chunk row (32 rows) at a time; each full chunk row's chunks are
    shuffled, deflated and stored (HDF5 direct chunk writes, gmsr_cli.io.chunks) by `threads`
    worker threads while the caller fills the next chunk row, so compression runs beside the
    computation and on every core. The chunks are exactly what HDF5's own gzip + shuffle filters
    write: any HDF5 reader opens the file without plugins. A worker's error is raised to the
    caller by the next write_rows or close. Memory: the chunk rows queued for the workers (at
    least two of 32 x W x B values, at most gmsr_cli.io.chunks.QUEUE_BYTES) plus about two chunks
    per thread. lzf goes through h5py's own filter on the calling thread.
    """

    def __init__(self, path: Path, height: int, width: int, wavelengths_nm: Any, dtype: str,
                 attrs: dict[str, Any], compression: str = "gzip", compression_level: int = 1,
                 threads: int | None = None, keep_bits: int | None = None):
        import h5py

        super().__init__(height, width, wavelengths_nm, dtype)
        if compression not in COMPRESSIONS:
            raise FormatError(f"HDF5 compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
        level = int(compression_level)
        if not 0 <= level <= 9:
            raise FormatError(f"gzip compression level must be 0-9, got {compression_level}")
        self.threads = default_threads() if threads is None else int(threads)
        if self.threads < 1:
            raise ValueError(f"threads must be 1 or more, got {threads}")
        if keep_bits is not None:
            keep_mantissa_bits(np.zeros(1, self.dtype), keep_bits)  # a bad value fails here, not in a worker
        self.compression, self.level, self.keep_bits = compression, level, keep_bits
        filters: dict[str, Any] = {
            "gzip": {"compression": "gzip", "compression_opts": level, "shuffle": True},
            "lzf": {"compression": "lzf", "shuffle": True},
            "none": {},
        }[compression]
        self.chunks = (min(CHUNK_ROWS, self.height), min(CHUNK_COLS, self.width), self.bands)
        # Through a GuardedFile: HDF5 never sees a failing write (it would crash h5py, see guarded.py).
        self.sink = GuardedFile(path)
        self.file = h5py.File(self.sink, "w")
        try:
            self.dataset = self.file.create_dataset(
                "cube", shape=(self.height, self.width, self.bands), dtype=self.dtype,
                chunks=self.chunks, **filters,
            )
            self.dataset.attrs["axes"] = "height, width, band"
            self.dataset.attrs["units"] = "1"
            self.dataset.attrs["long_name"] = VALUES_LABEL
            if keep_bits is not None:
                self.dataset.attrs["mantissa_bits_kept"] = int(keep_bits)
                self.dataset.attrs["max_relative_error"] = 2.0 ** -(int(keep_bits) + 1)
            self._dimension_scales()
            for key, value in clean_attrs(attrs).items():
                self.file.attrs[key] = value
            self.sink.raise_failure()
        except BaseException:
            self._release()
            raise
        self.pipeline: ChunkRowWriter | None = None
        if compression == "lzf":
            self.buffer = RowBuffer(self.chunks[0], self.width, self.bands, self.dtype)
        else:
            self.pipeline = ChunkRowWriter(
                self.dataset, rows=self.chunks[0], cols=self.chunks[1], width=self.width, bands=self.bands,
                dtype=self.dtype, level=level if compression == "gzip" else None, shuffle=True,
                threads=self.threads, keep_bits=keep_bits)

    def _dimension_scales(self) -> None:
        """`wavelengths` (nm), `y` and `x` (pixel indices) as the dimension scales of the cube's
        axes, so netCDF-4, xarray and GDAL's multidimensional API name the axes and show the
        wavelengths."""
        f, cube = self.file, self.dataset
        wl = f.create_dataset("wavelengths", data=self.wavelengths_nm)
        wl.attrs["units"] = "nm"
        wl.attrs["long_name"] = "band centre wavelength"
        y = f.create_dataset("y", data=np.arange(self.height, dtype=np.int32))
        y.attrs["long_name"] = "pixel row, from the top"
        x = f.create_dataset("x", data=np.arange(self.width, dtype=np.int32))
        x.attrs["long_name"] = "pixel column, from the left"
        for axis, (name, scale) in enumerate(zip(DIM_NAMES, (y, x, wl))):
            scale.make_scale(name)
            cube.dims[axis].attach_scale(scale)
            cube.dims[axis].label = name

    def _write_rows(self, y0: int, block: np.ndarray) -> None:
        if self.pipeline is not None:
            self.pipeline.add(block)
        else:
            for start, rows in self.buffer.add(keep_mantissa_bits(block, self.keep_bits)):
                self.dataset[start : start + rows.shape[0]] = rows
        self.sink.raise_failure()

    def _finish(self) -> None:
        if self.pipeline is not None:
            self.pipeline.finish()
        else:
            for start, rows in self.buffer.rest():
                self.dataset[start : start + rows.shape[0]] = rows
        self.file.flush()
        self.sink.raise_failure()

    def _release(self) -> None:
        close_hdf5(self.file, self.sink, getattr(self, "pipeline", None))  # no pipeline if the constructor failed


def open_writer(paths: list[Path], *, height: int, width: int, wavelengths_nm: Any,
                dtype: str = "float32", attrs: dict[str, Any] | None = None,
                scratch: Callable[[str], Path] | None = None, compression: str = "gzip",
                compression_level: int = 1, threads: int | None = None,
                keep_bits: int | None = None) -> Hdf5Writer:
    """Writer for one HDF5 file: `cube` (H, W, B) float32/float16, chunked (32, 64, B), gzip
    (`compression_level` 0-9, default 1) + shuffle, or lzf, or none; `wavelengths` (B,) float64
    nm, `y` (H,) and `x` (W,) pixel indices, the three attached as the cube's dimension scales;
    `attrs` as file attributes. `threads`: compression workers (default: every CPU this process
    may use). `keep_bits`: round values to this many mantissa bits (relative error at most
    2**-(keep_bits + 1); 12 bits: 1.2e-4) for smaller files; default exact."""
    return Hdf5Writer(paths[0], height, width, wavelengths_nm, dtype, attrs or {},
                      compression=compression, compression_level=compression_level,
                      threads=threads, keep_bits=keep_bits)


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SO" and value.size == 1:
            return _decode(value.reshape(-1)[0])
        return value.tolist() if value.size <= 64 else f"<array {value.shape}>"
    if isinstance(value, np.generic):
        return value.item()
    return value


def _find(group: Any, names: tuple[str, ...], want: Callable[[Any], bool]) -> Any:
    """The first dataset whose name (case-insensitive) is in `names` and that `want` accepts:
    top-level names first, then anywhere in the file (by name order)."""
    import h5py

    top = {k.lower(): k for k in group.keys()}
    for name in names:
        key = top.get(name)
        if key is not None:
            obj = group.get(key)
            if isinstance(obj, h5py.Dataset) and want(obj):
                return obj
    found: dict[str, Any] = {}

    def visit(path: str, obj: Any) -> None:
        base = path.rsplit("/", 1)[-1].lower()
        if isinstance(obj, h5py.Dataset) and base in names and base not in found and want(obj):
            found[base] = obj

    group.visititems(visit)
    for name in names:
        if name in found:
            return found[name]
    return None


def _datasets_summary(f: Any) -> str:
    import h5py

    items: list[str] = []

    def visit(path: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and len(items) < 12:
            items.append(f"{path} {tuple(obj.shape)}")

    f.visititems(visit)
    return ", ".join(items) or "none"


def octave_variables(f: Any) -> dict[str, Any] | None:
    """Octave's `save -hdf5` layout (one group per variable with `type` and `value`, values
    column-major like MATLAB's): {name: value dataset, or an array for an Octave range such as
    400:10:700}; None when the file is not laid out so."""
    import h5py

    found: dict[str, Any] = {}
    for name, obj in f.items():
        if not (isinstance(obj, h5py.Group) and "OCTAVE_NEW_FORMAT" in obj.attrs and "value" in obj):
            continue
        value = obj["value"]
        if not isinstance(value, h5py.Dataset):
            continue
        names = value.dtype.names or ()
        if {"base", "limit", "increment"} <= set(names):
            rec = value[()]
            count = int(np.asarray(value.attrs.get("OCTAVE_RANGE_NELEM", 0)).reshape(-1)[0])
            if count <= 0:
                count = int(np.floor((rec["limit"] - rec["base"]) / rec["increment"] + 1e-9)) + 1
            found[name] = float(rec["base"]) + float(rec["increment"]) * np.arange(count)
        elif value.dtype.kind in "iuf":
            found[name] = value
    return found or None


def _all_datasets(f: Any) -> dict[str, Any]:
    import h5py

    found: dict[str, Any] = {}

    def visit(path: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "iuf":
            found[path] = obj

    f.visititems(visit)
    return found


def read_h5_cube(f: Any, path: Path, *, matlab: bool, variable: str | None = None,
                 wavelength_variable: str | None = None) -> tuple[Any, np.ndarray, float | None]:
    """Find the cube and wavelengths in an open h5py File.

    Returns (data as an (H, W, B) view, wavelengths nm, scale). `matlab`: stored band-first
    arrays are MATLAB's transposed (B, W, H) rather than (B, H, W); MATLAB v7.3 and Octave
    files may also hold the cube and the wavelengths under other names, taken when they are the
    only 3-D variable and the only vector of wavelength-like values. `variable`,
    `wavelength_variable`: dataset (or Octave variable) names that override the search.
    """
    octave = octave_variables(f)
    if octave is not None:
        matlab = True
    named = octave if octave is not None else _all_datasets(f)
    shapes = {k: tuple(np.shape(v)) for k, v in named.items()}
    if variable is not None or octave is not None:
        cube = named[choose_cube_variable(path, shapes, CUBE_NAMES, variable)]
    else:
        cube = _find(f, CUBE_NAMES, lambda d: d.ndim == 3)
        if cube is None:  # a 3-D dataset under another name whose band axis has wavelengths
            scaled = [d for d in named.values() if d.ndim == 3 and _scale_wavelengths(d) is not None]
            cube = scaled[0] if len(scaled) == 1 else None
        if cube is None and matlab:
            cube = named[choose_cube_variable(path, shapes, CUBE_NAMES, None)]
        if cube is None:
            raise CubeError(
                f"{path}: no 3-D dataset named {'/'.join(CUBE_NAMES)} found "
                f"(datasets: {_datasets_summary(f)}); choose the cube with --var NAME"
            )
    cube_name = str(getattr(cube, "name", "") or "cube").lstrip("/")
    wl_values, units = None, None
    vectors = {k: v for k, v in named.items() if v is not cube and 1 <= np.size(v) <= 100_000
               and max(np.shape(v), default=1) == np.size(v)}
    if wavelength_variable is not None or octave is not None:
        candidates = {k: np.asarray(v[()] if hasattr(v, "attrs") else v) for k, v in vectors.items()}
        bands = _band_count(cube.shape, candidates, wavelength_variable)
        name = choose_wavelength_variable(path, candidates, WAVELENGTH_NAMES, bands, wavelength_variable, cube_name)
        wl_values = candidates[name]
        holder = named[name]
        units = _decode(holder.attrs.get("units")) if hasattr(holder, "attrs") else None
    else:
        wl_ds = _scale_wavelengths(cube) if hasattr(cube, "dims") else None
        if wl_ds is None:
            wl_ds = _find(f, WAVELENGTH_NAMES, lambda d: d.size >= 1 and d.dtype.kind in "iuf"
                          and max(d.shape, default=1) == d.size)
        if wl_ds is not None:
            wl_values, units = wl_ds[()], _decode(wl_ds.attrs.get("units"))
        else:
            for holder in (cube, f):
                for name in WAVELENGTH_NAMES:
                    if name in holder.attrs:
                        wl_values = holder.attrs[name]
                        units = _decode(holder.attrs.get("wavelength_units", holder.attrs.get("units")))
                        break
                if wl_values is not None:
                    break
        if wl_values is None and matlab:
            candidates = {k: np.asarray(v[()]) for k, v in vectors.items()}
            bands = _band_count(cube.shape, candidates, None)
            wl_values = candidates[choose_wavelength_variable(path, candidates, WAVELENGTH_NAMES, bands,
                                                              None, cube_name)]
    if wl_values is None:
        raise CubeError(
            f"{path}: found cube dataset '{cube_name}' {tuple(cube.shape)} but no wavelengths "
            f"(a dataset or attribute named {'/'.join(WAVELENGTH_NAMES)}); add one, in nm, or "
            "choose one with --wavelength-var NAME"
        )
    wl = wavelengths_to_nm(wl_values, units if isinstance(units, str) else None, path)
    n = wl.size
    shape = tuple(cube.shape)
    if shape[2] == n:
        data: Any = cube
    elif shape[0] == n:
        data = AxesView(cube, (2, 1, 0) if matlab else (1, 2, 0))
    else:
        raise CubeError(
            f"{path}: cube '{cube_name}' has shape {shape} but there are {n} wavelengths; "
            "neither its first nor last axis matches"
        )
    scale = None
    for key in ("scale", "scale_factor"):
        if key in cube.attrs:
            scale = float(np.asarray(cube.attrs[key]).reshape(-1)[0])
            break
    return data, wl, scale


def _scale_wavelengths(cube: Any) -> Any:
    """A dimension scale attached to the cube's last (or first) axis that holds wavelength-like
    values: how netCDF-4, xarray and h5py users label the band axis, under any name."""
    for axis in (2, 0):
        try:
            scales = list(cube.dims[axis].values())
        except (RuntimeError, ValueError, KeyError):  # broken references: no usable scale
            continue
        for scale in scales:
            if (scale.ndim == 1 and scale.size == cube.shape[axis] and scale.dtype.kind in "iuf"
                    and looks_like_wavelengths(scale[()])):
                return scale
    return None


def _band_count(shape: tuple[int, ...], candidates: dict[str, np.ndarray], requested: str | None) -> int:
    """The cube's band count for the wavelength search: a stored axis that a candidate's length
    matches (the first, band-first as MATLAB and Octave store (H, W, B), else the last)."""
    sizes = {np.size(v) for k, v in candidates.items() if requested is None or k == requested}
    for axis in (0, 2):
        if shape[axis] in sizes:
            return int(shape[axis])
    return int(shape[0])


def read(path: Path, variable: str | None = None, wavelength_variable: str | None = None) -> Cube:
    """Open an HDF5 cube lazily: `cube` (or rad/data, or `variable`) with `wavelengths` (or
    bands/wl, or `wavelength_variable`); Octave `save -hdf5` files too.

    Works for our files and CAVE files (uint16 `cube` with a `scale` attribute). The returned
    Cube holds the file open until `close()`.
    """
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise CubeError(f"{path}: not a readable HDF5 file ({exc})") from None
    try:
        matlab = any("MATLAB_class" in obj.attrs for obj in f.values())
        data, wl, scale = read_h5_cube(f, path, matlab=matlab, variable=variable,
                                       wavelength_variable=wavelength_variable)
        attrs = {str(k): _decode(v) for k, v in f.attrs.items()}
        if np.dtype(data.dtype).kind in "iu" and scale is None:
            scale = default_integer_scale(data.dtype, attrs)
        cube = Cube(data=data, wavelengths_nm=wl, attrs=attrs, scale=scale, path=Path(path))
    except BaseException:
        f.close()
        raise
    cube._closers.append(f.close)
    return cube
