"""MATLAB cubes (.mat): `cube` (H, W, B) single + `bands` (1, B) double, as NTIRE/ARAD files have them; v5 or v7.3."""

from __future__ import annotations

import datetime as _dt
import json
import os
import struct
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gmsr_cli.errors import CubeError, FormatError
from gmsr_cli.io.cube import AxesView, Cube, MappedArray
from gmsr_cli.io.guarded import GuardedFile, close_hdf5
from gmsr_cli.io.formats._base import (CubeWriter, choose_cube_variable, choose_wavelength_variable,
                                       clean_attrs, default_integer_scale, wavelengths_to_nm)

# MATLAB saves variables over 2 GB only in v7.3 files; "auto" switches to v7.3 above this.
V5_MAX_BYTES = 2**31 - 1
MAT_VERSIONS = ("auto", "5", "7.3")
# gzip level of v7.3 cubes (deflated by ISA-L, see gmsr_cli.io.codecs.deflate).
V73_LEVEL = 1
CUBE_NAMES = ("cube", "rad", "data")
WAVELENGTH_NAMES = ("bands", "wavelengths", "wavelength", "wl")
PROVENANCE_NAME = "provenance"
# Bytes of scratch data transposed at once when finishing a v5 file.
TRANSPOSE_BYTES = 64 * 2**20

# MAT v5 element types and array classes (MATLAB "MAT-File Format", level 5).
MI_INT8, MI_UINT8, MI_INT16, MI_UINT16, MI_INT32, MI_UINT32 = 1, 2, 3, 4, 5, 6
MI_SINGLE, MI_DOUBLE, MI_INT64, MI_UINT64, MI_MATRIX, MI_COMPRESSED, MI_UTF8 = 7, 9, 12, 13, 14, 15, 16
MX_CHAR, MX_DOUBLE, MX_SINGLE = 4, 6, 7
MI_DTYPES = {MI_INT8: "i1", MI_UINT8: "u1", MI_INT16: "i2", MI_UINT16: "u2", MI_INT32: "i4",
             MI_UINT32: "u4", MI_SINGLE: "f4", MI_DOUBLE: "f8", MI_INT64: "i8", MI_UINT64: "u8"}
# Numeric classes 6..15 and the storage type MATLAB uses for each without type reduction.
MX_NATIVE = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4", 14: "i8", 15: "u8"}


def output_paths(path: Path) -> list[Path]:
    return [Path(path)]


def _pad8(n: int) -> int:
    return (n + 7) // 8 * 8


def _header_text(version: str) -> bytes:
    now = _dt.datetime.now().strftime("%a %b %d %H:%M:%S %Y")
    if version == "7.3":
        text = f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: {now} HDF5 schema 1.00 ."
        tail = b"\x00\x02IM"
    else:
        text = f"MATLAB 5.0 MAT-file, Platform: posix, Created on: {now} by gmsr-cli"
        tail = b"\x00\x01IM"
    # 116 text bytes, 8 bytes of subsystem offset, version, endian indicator: 128 bytes.
    return text.encode("ascii")[:116].ljust(116, b" ") + b"\x00" * 8 + tail


def _provenance_json(attrs: dict[str, Any]) -> str:
    return json.dumps(clean_attrs(attrs), ensure_ascii=True, sort_keys=True)


# ----------------------------------------------------------------------------- MAT v5 writing

def _v5_matrix_header(name: str, mx_class: int, dims: tuple[int, ...], mi_type: int, data_bytes: int) -> bytes:
    """A miMATRIX element up to the start of its real-part data."""
    name_b = name.encode("ascii")
    flags = struct.pack("<IIII", MI_UINT32, 8, mx_class, 0)
    dims_b = struct.pack("<II", MI_INT32, 4 * len(dims)) + struct.pack(f"<{len(dims)}i", *dims)
    dims_b = dims_b.ljust(8 + _pad8(4 * len(dims)), b"\x00")
    if len(name_b) <= 4:  # "small data element": size and type packed into one word
        name_el = struct.pack("<HH", MI_INT8, len(name_b)) + name_b.ljust(4, b"\x00")
    else:
        name_el = struct.pack("<II", MI_INT8, len(name_b)) + name_b.ljust(_pad8(len(name_b)), b"\x00")
    data_tag = struct.pack("<II", mi_type, data_bytes)
    body_len = len(flags) + len(dims_b) + len(name_el) + len(data_tag) + _pad8(data_bytes)
    return struct.pack("<II", MI_MATRIX, body_len) + flags + dims_b + name_el + data_tag


