"""The 31-band wavelength grid, the camera models of spec/cameras.md, and rendering cubes to RGB."""

from __future__ import annotations

import functools
import importlib.resources
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from gmsr_cli.errors import CubeError, DataError, FormatError, InputImageError

WAVELENGTHS_NM = np.arange(400.0, 701.0, 10.0)  # (31,) float64, nm
N_BANDS = 31


def on_render_grid(wavelengths_nm: np.ndarray) -> bool:
    """Whether a cube's band centres (nm) are the 31 bands 400-700 nm (within 0.5 nm) that the
    camera models render."""
    wl = np.asarray(wavelengths_nm)
    return wl.shape == WAVELENGTHS_NM.shape and bool(np.allclose(wl, WAVELENGTHS_NM, atol=0.5))


DEFAULT_CAMERA = "srgb"
STANDARD_CAMERAS = ("srgb", "cie1964")

# Environment variable naming the .npz that holds the 28 measured camera responses.
CAMERA_DATA_ENV = "GMSR_CAMERA_DATA"
CAMERA_DATA_FILE = "cameras/cameras_400_700_10nm.npz"  # inside the data folder (gmsr_cli.datadir)

# Rows per block when rendering an (H, W, 31) array-like: bounds the float64 temporaries to
# about 256 * W * 31 * 8 bytes (16 MB for a 1000-pixel-wide image) whatever the image height.
RENDER_BLOCK_ROWS = 256

_BRADFORD = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]]
)
_D65_XYZ = np.array([0.95047, 1.0, 1.08883])
_XYZ_TO_SRGB = np.array(
    [
        [3.2404542, -1.5371385, -0.4985314],
        [-0.9692660, 1.8760108, 0.0415560],
        [0.0556434, -0.2040259, 1.0572252],
    ]
)


# ---------------------------------------------------------------------------------------------
# Response data
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _standard_responses() -> dict[str, np.ndarray]:
    """The CIE 1931 CMF and NTIRE 2020 response shipped in gmsr_cli/data/standard_cameras.npz."""
    resource = importlib.resources.files("gmsr_cli").joinpath("data/standard_cameras.npz")
    with resource.open("rb") as fh, np.load(fh) as npz:
        return {key: np.array(npz[key]) for key in ("wavelengths", "cie1931_2deg_cmf", "cie1964_w_gain")}


def camera_data_path() -> Path | None:
    """Where the measured camera responses are read from: $GMSR_CAMERA_DATA, else
    cameras/cameras_400_700_10nm.npz in the data folder (gmsr_cli.datadir); None if neither is set."""
    from gmsr_cli.datadir import data_path

    return data_path(CAMERA_DATA_ENV, CAMERA_DATA_FILE)[0]


@functools.lru_cache(maxsize=4)
def _measured_cameras_at(path_str: str | None, how: str = "") -> dict[str, np.ndarray]:
    if path_str is None:
        raise DataError(f"the measured camera responses (cameras_400_700_10nm.npz) are not found: {how}")
    path = Path(path_str)
    if not path.is_file():
        raise DataError(f"measured camera responses not found at {path} ({how})")
    try:
        with np.load(path) as npz:
            names = [str(n) for n in npz["jiang2013_names"]]
            ssf = np.asarray(npz["jiang2013_ssf"], dtype=np.float64)
            wavelengths = np.asarray(npz["wavelengths"], dtype=np.float64)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(
            f"cannot read measured camera responses from {path} ({exc}); {CAMERA_DATA_ENV} must point "
            "at cameras_400_700_10nm.npz with keys jiang2013_names, jiang2013_ssf, wavelengths"
        ) from exc
    if ssf.shape != (len(names), N_BANDS, 3) or not np.allclose(wavelengths, WAVELENGTHS_NM):
        raise DataError(
            f"{path}: jiang2013_ssf has shape {ssf.shape} on wavelengths "
            f"{wavelengths.min():g}-{wavelengths.max():g} nm; expected ({len(names)}, 31, 3) on 400-700 nm"
        )
    # spec/cameras.md: a flat spectrum of 1 maps to a maximum channel value of 1.
    flat = ssf.sum(axis=1)  # (28, 3)
    ssf = ssf / flat.max(axis=1)[:, None, None]
    return {name: ssf[i] for i, name in enumerate(names)}


def _measured_cameras() -> dict[str, np.ndarray]:
    from gmsr_cli.datadir import data_path

    path, how = data_path(CAMERA_DATA_ENV, CAMERA_DATA_FILE)
    return _measured_cameras_at(None if path is None else str(path), how)


def measured_cameras_problem() -> str | None:
    """Why the measured cameras are unavailable (one line saying what to set), or None when they are."""
    try:
        _measured_cameras()
    except DataError as exc:
        return str(exc)
    return None


def _name_key(name: str) -> str:
    # "Canon 1DMarkIII", "canon-1dmarkiii" and "CANON_1DMARKIII" all name the same camera.
    return re.sub(r"[^0-9a-z]", "", name.lower())


