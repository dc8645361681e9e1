"""What every cube format module shares: the streaming writer base class and small reading helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gmsr_cli.errors import CubeError

OUTPUT_DTYPES = ("float32", "float16")


class CubeWriter:
    """Base of the per-format writers: checks that rows arrive in order, once each, with the
    right shape, then hands them to `_write_rows`.

    Subclasses implement `_write_rows(y0, block)` (block already cast to `self.dtype`),
    `_finish()` (make the file complete) and `_release()` (close handles without finishing).
    """

    def __init__(self, height: int, width: int, wavelengths_nm: Any, dtype: str):
        if height < 1 or width < 1:
            raise ValueError(f"cube size must be positive, got {height} x {width}")
        self.height = int(height)
        self.width = int(width)
        self.wavelengths_nm = np.asarray(wavelengths_nm, dtype=np.float64).reshape(-1)
        if self.wavelengths_nm.size < 1:
            raise ValueError("a cube needs at least one wavelength")
        self.bands = int(self.wavelengths_nm.size)
        self.dtype = np.dtype(dtype)
        self.next_row = 0
        self._closed = False

    def write_rows(self, y0: int, block: Any) -> None:
        """Write rows y0..y0+h-1. `block`: (h, W, B) reflectance (float32 preferred); rows must
        arrive top to bottom, each exactly once."""
        if self._closed:
            raise ValueError("writer is closed")
        block = np.asarray(block)
        if block.ndim != 3 or block.shape[1:] != (self.width, self.bands):
            raise ValueError(
                f"row block must be (h, {self.width}, {self.bands}), got {block.shape}"
            )
        if y0 != self.next_row:
            raise ValueError(f"rows must arrive in order: expected row {self.next_row}, got {y0}")
        if y0 + block.shape[0] > self.height:
            raise ValueError(f"rows {y0}:{y0 + block.shape[0]} run past the cube height {self.height}")
        if block.shape[0] == 0:
            return
        self._write_rows(y0, np.ascontiguousarray(block, dtype=self.dtype))
        self.next_row += block.shape[0]

    def close(self) -> None:
        """Finish the file. Raises ValueError if some rows were never written."""
        if self._closed:
            return
        if self.next_row != self.height:
            self.abort()
            raise ValueError(f"only {self.next_row} of {self.height} rows were written")
        try:
            self._finish()
        finally:
            self._closed = True
            self._release()

    def abort(self) -> None:
        """Stop without finishing: release file handles (the caller removes the files)."""
        if not self._closed:
            self._closed = True
            self._release()

    def _write_rows(self, y0: int, block: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _finish(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _release(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class RawRowsWriter(CubeWriter):
    """A writer whose file holds the cube as raw C-order (H, W, B) rows after a header: the
    subclass writes the header and leaves `self.fh` open at the first data byte. Rows arrive in
    order (CubeWriter checks), so each is appended where the previous one ended."""

    fh: Any

    def _write_rows(self, y0: int, block: np.ndarray) -> None:
        self.fh.write(block.astype(self.dtype, copy=False).tobytes())

    def _finish(self) -> None:
        self.fh.flush()

    def _release(self) -> None:
        self.fh.close()


class RowBuffer:
    """Collects incoming rows into blocks of `rows` rows (the last may be shorter) so that
    chunked formats write each chunk once. Holds at most `rows` rows: (rows, W, B)."""

    def __init__(self, rows: int, width: int, bands: int, dtype: np.dtype):
        self.rows = rows
        self.buf = np.empty((rows, width, bands), dtype=dtype)
        self.start = 0  # first image row held in buf
        self.count = 0  # rows held

    def add(self, block: np.ndarray):
        """Add rows; yield (y0, full block) each time `rows` rows are collected."""
        i = 0
        while i < block.shape[0]:
            n = min(self.rows - self.count, block.shape[0] - i)
            self.buf[self.count : self.count + n] = block[i : i + n]
            self.count += n
            i += n
            if self.count == self.rows:
                yield self.start, self.buf
                self.start += self.count
                self.count = 0

    def rest(self):
        """The rows still held (fewer than `rows`), as (y0, block), if any."""
        if self.count:
            y0, n = self.start, self.count
            self.start += n
            self.count = 0
            yield y0, self.buf[:n]


def clean_attrs(attrs: dict[str, Any] | None) -> dict[str, str | int | float]:
    """Provenance attributes as str/int/float values (numpy scalars unwrapped, bytes decoded,
    anything else turned into its str); None values dropped."""
    out: dict[str, str | int | float] = {}
    for key, value in (attrs or {}).items():
        if value is None:
            continue
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, (str, int, float)):
            value = str(value)
        out[str(key)] = value
    return out


def wavelengths_to_nm(values: Any, units: str | None, where: Path | str) -> np.ndarray:
    """Band centres as float64 nm. `units`: 'nm', 'um'/'micrometers' or None (then values below
    100 are taken as micrometres, the other common unit)."""
    try:
        wl = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise CubeError(f"{where}: wavelengths are not numbers ({exc})") from None
    u = (units or "").strip().lower()
    if u in ("um", "µm", "micrometer", "micrometers", "micron", "microns", "micrometre", "micrometres"):
        wl = wl * 1000.0
    elif u in ("", "unknown") and wl.size and np.nanmax(wl) < 100:
        wl = wl * 1000.0
    if not np.all(np.isfinite(wl)):
        raise CubeError(f"{where}: wavelengths contain non-finite values")
    return wl


def default_integer_scale(dtype: np.dtype, attrs: dict[str, Any]) -> float:
    """The scale for integer data with no stated scale: the full range of the type maps to [0, 1].
    Recorded in attrs['scale_note'] so that the guess is visible."""
    top = np.iinfo(dtype).max
    attrs["scale_note"] = f"no scale in file; assumed full {np.dtype(dtype).name} range (1/{top})"
    return 1.0 / top


def looks_like_wavelengths(values: np.ndarray) -> bool:
    """Strictly increasing values within 200-3000 nm or 0.2-3 um."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0 or not np.all(np.isfinite(v)):
        return False
    if v.size > 1 and not np.all(np.diff(v) > 0):
        return False
    return bool((200 <= v.min() and v.max() <= 3000) or (0.2 <= v.min() and v.max() <= 3.0))


