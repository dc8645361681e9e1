"""The in-memory or lazy hyperspectral cube type (`Cube`) that every cube reader returns."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gmsr_cli.errors import CubeError

# The grid the network predicts on: 31 bands, 400-700 nm at 10 nm. Kept here as well as in
# gmsr_cli.spectra so that the I/O layer does not import the rendering code.
DEFAULT_WAVELENGTHS_NM = np.arange(400.0, 701.0, 10.0)
# Largest stretch of a raw file that MappedArray maps at once.
MAP_BYTES = 64 * 2**20


class MappedArray:
    """A read-only lazy array over raw values in a file (offset, dtype, shape, C or F order).

    Each read maps the file, copies out the selection and unmaps it again, so a consumer
    streaming through a large cube keeps only its current block resident (a long-lived
    np.memmap would count every page it ever touched as resident memory).
    """

    def __init__(self, path: Path, dtype: Any, offset: int, shape: tuple[int, ...], order: str = "C"):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.offset = int(offset)
        self.shape = tuple(int(n) for n in shape)
        self.ndim = len(self.shape)
        self.order = order

    def _read(self, first: int, count: int, key: tuple[Any, ...]) -> np.ndarray:
        """Map entries first..first+count-1 of axis 0 only, and copy out `key` from them."""
        row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        mm = np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset + first * row_bytes,
                       shape=(count,) + self.shape[1:])
        try:
            return np.array(mm[key])
        finally:
            del mm

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1 :]
        key = key + (slice(None),) * (self.ndim - len(key))
        first = key[0]
        if self.order == "C" and isinstance(first, (int, np.integer)):
            if not -self.shape[0] <= int(first) < self.shape[0]:
                raise IndexError(f"index {first} out of range for axis 0 of size {self.shape[0]}")
            return self._read(int(first) % self.shape[0], 1, (0,) + key[1:])
        if self.order == "C" and isinstance(first, slice):
            start, stop, step = first.indices(self.shape[0])
            picked = range(start, stop, step)
            if step > 0 and len(picked):
                # Map a bounded stretch of the file at a time: reading a few rows of a
                # band-first (B, W, H) file must not make the whole file resident.
                per_map = max(1, MAP_BYTES // max(1, int(np.prod(self.shape[1:])) * self.dtype.itemsize))
                per_map = max(1, per_map // step)
                parts = []
                for j in range(0, len(picked), per_map):
                    sub = picked[j : j + per_map]
                    lo, hi = sub[0], sub[-1] + 1
                    parts.append(self._read(lo, hi - lo, (slice(0, hi - lo, step),) + key[1:]))
                return np.concatenate(parts, axis=0)
        mm = np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=self.shape,
                       order=self.order)
        try:
            return np.array(mm[key])
        finally:
            del mm

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[...]
        return out.astype(dtype) if dtype is not None else out

    def __len__(self) -> int:
        return self.shape[0]


class AxesView:
    """A read-only (H, W, B) view of a 3-D dataset stored with its axes in another order.

    `perm[i]` is the stored axis that view axis i comes from, e.g. (2, 1, 0) for MATLAB files
    where h5py sees (B, W, H). Slicing reads only the requested part of the stored dataset
    (h5py dataset or memmap) and returns a numpy array in view order.
    """

    def __init__(self, stored: Any, perm: tuple[int, int, int]):
        if sorted(perm) != [0, 1, 2] or len(stored.shape) != 3:
            raise ValueError(f"AxesView needs a 3-D dataset and a permutation of (0, 1, 2), got {perm}")
        self.stored = stored
        self.perm = tuple(perm)
        self.shape = tuple(int(stored.shape[p]) for p in self.perm)
        self.dtype = np.dtype(stored.dtype)
        self.ndim = 3

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (3 - len(key) + 1) + key[i + 1 :]
        key = key + (slice(None),) * (3 - len(key))
        if len(key) != 3 or not all(isinstance(k, (slice, int, np.integer)) for k in key):
            raise IndexError("AxesView supports integers and slices only")
        stored_key: list[Any] = [slice(None)] * 3
        for view_axis, k in enumerate(key):
            stored_key[self.perm[view_axis]] = k
        out = np.asarray(self.stored[tuple(stored_key)])
        # The result keeps the stored order of the axes that were not indexed away; reorder
        # them into view order.
        kept_view_axes = [a for a in range(3) if not isinstance(key[a], (int, np.integer))]
        kept_stored = [self.perm[a] for a in kept_view_axes]
        order = np.argsort(np.argsort(kept_stored))
        return np.transpose(out, order) if out.ndim > 1 else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:, :, :]
        return out.astype(dtype) if dtype is not None else out

    def __len__(self) -> int:
        return self.shape[0]


@dataclass
class Cube:
    """A hyperspectral cube: reflectance values on a wavelength grid.

    - `data`: (H, W, B) array-like: numpy array, np.memmap, h5py dataset or AxesView;
      float32/float16 reflectance in [0, 1] (nominally), or integers that `scale` maps to it.
    - `wavelengths_nm`: float64 (B,), band centres in nanometres.
    - `attrs`: provenance (str / number values).
    - `scale`: multiply integer data by this to get reflectance; None for float data.
    - `path`: the file it was read from, if any (used in messages).

    A cube read lazily keeps its file open: use it as a context manager or call `close()`.
    """

    data: Any
    wavelengths_nm: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    scale: float | None = None
    path: Path | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.wavelengths_nm = np.asarray(self.wavelengths_nm, dtype=np.float64).reshape(-1)
        shape = tuple(self.data.shape)
        if len(shape) != 3:
            raise CubeError(f"{self._where()}cube data must be 3-D (H, W, B), got shape {shape}")
        if shape[2] != self.wavelengths_nm.size:
            raise CubeError(
                f"{self._where()}cube has {shape[2]} bands but {self.wavelengths_nm.size} wavelengths"
            )
        kind = np.dtype(self.data.dtype).kind
        if kind in "iu" and self.scale is None:
            raise CubeError(
                f"{self._where()}integer cube data ({np.dtype(self.data.dtype)}) needs a scale to "
                "give reflectance"
            )
        if kind not in "iuf":
            raise CubeError(f"{self._where()}cube data type {np.dtype(self.data.dtype)} is not numeric")

    def _where(self) -> str:
        return f"{self.path}: " if self.path is not None else ""

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, B)."""
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]

    @property
    def height(self) -> int:
        return self.shape[0]

    @property
    def width(self) -> int:
        return self.shape[1]

    @property
    def bands(self) -> int:
        """Number of bands B."""
        return self.shape[2]

    def _to_reflectance(self, values: np.ndarray, dtype: Any) -> np.ndarray:
        if self.scale is not None:
            return values.astype(dtype) * np.asarray(self.scale, dtype=dtype)
        return values.astype(dtype, copy=False)

    def _read(self, y0: int, y1: int) -> np.ndarray:
        try:
            return np.asarray(self.data[y0:y1, :, :])
        except (OSError, ValueError) as exc:
            # Lazy data fails only when read: a damaged chunk, a file cut short after opening.
            raise CubeError(f"{self._where()}cannot read rows {y0}-{y1 - 1}: {exc}") from None

    def to_array(self, dtype: Any = np.float32) -> np.ndarray:
        """The whole cube as a numpy (H, W, B) array of reflectance (scale applied), in memory."""
        return self._to_reflectance(self._read(0, self.height), dtype)

    def read_rows(self, y0: int, y1: int, dtype: Any = np.float32) -> np.ndarray:
        """Rows y0..y1-1 as a (y1 - y0, W, B) reflectance array; reads only those rows."""
        if not 0 <= y0 <= y1 <= self.height:
            raise IndexError(f"rows {y0}:{y1} outside 0:{self.height}")
        return self._to_reflectance(self._read(y0, y1), dtype)

    def read_window(self, y0: int, y1: int, x0: int, x1: int, step: int = 1,
                    dtype: Any = np.float32) -> np.ndarray:
        """Every `step`-th row of y0..y1-1 and column of x0..x1-1 (starting at y0, x0) as a
        (ceil((y1 - y0) / step), ceil((x1 - x0) / step), B) reflectance array; reads only
        those rows' stretch of the file (one pixel: a window of 1 x 1)."""
        if not (0 <= y0 < y1 <= self.height and 0 <= x0 < x1 <= self.width) or step < 1:
            raise IndexError(f"window rows {y0}:{y1} columns {x0}:{x1} step {step} outside "
                             f"0:{self.height}, 0:{self.width}")
        try:
            values = np.asarray(self.data[y0:y1:step, x0:x1:step, :])
        except (OSError, ValueError) as exc:
            raise CubeError(f"{self._where()}cannot read rows {y0}-{y1 - 1}: {exc}") from None
        return self._to_reflectance(values, dtype)

    def iter_rows(self, block_rows: int):
        """Yield (y0, block) pairs covering the cube top to bottom, `block_rows` rows at a time."""
        for y0 in range(0, self.height, block_rows):
            y1 = min(self.height, y0 + block_rows)
            yield y0, self.read_rows(y0, y1)

    def band_index(self, band: int | float | str) -> int:
        """The 0-based index of a band.

        `band`: an int is an index (negative counts from the end); a float or a string such as
        "560nm", "560 nm" or "560" is a wavelength in nm, matched to the nearest band (it must
        lie within half a band spacing of the grid). Raises CubeError listing the valid range.
        """
        wl = self.wavelengths_nm
        n = wl.size
        valid = (
            f"valid: indices 0-{n - 1} or wavelengths {wl.min():g}-{wl.max():g} nm ({n} bands)"
        )
        if isinstance(band, (bool, np.bool_)):
            raise CubeError(f"band {band!r} is not an index or a wavelength; {valid}")
        if isinstance(band, (int, np.integer)):
            i = int(band)
            if not -n <= i < n:
                raise CubeError(f"band index {i} is out of range; {valid}")
            return i % n
        if isinstance(band, str):
            m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*(nm)?\s*", band, flags=re.IGNORECASE)
            if not m:
                raise CubeError(
                    f"band {band!r} is not understood: give a wavelength like '560nm' or an index; {valid}"
                )
            nm = float(m.group(1))
        else:
            nm = float(band)
        spacing = float(np.median(np.diff(np.sort(wl)))) if n > 1 else 10.0
        i = int(np.argmin(np.abs(wl - nm)))
        if abs(wl[i] - nm) > spacing / 2 + 1e-9:
            raise CubeError(f"wavelength {nm:g} nm is outside the cube's bands; {valid}")
        return i

    def close(self) -> None:
        """Release the file behind lazy data (no-op for in-memory cubes)."""
        closers, self._closers = self._closers, []
        for close in closers:
            close()

    def __enter__(self) -> "Cube":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
