"""HDF5 cubes (.h5/.hdf5): our chunked, compressed `cube` + `wavelengths` layout, and CAVE-style files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from gmsr_cli.errors import CubeError
from gmsr_cli.io.cube import AxesView, Cube
from gmsr_cli.io.guarded import GuardedFile
from gmsr_cli.io.formats._base import CubeWriter, RowBuffer, clean_attrs, default_integer_scale, wavelengths_to_nm

CUBE_NAMES = ("cube", "rad", "data")
WAVELENGTH_NAMES = ("wavelengths", "wavelength", "bands", "wl")
CHUNK_PX = 64
# gzip rather than lzf: MATLAB, HDFView, R and C readers decode it without plugins.
COMPRESSIONS = ("gzip", "lzf", "none")


def output_paths(path: Path) -> list[Path]:
    return [Path(path)]


class Hdf5Writer(CubeWriter):
    """Streams rows into a chunked (64, 64, B) dataset, buffering one chunk row (64 rows) so that
    each chunk is compressed once. Memory: 64 x W x B values."""

    def __init__(self, path: Path, height: int, width: int, wavelengths_nm: Any, dtype: str,
                 attrs: dict[str, Any], compression: str = "gzip", compression_level: int = 1):
        import h5py

        super().__init__(height, width, wavelengths_nm, dtype)
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
        filters: dict[str, Any] = {
            "gzip": {"compression": "gzip", "compression_opts": int(compression_level), "shuffle": True},
            "lzf": {"compression": "lzf", "shuffle": True},
            "none": {},
        }[compression]
        chunks = (min(CHUNK_PX, self.height), min(CHUNK_PX, self.width), self.bands)
        # Through a GuardedFile: HDF5 never sees a failing write (it would crash h5py, see guarded.py).
        self.sink = GuardedFile(path)
        self.file = h5py.File(self.sink, "w")
        try:
            self.dataset = self.file.create_dataset(
                "cube", shape=(self.height, self.width, self.bands), dtype=self.dtype,
                chunks=chunks, **filters,
            )
            self.dataset.attrs["axes"] = "height, width, band"
            self.dataset.attrs["units"] = "reflectance in [0, 1]"
            wl = self.file.create_dataset("wavelengths", data=self.wavelengths_nm)
            wl.attrs["units"] = "nm"
            for key, value in clean_attrs(attrs).items():
                self.file.attrs[key] = value
            self.sink.raise_failure()
        except BaseException:
            self._release()
            raise
        self.buffer = RowBuffer(chunks[0], self.width, self.bands, self.dtype)

    def _write_rows(self, y0: int, block: np.ndarray) -> None:
        for start, rows in self.buffer.add(block):
            self.dataset[start : start + rows.shape[0]] = rows
        self.sink.raise_failure()

    def _finish(self) -> None:
        for start, rows in self.buffer.rest():
            self.dataset[start : start + rows.shape[0]] = rows
        self.file.flush()
        self.sink.raise_failure()

    def _release(self) -> None:
        try:
            self.file.close()
        finally:
            self.sink.close()
        self.sink.raise_failure()


def open_writer(paths: list[Path], *, height: int, width: int, wavelengths_nm: Any,
                dtype: str = "float32", attrs: dict[str, Any] | None = None,
                scratch: Callable[[str], Path] | None = None, compression: str = "gzip",
                compression_level: int = 1) -> Hdf5Writer:
    """Writer for one HDF5 file: `cube` (H, W, B) float32/float16, chunked and compressed;
    `wavelengths` (B,) float64 with units='nm'; `attrs` as file attributes."""
    return Hdf5Writer(paths[0], height, width, wavelengths_nm, dtype, attrs or {},
                      compression=compression, compression_level=compression_level)


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


def read_h5_cube(f: Any, path: Path, *, matlab: bool) -> tuple[Any, np.ndarray, float | None]:
    """Find the cube and wavelengths in an open h5py File.

    Returns (data as an (H, W, B) view, wavelengths nm, scale). `matlab`: stored band-first
    arrays are MATLAB's transposed (B, W, H) rather than (B, H, W).
    """
    cube = _find(f, CUBE_NAMES, lambda d: d.ndim == 3)
    if cube is None:
        raise CubeError(
            f"{path}: no 3-D dataset named {'/'.join(CUBE_NAMES)} found "
            f"(datasets: {_datasets_summary(f)})"
        )
    wl_ds = _find(f, WAVELENGTH_NAMES, lambda d: d.size >= 1 and d.dtype.kind in "iuf"
                  and max(d.shape, default=1) == d.size)
    wl_values, units = None, None
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
    if wl_values is None:
        raise CubeError(
            f"{path}: found cube dataset '{cube.name}' {tuple(cube.shape)} but no wavelengths "
            f"(a dataset or attribute named {'/'.join(WAVELENGTH_NAMES)}); add one, in nm"
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
            f"{path}: cube '{cube.name}' has shape {shape} but there are {n} wavelengths; "
            "neither its first nor last axis matches"
        )
    scale = None
    for key in ("scale", "scale_factor"):
        if key in cube.attrs:
            scale = float(np.asarray(cube.attrs[key]).reshape(-1)[0])
            break
    return data, wl, scale


def read(path: Path) -> Cube:
    """Open an HDF5 cube lazily: `cube` (or rad/data) with `wavelengths` (or bands/wl).

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
        data, wl, scale = read_h5_cube(f, path, matlab=matlab)
        attrs = {str(k): _decode(v) for k, v in f.attrs.items()}
        if np.dtype(data.dtype).kind in "iu" and scale is None:
            scale = default_integer_scale(data.dtype, attrs)
        cube = Cube(data=data, wavelengths_nm=wl, attrs=attrs, scale=scale, path=Path(path))
    except BaseException:
        f.close()
        raise
    cube._closers.append(f.close)
    return cube