def _resolve(name: str) -> str:
    """The canonical camera name for `name`, or FormatError listing the choices."""
    if not isinstance(name, str):
        raise FormatError(f"camera must be a name (str), got {type(name).__name__}")
    if name in STANDARD_CAMERAS:
        return name
    key = _name_key(name)
    for std in STANDARD_CAMERAS:
        if key == _name_key(std):
            return std
    try:
        measured = _measured_cameras()
    except DataError as exc:
        raise FormatError(
            f"unknown camera {name!r}; choose one of: {', '.join(STANDARD_CAMERAS)} "
            f"(the 28 measured cameras are unavailable: {exc})"
        ) from None
    if name in measured:
        return name
    for known in measured:
        if key == _name_key(known):
            return known
    raise FormatError(f"unknown camera {name!r}; choose one of: {', '.join(camera_names())}")


def camera_names() -> list[str]:
    """Every camera name render accepts: 'srgb', 'cie1964', then the measured cameras when their data file is found."""
    try:
        measured = list(_measured_cameras())
    except DataError:
        measured = []
    return [*STANDARD_CAMERAS, *measured]


def camera_kind(name: str) -> str:
    """'srgb' for the sRGB-encoded (gamma) camera, 'linear' for every other camera."""
    return "srgb" if _resolve(name) == "srgb" else "linear"


@functools.lru_cache(maxsize=64)
def _camera_matrix_cached(canonical: str) -> np.ndarray:
    if canonical == "srgb":
        cmf = _standard_responses()["cie1931_2deg_cmf"]
        to_xyz = cmf / cmf[:, 1].sum()  # a flat spectrum of 1 has Y = 1
        white_e = to_xyz.sum(axis=0)  # XYZ of the flat spectrum (illuminant E)
        cone_gain = (_BRADFORD @ _D65_XYZ) / (_BRADFORD @ white_e)
        adapt = np.linalg.inv(_BRADFORD) @ np.diag(cone_gain) @ _BRADFORD  # XYZ_E -> XYZ_D65
        matrix = to_xyz @ adapt.T @ _XYZ_TO_SRGB.T
    elif canonical == "cie1964":
        matrix = _standard_responses()["cie1964_w_gain"] / 255.0
    else:
        matrix = _measured_cameras()[canonical]
    matrix = np.ascontiguousarray(matrix, dtype=np.float64)
    matrix.setflags(write=False)
    return matrix


def camera_matrix(name: str = DEFAULT_CAMERA) -> np.ndarray:
    """The (31, 3) float64 matrix taking a reflectance cube (..., 31) to the camera's linear RGB (..., 3)."""
    return _camera_matrix_cached(_resolve(name)).copy()


# ---------------------------------------------------------------------------------------------
# Transfer functions (numpy arrays and torch tensors alike)
# ---------------------------------------------------------------------------------------------


def _torch_module(x: Any):
    """torch when `x` is a torch tensor, else None; never imports torch itself."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return torch
    return None


def _srgb_oetf(x, torch=None):
    """sRGB encoding of linear values already clipped to [0, 1]."""
    if torch is not None:
        return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)
    # np.maximum keeps the power off the (unused) tiny values: cheaper and no warnings.
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.maximum(x, 0.0031308) ** (1 / 2.4) - 0.055)


def _srgb_inverse_oetf(x, torch=None):
    if torch is not None:
        return torch.where(x <= 0.04045, x / 12.92, ((x.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4)


def linearize(rgb, camera: str = DEFAULT_CAMERA):
    """Linear camera RGB from encoded RGB float in [0, 1] (..., 3): inverse sRGB OETF for 'srgb', identity otherwise.

    numpy input gives float64 (float32 stays float32); a torch tensor gives a tensor on the same device.
    """
    kind = camera_kind(camera)
    torch = _torch_module(rgb)
    if torch is not None:
        if not rgb.is_floating_point():
            raise InputImageError(f"linearize expects float RGB in [0, 1], got a {rgb.dtype} tensor")
        return _srgb_inverse_oetf(rgb, torch) if kind == "srgb" else rgb
    arr = np.asarray(rgb)
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputImageError(f"linearize expects float RGB in [0, 1], got dtype {arr.dtype} (divide 8-bit by 255)")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    if kind != "srgb":
        return arr.copy()
    return _srgb_inverse_oetf(arr).astype(arr.dtype, copy=False)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def _encode(linear, kind: str, torch=None):
    """Clip linear RGB to [0, 1] and apply the camera's encoding (float, unquantised)."""
    if torch is not None:
        clipped = linear.clamp(0.0, 1.0)
    else:
        clipped = np.clip(linear, 0.0, 1.0)
    return _srgb_oetf(clipped, torch) if kind == "srgb" else clipped


def _check_cube(cube, band_axis: int) -> tuple[int, ...]:
    shape = tuple(getattr(cube, "shape", ()))
    if not shape or shape[band_axis] != N_BANDS:
        raise CubeError(
            f"render expects a cube with {N_BANDS} bands (400-700 nm at 10 nm) on axis {band_axis}, "
            f"got shape {shape}; resample the cube to the 31-band grid first"
        )
    dtype = getattr(cube, "dtype", None)
    is_float = dtype.is_floating_point if _torch_module(cube) is not None else np.issubdtype(np.dtype(dtype), np.floating)
    if not is_float:
        raise CubeError(
            f"render expects float reflectance in [0, 1], got dtype {dtype}; scale integer cubes to reflectance first"
        )
    return shape