def _v5_small_variable(name: str, mx_class: int, dims: tuple[int, ...], mi_type: int, payload: bytes) -> bytes:
    return (_v5_matrix_header(name, mx_class, dims, mi_type, len(payload))
            + payload.ljust(_pad8(len(payload)), b"\x00"))


class MatV5Writer(CubeWriter):
    """MAT v5 without holding the cube: rows are appended to a scratch (H, W, B) file, then
    copied in column slabs into MATLAB's column-major order inside the .mat.

    scipy.io.savemat is not used for the cube because it serialises the whole array in memory
    (arr.tobytes). Layout: header, `bands`, `provenance`, then `cube` last.
    """

    def __init__(self, path: Path, scratch_path: Path, height: int, width: int,
                 wavelengths_nm: Any, attrs: dict[str, Any]):
        super().__init__(height, width, wavelengths_nm, "float32")
        self.path = Path(path)
        self.scratch_path = scratch_path
        self.attrs = attrs
        self.scratch = open(scratch_path, "wb")
        self.out = None

    def _write_rows(self, y0: int, block: np.ndarray) -> None:
        self.scratch.write(block.astype("<f4", copy=False).tobytes())

    def _finish(self) -> None:
        self.scratch.close()
        H, W, B = self.height, self.width, self.bands
        prov = _provenance_json(self.attrs).encode("ascii")
        data_bytes = H * W * B * 4
        self.out = open(self.path, "wb")
        self.out.write(_header_text("5"))
        self.out.write(_v5_small_variable("bands", MX_DOUBLE, (1, B), MI_DOUBLE,
                                          self.wavelengths_nm.astype("<f8").tobytes()))
        self.out.write(_v5_small_variable(PROVENANCE_NAME, MX_CHAR, (1, len(prov)), MI_UTF8, prov))
        self.out.write(_v5_matrix_header("cube", MX_SINGLE, (H, W, B), MI_SINGLE, data_bytes))
        data_offset = self.out.tell()
        self.out.truncate(data_offset + _pad8(data_bytes))
        # Column slabs: each slab is read row by row from the scratch file and written as B
        # contiguous runs (MATLAB's cube(:, x0:x1, b)).
        slab_w = max(1, min(W, TRANSPOSE_BYTES // max(1, H * B * 4)))
        row_bytes = W * B * 4
        with open(self.scratch_path, "rb") as src:
            for x0 in range(0, W, slab_w):
                x1 = min(W, x0 + slab_w)
                slab = np.empty((H, x1 - x0, B), dtype="<f4")
                for y in range(H):
                    src.seek(y * row_bytes + x0 * B * 4)
                    if src.readinto(memoryview(slab[y]).cast("B")) != (x1 - x0) * B * 4:
                        raise OSError(f"scratch file {self.scratch_path} is short")
                for b in range(B):
                    self.out.seek(data_offset + (b * W + x0) * H * 4)
                    self.out.write(np.ascontiguousarray(slab[:, :, b].T).tobytes())
        self.out.close()

    def _release(self) -> None:
        self.scratch.close()
        if self.out is not None:
            self.out.close()
        try:
            os.unlink(self.scratch_path)
        except FileNotFoundError:
            pass


# --------------------------------------------------------------------------- MAT v7.3 writing

class MatV73Writer(CubeWriter):
    """MAT v7.3: an HDF5 file with MATLAB's 512-byte header block. MATLAB is column-major, so
    h5py sees every array transposed: `cube` is stored (B, W, H), `bands` (B, 1). Chunks of
    (B, 64, 32) are shuffled, deflated (level 1) and written by worker threads while rows arrive
    (gmsr_cli.io.chunks), as for our HDF5 files."""

    def __init__(self, path: Path, height: int, width: int, wavelengths_nm: Any, attrs: dict[str, Any],
                 threads: int | None = None):
        import h5py

        from gmsr_cli.io.chunks import ChunkRowWriter
        from gmsr_cli.io.codecs import default_threads

        super().__init__(height, width, wavelengths_nm, "float32")
        self.path = Path(path)
        # (B, 64 columns, 32 rows): the writer queues chunk rows of 32 image rows (gmsr_cli/io/chunks.py).
        chunks = (self.bands, min(64, self.width), min(32, self.height))
        self.sink = GuardedFile(self.path)  # HDF5 must never see a failing write (see guarded.py)
        self.file = h5py.File(self.sink, "w", userblock_size=512)
        try:
            self.dataset = self.file.create_dataset(
                "cube", shape=(self.bands, self.width, self.height), dtype="<f4", chunks=chunks,
                compression="gzip", compression_opts=V73_LEVEL, shuffle=True,
            )
            self.dataset.attrs["MATLAB_class"] = np.bytes_(b"single")
            bands = self.file.create_dataset("bands", data=self.wavelengths_nm.reshape(-1, 1))
            bands.attrs["MATLAB_class"] = np.bytes_(b"double")
            prov = np.frombuffer(_provenance_json(attrs).encode("utf-16-le"), dtype="<u2")
            text = self.file.create_dataset(PROVENANCE_NAME, data=prov.reshape(-1, 1))
            text.attrs["MATLAB_class"] = np.bytes_(b"char")
            text.attrs["MATLAB_int_decode"] = np.int32(2)
            self.sink.raise_failure()
        except BaseException:
            self._release()
            raise
        self.pipeline = ChunkRowWriter(
            self.dataset, rows=chunks[2], cols=chunks[1], width=self.width, bands=self.bands,
            dtype=np.dtype("<f4"), level=V73_LEVEL, shuffle=True,
            threads=default_threads() if threads is None else threads, transposed=True)

    def _write_rows(self, y0: int, block: np.ndarray) -> None:
        self.pipeline.add(block)
        self.sink.raise_failure()

    def _finish(self) -> None:
        self.pipeline.finish()
        self._release()
        with open(self.path, "r+b") as fh:
            fh.write(_header_text("7.3"))

    def _release(self) -> None:
        close_hdf5(self.file, self.sink, getattr(self, "pipeline", None))  # no pipeline if the constructor failed


def open_writer(paths: list[Path], *, height: int, width: int, wavelengths_nm: Any,
                dtype: str = "float32", attrs: dict[str, Any] | None = None,
                scratch: Callable[[str], Path] | None = None, mat_version: str = "auto") -> CubeWriter:
    """Writer for a .mat file: `cube` (H, W, B) single, `bands` (1, B) double wavelengths in nm,
    `provenance` a JSON char array. `mat_version`: "5", "7.3", or "auto" (v5 unless the cube
    exceeds V5_MAX_BYTES). float32 only (MATLAB files have no half type)."""
    if np.dtype(dtype) != np.float32:
        raise FormatError(f"MAT files have no {np.dtype(dtype).name} type; write float32 or use HDF5/TIFF/NPY")
    if mat_version not in MAT_VERSIONS:
        raise FormatError(f"mat_version must be one of {', '.join(MAT_VERSIONS)}, got {mat_version!r}")
    bands = np.asarray(wavelengths_nm).size
    if mat_version == "auto":
        mat_version = "5" if height * width * bands * 4 <= V5_MAX_BYTES else "7.3"
    if mat_version == "5":
        if height * width * bands * 4 > 2**32 - 1024:
            raise FormatError("the cube is too large for a MAT v5 file; use mat_version 7.3")
        if scratch is None:
            raise ValueError("MAT v5 writing needs a scratch path provider")
        return MatV5Writer(paths[0], scratch(".rows"), height, width, wavelengths_nm, attrs or {})
    return MatV73Writer(paths[0], height, width, wavelengths_nm, attrs or {})


# ------------------------------------------------------------------------------------ reading

def _scan_v5(path: Path) -> tuple[dict[str, dict[str, Any]], bool, str]:
    """Top-level variables of a MAT v5 file without reading their data:
    {name: {class, dims, dtype, offset, complex}}, whether compressed elements exist, byte order."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(128)
        if len(head) < 128:
            raise CubeError(f"{path}: file is too short to be a MAT file ({size} bytes)")
        bo = {b"IM": "<", b"MI": ">"}.get(head[126:128])
        if bo is None:
            raise CubeError(f"{path}: not a MATLAB .mat file (no MAT header)")
        variables: dict[str, dict[str, Any]] = {}
        compressed = False
        pos = 128
        while pos + 8 <= size:
            f.seek(pos)
            mi_type, nbytes = struct.unpack(bo + "II", f.read(8))
            end = pos + 8 + nbytes
            if end > size:
                raise CubeError(f"{path}: MAT file is truncated (an element runs past the end of the file)")
            if mi_type == MI_COMPRESSED:
                compressed = True
            elif mi_type == MI_MATRIX and nbytes >= 24:
                body = f.read(min(nbytes, 512))
                try:
                    variables.update(_parse_matrix_header(body, pos + 8, bo))
                except struct.error:
                    raise CubeError(f"{path}: MAT file is corrupt (bad variable header)") from None
            elif mi_type != MI_MATRIX:
                raise CubeError(f"{path}: MAT file is corrupt (unknown element type {mi_type})")
            pos = end  # miMATRIX sizes include their padding; compressed ones have none
    return variables, compressed, bo


def _parse_matrix_header(body: bytes, body_offset: int, bo: str) -> dict[str, dict[str, Any]]:
    _, _, flags, _ = struct.unpack(bo + "IIII", body[:16])
    mx_class, is_complex = flags & 0xFF, bool(flags & 0x0800)
    _, dims_len = struct.unpack(bo + "II", body[16:24])
    dims = struct.unpack(f"{bo}{dims_len // 4}i", body[24 : 24 + dims_len])
    at = 24 + _pad8(dims_len)
    word = struct.unpack(bo + "I", body[at : at + 4])[0]
    if word >> 16:  # small data element
        name_len = word >> 16
        name = body[at + 4 : at + 4 + name_len]
        at += 8
    else:
        name_len = struct.unpack(bo + "I", body[at + 4 : at + 8])[0]
        name = body[at + 8 : at + 8 + name_len]
        at += 8 + _pad8(name_len)
    info: dict[str, Any] = {"class": mx_class, "dims": dims, "complex": is_complex, "dtype": None, "offset": None}
    if 6 <= mx_class <= 15 and at + 8 <= len(body):
        tag = struct.unpack(bo + "I", body[at : at + 4])[0]
        if not tag >> 16:
            data_type, data_bytes = struct.unpack(bo + "II", body[at : at + 8])
            if data_type in MI_DTYPES:
                info.update(dtype=np.dtype(bo + MI_DTYPES[data_type]), offset=body_offset + at + 8,
                            nbytes=data_bytes)
    return {name.decode("latin-1"): info}


def _read_v5(path: Path, variable: str | None = None, wavelength_variable: str | None = None) -> Cube:
    import scipy.io

    variables, compressed, bo = _scan_v5(path)
    shapes = {n: tuple(v["dims"]) for n, v in variables.items()}
    try:
        if compressed:  # names and shapes of compressed variables need their headers inflated
            shapes = {name: tuple(shape) for name, shape, _ in scipy.io.whosmat(path)}
    except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError, zlib.error ...
        raise CubeError(f"{path}: cannot read MAT file ({exc})") from None
    cube_name = choose_cube_variable(path, shapes, CUBE_NAMES, variable)
    bands = shapes[cube_name][2]
    small = [n for n, s in shapes.items() if n != cube_name and 1 <= int(np.prod(s)) <= 100_000
             and max(s, default=1) == int(np.prod(s))]
    small += [n for n in shapes if n.lower() == PROVENANCE_NAME and n not in small]
    lazy = None
    v = variables.get(cube_name)
    if v is not None:
        native = MX_NATIVE.get(v["class"])
        if (not v["complex"] and v["dtype"] is not None and native == v["dtype"].str[1:]
                and v["nbytes"] == int(np.prod(v["dims"])) * v["dtype"].itemsize):
            # Column-major (H, W, B) is C-order (B, W, H): map it and view it transposed.
            lazy = AxesView(MappedArray(path, v["dtype"], v["offset"], tuple(v["dims"][::-1])), (2, 1, 0))
    try:
        wanted = small + ([] if lazy is not None else [cube_name])
        loaded = scipy.io.loadmat(path, variable_names=wanted) if wanted else {}
    except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError, zlib.error ...
        raise CubeError(f"{path}: cannot read MAT file ({exc})") from None
    data: Any = lazy if lazy is not None else np.asarray(loaded[cube_name])
    if data.ndim != 3:
        raise CubeError(f"{path}: variable '{cube_name}' is not a 3-D numeric array")
    vectors = {n: np.asarray(loaded[n]) for n in small if n in loaded and n.lower() != PROVENANCE_NAME
               and np.asarray(loaded[n]).dtype.kind in "iuf"}
    wl_name = choose_wavelength_variable(path, vectors, WAVELENGTH_NAMES, bands, wavelength_variable, cube_name)
    wl = wavelengths_to_nm(vectors[wl_name].reshape(-1), None, path)
    prov = next((loaded[n] for n in loaded if n.lower() == PROVENANCE_NAME), None)
    attrs = _parse_provenance(prov)
    return _make_cube(data, wl, attrs, path)


def _parse_provenance(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "ui":
            value = value.astype("<u2").tobytes().decode("utf-16-le", "replace")
        else:
            value = "".join(np.asarray(value).reshape(-1).tolist())
    try:
        parsed = json.loads(str(value))
    except json.JSONDecodeError:
        return {PROVENANCE_NAME: str(value)}
    return parsed if isinstance(parsed, dict) else {PROVENANCE_NAME: str(value)}


def _make_cube(data: Any, wl: np.ndarray, attrs: dict[str, Any], path: Path) -> Cube:
    shape = tuple(data.shape)
    if shape[2] != wl.size:
        raise CubeError(f"{path}: cube has shape {shape} (H, W, B) but there are {wl.size} wavelengths")
    scale = default_integer_scale(data.dtype, attrs) if np.dtype(data.dtype).kind in "iu" else None
    return Cube(data=data, wavelengths_nm=wl, attrs=attrs, scale=scale, path=path)


def _read_v73(path: Path, variable: str | None = None, wavelength_variable: str | None = None) -> Cube:
    import h5py

    from gmsr_cli.io.formats.hdf5 import read_h5_cube

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise CubeError(f"{path}: not a readable MAT v7.3 (HDF5) file ({exc})") from None
    try:
        data, wl, scale = read_h5_cube(f, path, matlab=True, variable=variable,
                                       wavelength_variable=wavelength_variable)
        attrs: dict[str, Any] = {}
        if PROVENANCE_NAME in f:
            attrs = _parse_provenance(f[PROVENANCE_NAME][()])
        if np.dtype(data.dtype).kind in "iu" and scale is None:
            scale = default_integer_scale(data.dtype, attrs)
        cube = Cube(data=data, wavelengths_nm=wl, attrs=attrs, scale=scale, path=path)
    except BaseException:
        f.close()
        raise
    cube._closers.append(f.close)
    return cube


def read(path: Path, variable: str | None = None, wavelength_variable: str | None = None) -> Cube:
    """Open a .mat cube: v7.3 (HDF5, also Octave's `save -hdf5`) lazily with h5py; v5 (also
    Octave's -v7/-v6) lazily by mapping an uncompressed cube, else with scipy.io.loadmat.
    Variables: `variable`, else cube/rad/data, else the only 3-D variable (H, W, B in MATLAB);
    `wavelength_variable`, else bands/wavelengths/wl, else the only vector of B increasing
    wavelength-like values, in nm (or um). Works for NTIRE/ARAD files. Ambiguous or missing
    variables raise CubeError listing what the file holds."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(128)
    if head.startswith(b"MATLAB 7.3") or head[124:126] in (b"\x00\x02", b"\x02\x00"):
        return _read_v73(path, variable, wavelength_variable)
    if head.startswith(b"\x89HDF"):
        return _read_v73(path, variable, wavelength_variable)
    return _read_v5(path, variable, wavelength_variable)