def choose_cube_variable(path: Path | str, shapes: dict[str, tuple[int, ...]], names: tuple[str, ...],
                         requested: str | None) -> str:
    """The cube among a file's variables (`shapes`: name -> shape): `requested` when given, else
    the first of `names` (case-insensitive) that is 3-D, else the only 3-D variable. Raises
    CubeError listing the variables when there is none or it is ambiguous."""
    listing = ", ".join(f"{n} {tuple(s)}" for n, s in shapes.items()) or "none"
    if requested is not None:
        if requested not in shapes:
            raise CubeError(f"{path}: no variable {requested!r} (variables: {listing})")
        if len(shapes[requested]) != 3:
            raise CubeError(f"{path}: variable {requested!r} has shape {tuple(shapes[requested])}, "
                            f"not a 3-D cube (variables: {listing})")
        return requested
    three_d = [n for n, s in shapes.items() if len(s) == 3]
    lower = {n.lower(): n for n in three_d}
    for name in names:
        if name in lower:
            return lower[name]
    if len(three_d) == 1:
        return three_d[0]
    what = "several 3-D variables" if three_d else f"no 3-D variable named {'/'.join(names)}"
    raise CubeError(f"{path}: {what}; choose the cube with --var NAME (variables: {listing})")


def choose_wavelength_variable(path: Path | str, values: dict[str, Any], names: tuple[str, ...],
                               bands: int, requested: str | None, cube_name: str) -> str:
    """The wavelengths among a file's small variables (`values`: name -> array): `requested` when
    given, else the first of `names`, else the only vector of `bands` wavelength-like values.
    Raises CubeError listing the candidates when there is none or it is ambiguous."""
    listing = ", ".join(f"{n} {tuple(np.shape(v))}" for n, v in values.items()) or "none"
    if requested is not None:
        if requested not in values:
            raise CubeError(f"{path}: no variable {requested!r} for the wavelengths (variables: {listing})")
        return requested
    lower = {n.lower(): n for n in values}
    for name in names:
        if name in lower:
            return lower[name]
    fits = [n for n, v in values.items() if np.size(v) == bands and looks_like_wavelengths(v)]
    if len(fits) == 1:
        return fits[0]
    what = "several variables could be" if fits else "no variable holds"
    raise CubeError(
        f"{path}: has '{cube_name}' but {what} its {bands} wavelengths ({'/'.join(names)} or a vector "
        f"of {bands} increasing values in nm); choose one with --wavelength-var NAME (variables: {listing})"
    )