def _render_numpy_block(block: np.ndarray, matrix: np.ndarray, kind: str, quantize: bool) -> np.ndarray:
    """(..., 31) float -> (..., 3) float64 encoded in [0, 1], quantised to multiples of 1/255 if asked."""
    encoded = _encode(np.asarray(block, dtype=np.float64) @ matrix, kind)
    return np.rint(255.0 * encoded) if quantize else encoded


def _is_cube_object(cube) -> bool:
    """A gmsr_cli.io.Cube (duck-typed: spectra does not import the I/O layer)."""
    return hasattr(cube, "read_rows") and hasattr(cube, "wavelengths_nm")


def _render_numpy(cube, camera: str, quantize: bool, out_dtype, band_axis: int) -> np.ndarray:
    """Shared numpy path of render_rgb/render_rgb_float: row blocks for (H, W, 31) array-likes and Cubes."""
    matrix = _camera_matrix_cached(_resolve(camera))
    kind = camera_kind(camera)
    to_unit = quantize and out_dtype != np.uint8  # 8-bit levels back to [0, 1]

    def render(block) -> np.ndarray:
        values = _render_numpy_block(block, matrix, kind, quantize)
        return (values / 255.0).astype(out_dtype) if to_unit else values.astype(out_dtype)

    if _is_cube_object(cube):
        wavelengths = np.asarray(cube.wavelengths_nm, dtype=np.float64)
        if wavelengths.shape != WAVELENGTHS_NM.shape or not np.allclose(wavelengths, WAVELENGTHS_NM, atol=1e-3):
            raise CubeError(
                f"render needs a cube on 400-700 nm at 10 nm (31 bands); this one has {wavelengths.size} bands "
                f"over {wavelengths.min():g}-{wavelengths.max():g} nm"
            )

        def read_rows(r0: int, r1: int):
            return cube.read_rows(r0, r1, dtype=np.float64)  # the Cube applies its scale

        shape = tuple(cube.shape)
    else:
        shape = _check_cube(cube, band_axis)
        if band_axis not in (-1, len(shape) - 1):
            return np.moveaxis(render(np.moveaxis(np.asarray(cube), band_axis, -1)), -1, band_axis)
        if len(shape) != 3:
            return render(np.asarray(cube))

        def read_rows(r0: int, r1: int):
            return cube[r0:r1]

    # (H, W, 31): possibly an h5py dataset or memmap larger than memory, read in row blocks.
    out = np.empty(shape[:2] + (3,), dtype=out_dtype)
    for r0 in range(0, shape[0], RENDER_BLOCK_ROWS):
        r1 = min(r0 + RENDER_BLOCK_ROWS, shape[0])
        out[r0:r1] = render(read_rows(r0, r1))
    return out


def render_rgb(cube, camera: str = DEFAULT_CAMERA) -> np.ndarray:
    """8-bit RGB (..., 3) uint8 of a reflectance cube (..., 31) float in [0, 1] seen by `camera`.

    `cube` may be any array-like (numpy array, memmap, h5py dataset) or a gmsr_cli.io.Cube on the
    31-band grid (its scale applied); an (H, W, 31) one is read and rendered in blocks of
    RENDER_BLOCK_ROWS rows, so memory stays bounded for large images.
    """
    if _torch_module(cube) is not None:
        cube = cube.detach().cpu().numpy()
    return _render_numpy(cube, camera, quantize=True, out_dtype=np.uint8, band_axis=-1)


def render_rgb_float(cube, camera: str = DEFAULT_CAMERA, quantize: bool = True, band_axis: int = -1):
    """What a photo of the cube looks like to the network: float32 RGB in [0, 1], 3 channels on `band_axis`.

    cube: reflectance (..., 31) float (bands on `band_axis`), values above 1 are clipped as a camera
    clips. quantize=True rounds to 8-bit levels (equals render_rgb(cube) / 255); quantize=False keeps
    the continuous encoded value. numpy/array-like/io.Cube input gives a numpy array (computed in
    float64, (H, W, 31) read in row blocks); a torch tensor gives a tensor on the same device (computed in
    float32, or float64 for float64 input; not meant to be differentiated through the rounding).
    """
    torch = _torch_module(cube)
    if torch is None:
        return _render_numpy(cube, camera, quantize=quantize, out_dtype=np.float32, band_axis=band_axis)
    _check_cube(cube, band_axis)
    kind = camera_kind(camera)
    work_dtype = torch.float64 if cube.dtype == torch.float64 else torch.float32
    matrix = torch.from_numpy(camera_matrix(camera)).to(device=cube.device, dtype=work_dtype)
    spectra = cube.to(work_dtype).movedim(band_axis, -1)
    encoded = _encode(spectra @ matrix, kind, torch)
    if quantize:
        encoded = torch.round(encoded * 255.0) / 255.0
    return encoded.to(torch.float32).movedim(-1, band_axis)
