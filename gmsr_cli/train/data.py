"""Training data: the CAVE split, loading cubes onto the 31-band grid, random (RGB, cube) patches and crop packs."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from gmsr_cli import spectra
from gmsr_cli.errors import DataError, OutputExistsError

PathLike = Union[str, os.PathLike]

# Environment variable naming the folder of CAVE scene files (<scene>.h5).
CAVE_DIR_ENV = "GMSR_CAVE_DIR"

# Validation scenes, one per kind of content, chosen from the 24 CAVE scenes we have
# (looked at their rgb_cave renderings):
VAL_SCENES = (
    # food: real and fake fruit and vegetables (peppers, apples, strawberries, lemons...) of many
    # hues and materials, so it covers what the other seven fake_and_real_* scenes hold;
    "fake_and_real_food",
    # textile/toy: plush fabric toys beside a colour checker, soft diffuse dyed fibres;
    "stuffed_toys",
    # painted/art: a painted canvas (sunflowers) with oil pigments, unlike the printed/dyed scenes;
    "oil_painting",
    # object/material: translucent coloured glass, specular and saturated, unlike opaque surfaces.
    "glass_tiles",
)
TRAIN_SCENES = (
    "beads",
    "chart_and_stuffed_toy",
    "clay",
    "cloth",
    "egyptian_statue",
    "fake_and_real_beers",
    "fake_and_real_lemon_slices",
    "fake_and_real_lemons",
    "fake_and_real_peppers",
    "fake_and_real_strawberries",
    "fake_and_real_sushi",
    "fake_and_real_tomatoes",
    "hairs",
    "paints",
    "photo_and_face",
    "pompoms",
    "real_and_fake_peppers",
    "sponges",
    "thread_spools",
    "watercolors",
)

PACK_FORMAT = "gmsr-crop-pack"
PACK_VERSION = 1

_UINT16_MAX = 65535


# ---------------------------------------------------------------------------------------------
# Scenes and cubes
# ---------------------------------------------------------------------------------------------


def cave_dir() -> Path:
    """The CAVE scene folder: $GMSR_CAVE_DIR, else cave/ in the data folder (gmsr_cli.datadir:
    $GMSR_DATA_DIR, or a checkout's ../shared/data). Raises DataError saying what to set when none is."""
    from gmsr_cli.datadir import data_path

    path, how = data_path(CAVE_DIR_ENV, "cave")
    if path is None:
        raise DataError(f"the CAVE scenes are not found: {how} (or pass --data-dir)")
    return path


def scene_paths(split: str = "train", data_dir: PathLike | None = None) -> list[Path]:
    """Paths of the CAVE scene files of `split` ('train', 'val' or 'all'), in split order."""
    names = {"train": TRAIN_SCENES, "val": VAL_SCENES, "all": TRAIN_SCENES + VAL_SCENES}.get(split)
    if names is None:
        raise DataError(f"unknown split {split!r}; choose one of: train, val, all")
    folder = Path(data_dir) if data_dir is not None else cave_dir()
    paths = [folder / f"{name}.h5" for name in names]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} CAVE scene file(s) missing from {folder} ({', '.join(missing[:4])}"
            f"{', ...' if len(missing) > 4 else ''}); pass --data-dir, or set {CAVE_DIR_ENV} to the folder "
            "holding <scene>.h5 (or GMSR_DATA_DIR to the data folder holding cave/)"
        )
    return paths


