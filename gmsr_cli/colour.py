"""Exact colour: project each reconstructed spectrum onto the spectra that render exactly to its photo pixel."""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import spectra
from .errors import InputImageError

# exact_colour=None everywhere means: as the weights' card says (its "exact_colour" entry, which
# scripts/ship_weights.py sets on only where validation PSNR does not drop and MRAE does not rise).
# Weights without that entry: on for the sRGB camera, off for linear ones, as measured on the shipped
# weights (`gmsr evaluate --exact-colour` / `--no-exact-colour`): with a linear camera an 8-bit level is
# a coarse step in the dark, and matching it exactly raised MRAE.
DEFAULT_EXACT_COLOUR = None
CARD_KEY = "exact_colour"

# Pixels corrected at a time by correct_cube: bounds its temporaries to about 2**18 * 31 * 4 bytes
# (32 MB) whatever the width of the photo.
_BLOCK_PIXELS = 2 ** 18


def resolve_exact_colour(exact_colour: bool | None, model) -> bool:
    """``exact_colour`` itself, or for None the default of ``model`` (an api.LoadedModel): its card's
    "exact_colour" entry, else True for weights of the sRGB camera and False for linear cameras."""
    if exact_colour is not None:
        return bool(exact_colour)
    card = model.weights.card if model.weights is not None else {}
    if isinstance(card.get(CARD_KEY), bool):
        return card[CARD_KEY]
    return spectra.camera_kind(model.camera) == "srgb"


def _unit_float(photo: np.ndarray) -> tuple[np.ndarray, float]:
    """The photo as float64 in [0, 1] and the value a saturated channel has in it (1.0)."""
    if photo.dtype == np.uint8:
        return photo.astype(np.float64) / 255.0, 1.0
    if photo.dtype == np.uint16:
        return photo.astype(np.float64) / 65535.0, 1.0
    if np.issubdtype(photo.dtype, np.floating):
        return photo.astype(np.float64), 1.0
    raise InputImageError(f"exact colour needs a uint8, uint16 or float RGB photo, got dtype {photo.dtype}")


@np.errstate(invalid="ignore")
def unclipped_mask(photo: np.ndarray) -> np.ndarray:
    """(h, w) bool: pixels whose every channel is strictly inside (0, max) -- the only ones whose
    linear RGB is known (a channel at 0 or at its maximum was clipped by the camera)."""
    unit, top = _unit_float(np.asarray(photo))
    return np.all((unit > 0.0) & (unit < top), axis=-1)


def correct_block(cube: np.ndarray, photo: np.ndarray, camera: str) -> np.ndarray:
    """The minimal (least-squares) change of each spectrum that makes it render to its photo pixel.

    cube: (h, w, 31) float reflectance reconstructed from ``photo``; photo: (h, w, 3) RGB, uint8,
    uint16 or float in [0, 1], encoded as ``camera`` encodes (sRGB transfer curve for 'srgb').
    For every pixel with no clipped channel, s' = s + (t - s M) M^+ with M the camera's (31, 3)
    matrix, M^+ its (3, 31) pseudo-inverse and t the pixel's linear RGB, so s' M = t exactly;
    clipped pixels are returned unchanged. Returns a new (h, w, 31) array of ``cube``'s float dtype
    (float32 for other dtypes). Values may go slightly negative where the network's colour was off.
    """
    cube = np.asarray(cube)
    out_dtype = cube.dtype if np.issubdtype(cube.dtype, np.floating) else np.dtype(np.float32)
    work = np.array(cube, dtype=np.promote_types(out_dtype, np.float32))
    _correct_in_place(work, photo, camera)
    return work.astype(out_dtype, copy=False)


def _correct_in_place(work: np.ndarray, photo: np.ndarray, camera: str) -> None:
    """correct_block on a float32 or float64 (h, w, 31) array, in place. The colour residual (3 values
    a pixel) is computed in float64; the 31-band arrays stay in ``work``'s dtype (float32 keeps
    the re-rendered colour within 1e-6 of the photo's, and costs half the memory traffic)."""
    photo = np.asarray(photo)
    if work.shape[:-1] != photo.shape[:-1] or work.shape[-1] != spectra.N_BANDS or photo.shape[-1] != 3:
        raise InputImageError(f"exact colour needs a (h, w, 31) cube and its (h, w, 3) photo, "
                              f"got {work.shape} and {photo.shape}")
    matrix = spectra.camera_matrix(camera)  # (31, 3) float64
    unit, _ = _unit_float(photo)
    target = spectra.linearize(unit, camera)  # (h, w, 3) float64
    residual = target - work @ matrix.astype(work.dtype)
    residual[~unclipped_mask(photo)] = 0.0
    work += residual.astype(work.dtype) @ np.linalg.pinv(matrix).astype(work.dtype)


def correct_cube(cube: np.ndarray, photo: np.ndarray, camera: str) -> np.ndarray:
    """correct_block applied in place to a whole (H, W, 31) float cube, a few rows at a time; returns ``cube``."""
    if not np.issubdtype(cube.dtype, np.floating):
        raise InputImageError(f"exact colour corrects a float cube in place, got dtype {cube.dtype}")
    step = max(1, _BLOCK_PIXELS // max(1, cube.shape[1]))
    for y0 in range(0, cube.shape[0], step):
        y1 = min(y0 + step, cube.shape[0])
        if cube.dtype in (np.float32, np.float64):
            _correct_in_place(cube[y0:y1], photo[y0:y1], camera)
        else:  # float16: corrected in float32
            cube[y0:y1] = correct_block(cube[y0:y1], photo[y0:y1], camera)
    return cube


def correcting_rows(on_rows: Callable[[int, np.ndarray], None], photo: np.ndarray,
                    camera: str) -> Callable[[int, np.ndarray], None]:
    """An on_rows callback for tiling.tiled_forward that corrects each finished row block against the
    photo's same rows before handing it on: the correction is per pixel, so no other rows are needed."""

    def on_corrected_rows(y0: int, block: np.ndarray) -> None:
        # In place: tiled_forward hands over rows it has finished with (its on_rows contract), and a
        # copy of a 6000 px wide tile row would cost another 330 MB at the peak.
        if block.dtype != np.float32 or not block.flags.writeable:
            block = np.array(block, dtype=np.float32)
        on_rows(y0, correct_cube(block, photo[y0:y0 + block.shape[0]], camera))

    return on_corrected_rows
