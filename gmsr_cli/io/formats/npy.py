"""Plain NumPy cubes (.npy): one (H, W, B) array, no metadata; the reader assumes the default 31-band grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from gmsr_cli.errors import CubeError
from gmsr_cli.io.cube import DEFAULT_WAVELENGTHS_NM, Cube, MappedArray
from gmsr_cli.io.formats._base import RawRowsWriter, default_integer_scale


def output_paths(path: Path) -> list[Path]:
    return [Path(path)]


class NpyWriter(RawRowsWriter):
    """Writes the .npy header, then appends rows: C-order (H, W, B) is exactly the row order."""

    def __init__(self, path: Path, height: int, width: int, wavelengths_nm: Any, dtype: str):
        super().__init__(height, width, wavelengths_nm, dtype)
        self.dtype = self.dtype.newbyteorder("<")
        self.fh = open(path, "wb")
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (self.height, self.width, self.bands),
        }
        np.lib.format.write_array_header_1_0(self.fh, header)



def open_writer(paths: list[Path], *, height: int, width: int, wavelengths_nm: Any,
                dtype: str = "float32", attrs: dict[str, Any] | None = None,
                scratch: Callable[[str], Path] | None = None) -> NpyWriter:
    """Writer for a plain .npy (H, W, B) float32/float16 array. Wavelengths and attrs are NOT
    stored (.npy has no place for them); use HDF5/ENVI/MAT/TIFF when they matter."""
    return NpyWriter(paths[0], height, width, wavelengths_nm, dtype)


def read(path: Path) -> Cube:
    """Open a .npy (H, W, B) array lazily. .npy stores no wavelengths: a 31-band array is taken
    to be on the default 400-700 nm grid at 10 nm; other band counts raise CubeError."""
    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic != b"\x93NUMPY":
        raise CubeError(f"{path}: not a .npy file (no NumPy header)")
    try:
        # np.load validates the header and the file size; MappedArray then reads on demand.
        mm = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CubeError(f"{path}: not a readable .npy array; it is truncated or corrupt ({exc})") from None
    order = "F" if mm.flags.f_contiguous and not mm.flags.c_contiguous else "C"
    data = MappedArray(path, mm.dtype, mm.offset, mm.shape, order=order)
    del mm
    if data.ndim != 3:
        shape = getattr(data, "shape", None)
        raise CubeError(f"{path}: .npy holds shape {shape}, not an (H, W, bands) cube")
    if data.dtype.kind not in "iuf":
        raise CubeError(f"{path}: .npy holds {data.dtype} values, not numbers")
    n = data.shape[2]
    if n != DEFAULT_WAVELENGTHS_NM.size:
        raise CubeError(
            f"{path}: .npy stores no wavelengths and has {n} bands, so they cannot be assumed to "
            "be 400-700 nm at 10 nm; save the cube as HDF5, ENVI, MAT or TIFF, which keep wavelengths"
        )
    attrs: dict[str, Any] = {"wavelengths_note": "assumed 400-700 nm at 10 nm (.npy stores none)"}
    scale = default_integer_scale(data.dtype, attrs) if data.dtype.kind in "iu" else None
    return Cube(data=data, wavelengths_nm=DEFAULT_WAVELENGTHS_NM, attrs=attrs, scale=scale, path=path)