def _read_cave(path: Path) -> tuple[np.ndarray, float, np.ndarray] | None:
    """(uint16 cube (H, W, B), reflectance per count, wavelengths (B,)) of a CAVE-layout file, or None if not one."""
    if path.suffix.lower() not in (".h5", ".hdf5"):
        return None
    try:
        fh = h5py.File(path, "r")
    except OSError:
        return None
    with fh:
        dataset = fh.get("cube")
        if (
            fh.attrs.get("format") == PACK_FORMAT
            or not isinstance(dataset, h5py.Dataset)
            or dataset.dtype != np.uint16
            or dataset.ndim != 3
            or "scale" not in dataset.attrs
            or "wavelengths" not in fh
        ):
            return None  # not our CAVE layout: gmsr_cli.io reads it
        wavelengths = np.asarray(fh["wavelengths"], dtype=np.float64).ravel()
        if dataset.shape[2] != wavelengths.shape[0]:
            raise DataError(
                f"{path}: CAVE 'cube' has {dataset.shape[2]} bands but {wavelengths.shape[0]} wavelengths"
            )
        return dataset[()], float(dataset.attrs["scale"]), wavelengths


def _on_grid(wavelengths: np.ndarray) -> bool:
    return wavelengths.shape == spectra.WAVELENGTHS_NM.shape and np.allclose(wavelengths, spectra.WAVELENGTHS_NM, atol=1e-3)


def resample_to_grid(cube: np.ndarray, wavelengths_nm: np.ndarray, source: str = "cube") -> np.ndarray:
    """Linearly interpolate a cube (H, W, B) on `wavelengths_nm` (B,) onto WAVELENGTHS_NM: float32 (H, W, 31)."""
    wl = np.asarray(wavelengths_nm, dtype=np.float64).ravel()
    if wl.shape[0] != cube.shape[-1]:
        raise DataError(f"{source}: {cube.shape[-1]} bands but {wl.shape[0]} wavelengths")
    order = np.argsort(wl)
    wl = wl[order]
    target = spectra.WAVELENGTHS_NM
    tol = 1e-3  # nm: grids stored as float32 are not exactly 400.0 / 700.0
    if wl[0] > target[0] + tol or wl[-1] < target[-1] - tol:
        raise DataError(
            f"{source}: wavelengths {wl[0]:g}-{wl[-1]:g} nm do not cover 400-700 nm; "
            "GMSR-Net needs a cube spanning 400-700 nm to train on"
        )
    if np.any(np.diff(wl) <= 0):
        raise DataError(f"{source}: wavelengths are not distinct")
    if _on_grid(wl):
        return np.asarray(cube[..., order] if np.any(order != np.arange(order.size)) else cube, dtype=np.float32)
    upper = np.clip(np.searchsorted(wl, target - tol, side="left"), 1, wl.shape[0] - 1)
    lower = upper - 1
    t = np.clip((target - wl[lower]) / (wl[upper] - wl[lower]), 0.0, 1.0).astype(np.float32)
    src = np.asarray(cube, dtype=np.float32)
    lo = src[..., order[lower]]
    hi = src[..., order[upper]]
    return lo + (hi - lo) * t


def load_training_cube(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A cube file as (reflectance float32 (H, W, 31), wavelengths float64 (31,) = WAVELENGTHS_NM).

    CAVE scene files (HDF5 with a uint16 'cube' carrying a 'scale' attribute) are read directly;
    anything else goes through gmsr_cli.io.read_cube (HDF5, ENVI, .mat) and is resampled linearly
    to 400-700 nm at 10 nm when its wavelengths differ (DataError when they do not cover that range).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"training cube not found: {path}")
    cave = _read_cave(path)
    if cave is not None:
        counts, scale, wavelengths = cave
        cube = counts.astype(np.float32) * np.float32(scale)
        del counts
    else:
        cube, wavelengths = _read_other_cube(path)
    return resample_to_grid(cube, wavelengths, source=str(path)), spectra.WAVELENGTHS_NM.copy()


def _read_other_cube(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(reflectance float32 (H, W, B), wavelengths (B,)) of a non-CAVE cube file, read by gmsr_cli.io."""
    from gmsr_cli.io import read_cube  # lazy: only non-CAVE training data needs the I/O layer

    with read_cube(path) as cube:
        return cube.to_array(np.float32), np.asarray(cube.wavelengths_nm, dtype=np.float64)


def whole_scene_pair(cube, camera: str = spectra.DEFAULT_CAMERA) -> tuple[np.ndarray, np.ndarray]:
    """(RGB float32 (H, W, 3) in [0, 1] as an 8-bit photo by `camera`, cube float32 (H, W, 31)) for validation.

    `cube` is a reflectance array (H, W, 31) or the path of a training cube file.
    """
    if isinstance(cube, (str, os.PathLike)):
        cube, _ = load_training_cube(cube)
    cube = np.asarray(cube, dtype=np.float32)
    return spectra.render_rgb_float(cube, camera), cube


# ---------------------------------------------------------------------------------------------
# Compact in-memory cubes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredCube:
    """A cube kept as uint16 counts (H, W, 31) to halve RAM; reflectance = counts * scale."""

    counts: np.ndarray
    scale: float
    name: str


def _to_counts(cube: np.ndarray) -> tuple[np.ndarray, float]:
    """Reflectance float (H, W, 31) -> (uint16 counts, scale); the scale keeps values above 1."""
    peak = float(np.max(cube)) if cube.size else 1.0
    scale = max(peak, 1.0) / _UINT16_MAX
    counts = np.empty(cube.shape, dtype=np.uint16)
    for r0 in range(0, cube.shape[0], 64):  # row blocks bound the float temporaries
        block = np.asarray(cube[r0 : r0 + 64], dtype=np.float32)
        counts[r0 : r0 + 64] = np.rint(np.clip(block / np.float32(scale), 0, _UINT16_MAX))
    return counts, scale


def _is_pack(path: Path) -> bool:
    if path.suffix.lower() not in (".h5", ".hdf5"):
        return False
    try:
        with h5py.File(path, "r") as fh:
            return fh.attrs.get("format") == PACK_FORMAT
    except OSError:
        return False


def _load_pack(path: Path) -> list[StoredCube]:
    with h5py.File(path, "r") as fh:
        version = int(fh.attrs.get("version", -1))
        if version != PACK_VERSION or "crops" not in fh or "scale" not in fh:
            raise DataError(f"{path}: crop pack version {version} or layout not understood; rebuild it with pack_crops")
        crops = fh["crops"][()]
        scales = np.asarray(fh["scale"], dtype=np.float64)
        scenes = [s.decode() if isinstance(s, bytes) else str(s) for s in fh["scene"][()]]
    return [StoredCube(crops[i], float(scales[i]), f"{scenes[i]}#{i}") for i in range(crops.shape[0])]


def load_stored_cubes(sources: Sequence) -> list[StoredCube]:
    """Load training sources one at a time as uint16 StoredCubes (never all as float32 at once).

    Each source is a CAVE scene file, a crop pack written by pack_crops (gives one StoredCube per
    crop), any cube file load_training_cube reads, a reflectance array (H, W, 31), or a StoredCube.
    """
    stored: list[StoredCube] = []
    for i, source in enumerate(sources):
        if isinstance(source, StoredCube):
            stored.append(source)
            continue
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.exists():
                raise DataError(f"training data not found: {path}")
            if _is_pack(path):
                stored.extend(_load_pack(path))
                continue
            cave = _read_cave(path)
            if cave is not None and _on_grid(cave[2]):
                stored.append(StoredCube(cave[0], cave[1], path.stem))
                continue
            del cave
            cube, _ = load_training_cube(path)
            stored.append(StoredCube(*_to_counts(cube), path.stem))
            continue
        cube = np.asarray(source)
        if cube.ndim != 3 or cube.shape[2] != spectra.N_BANDS or not np.issubdtype(cube.dtype, np.floating):
            raise DataError(f"training source {i}: expected float reflectance (H, W, 31), got {cube.dtype} {cube.shape}")
        stored.append(StoredCube(*_to_counts(cube), f"array{i}"))
    return stored


# ---------------------------------------------------------------------------------------------
# Random patches
# ---------------------------------------------------------------------------------------------


class PatchDataset(Dataset):
    """Random (RGB, cube) training patches rendered on the fly from uint16 cubes held in memory.

    Sample `index` of epoch `e` depends only on (seed, e, index): results are the same whatever
    the number of DataLoader workers. Each sample: a scene drawn uniformly, a random patch_px crop,
    a random one of the 8 flips/rotations, a gain drawn log-uniformly from gain_range (the target
    is gain * cube, unclipped; the RGB is rendered from it and clips as a real photo does), and the
    camera `camera`, or one drawn uniformly from `cameras` when given. With probability
    `mix_prob` the reflectance is instead a per-pixel blend a * A + (1 - a) * B of two such
    patches (a drawn uniformly in [0, 1], the same over the patch): linear spectral mixing, as of
    two materials sharing a pixel, which shows the network spectra and colours that the few
    training scenes do not hold; the RGB is rendered from the blend. Returns
    (rgb float32 tensor (3, p, p) in [0, 1], 8-bit levels; cube float32 tensor (31, p, p)).
    """

    def __init__(
        self,
        sources: Sequence,
        patch_px: int = 128,
        *,
        camera: str = spectra.DEFAULT_CAMERA,
        cameras: Sequence[str] | None = None,
        gain_range: tuple[float, float] = (0.5, 2.0),
        samples_per_epoch: int = 4096,
        seed: int = 0,
        geometric: bool = True,
        mix_prob: float = 0.0,
    ):
        self.cubes = load_stored_cubes(sources)
        if not self.cubes:
            raise DataError("PatchDataset needs at least one training cube")
        self.patch_px = int(patch_px)
        small = [c.name for c in self.cubes if min(c.counts.shape[:2]) < self.patch_px]
        if self.patch_px < 1 or small:
            raise DataError(
                f"patch_px={patch_px} does not fit {len(small)} cube(s) (e.g. {small[:2]}); lower patch_px"
            )
        lo, hi = (float(g) for g in gain_range)
        if not 0 < lo <= hi:
            raise DataError(f"gain_range must satisfy 0 < low <= high, got {gain_range}")
        self.log_gain_range = (math.log(lo), math.log(hi))
        self.cameras = list(cameras) if cameras else [camera]
        for name in self.cameras:  # an unknown camera fails here, not in a worker mid-epoch
            spectra.camera_matrix(name)
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self.geometric = bool(geometric)
        if not 0.0 <= float(mix_prob) <= 1.0:
            raise DataError(f"mix_prob must lie in [0, 1], got {mix_prob}")
        self.mix_prob = float(mix_prob)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw a different set of patches for `epoch` (workers must be recreated: persistent_workers=False)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.samples_per_epoch:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        cube = self._reflectance_patch(rng)
        if self.mix_prob and rng.random() < self.mix_prob:
            a = np.float32(rng.random())
            cube = a * cube + (np.float32(1.0) - a) * self._reflectance_patch(rng)
        gain = math.exp(rng.uniform(*self.log_gain_range))
        camera = self.cameras[int(rng.integers(len(self.cameras)))]
        cube = cube * np.float32(gain)
        rgb = self._render(cube, camera, rng)
        return (
            torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))),
            torch.from_numpy(np.ascontiguousarray(cube.transpose(2, 0, 1))),
        )

    def _render(self, cube: np.ndarray, camera: str, rng: np.random.Generator) -> np.ndarray:
        """The sample's 8-bit float RGB (p, p, 3) (train/synthetic.py relights here)."""
        return spectra.render_rgb_float(cube, camera)  # clips at 1 and rounds to 8 bits

    def _reflectance_patch(self, rng: np.random.Generator) -> np.ndarray:
        """A random scene's random patch_px crop in a random orientation, float32 (p, p, 31)."""
        stored = self.cubes[int(rng.integers(len(self.cubes)))]
        p = self.patch_px
        height, width = stored.counts.shape[:2]
        y = int(rng.integers(height - p + 1))
        x = int(rng.integers(width - p + 1))
        counts = stored.counts[y : y + p, x : x + p]
        if self.geometric:
            # rot90 by k and an optional mirror give all 8 symmetries of the square
            counts = np.rot90(counts, int(rng.integers(4)), axes=(0, 1))
            if rng.integers(2):
                counts = counts[:, ::-1]
        return np.ascontiguousarray(counts).astype(np.float32) * np.float32(stored.scale)


# ---------------------------------------------------------------------------------------------
# Crop packs
# ---------------------------------------------------------------------------------------------


def pack_crops(
    sources: Sequence,
    out_path: PathLike,
    n_crops: int,
    crop_px: int = 256,
    *,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write `n_crops` random crop_px x crop_px crops of the training cubes to one HDF5 pack.

    `sources` are what load_stored_cubes takes (typically scene_paths("train")). Crops are shared
    out evenly over them (loaded one at a time, crop origins from a numpy Generator seeded by
    `seed`) and stored as uint16
    'crops' (N, crop_px, crop_px, 31), gzip + shuffle, with 'scale' (N,) reflectance per count,
    'scene' (N,) names, 'origin' (N, 2) top-left (row, col) and 'wavelengths' (31,). A pack is
    a valid PatchDataset source. Returns the path written.
    """
    out_path = Path(out_path)
    if out_path.exists() and not overwrite:
        raise OutputExistsError(f"{out_path} exists; pass overwrite=True to replace it")
    sources = list(sources)
    if n_crops < 1 or not sources:
        raise DataError(f"pack_crops needs n_crops >= 1 and at least one source (got {n_crops}, {len(sources)})")
    rng = np.random.default_rng(seed)
    per_source = [n_crops // len(sources) + (1 if i < n_crops % len(sources) else 0) for i in range(len(sources))]
    tmp_path = out_path.with_name(out_path.name + ".tmp")
    try:
        _write_pack(tmp_path, sources, per_source, n_crops, crop_px, seed, rng)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    os.replace(tmp_path, out_path)
    return out_path


def _write_pack(tmp_path: Path, sources: list, per_source: list[int], n_crops: int, crop_px: int, seed: int, rng) -> None:
    with h5py.File(tmp_path, "w") as fh:
        fh.attrs["format"] = PACK_FORMAT
        fh.attrs["version"] = PACK_VERSION
        fh.attrs["crop_px"] = crop_px
        fh.attrs["seed"] = seed
        fh["wavelengths"] = spectra.WAVELENGTHS_NM
        crops = fh.create_dataset(
            "crops",
            shape=(n_crops, crop_px, crop_px, spectra.N_BANDS),
            dtype=np.uint16,
            chunks=(1, min(crop_px, 128), min(crop_px, 128), spectra.N_BANDS),
            compression="gzip",
            compression_opts=4,
            shuffle=True,
        )
        scales = np.zeros(n_crops, dtype=np.float64)
        scenes: list[str] = []
        origins = np.zeros((n_crops, 2), dtype=np.int64)
        k = 0
        for source, count in zip(sources, per_source):
            if count == 0:
                continue
            (stored,) = load_stored_cubes([source])
            height, width = stored.counts.shape[:2]
            if min(height, width) < crop_px:
                raise DataError(f"{stored.name}: {height}x{width} is smaller than crop_px={crop_px}; lower crop_px")
            for _ in range(count):
                y = int(rng.integers(height - crop_px + 1))
                x = int(rng.integers(width - crop_px + 1))
                crops[k] = stored.counts[y : y + crop_px, x : x + crop_px]
                scales[k] = stored.scale
                origins[k] = (y, x)
                scenes.append(stored.name)
                k += 1
            del stored
        fh["scale"] = scales
        fh["origin"] = origins
        fh["scene"] = np.array(scenes, dtype=h5py.string_dtype())
