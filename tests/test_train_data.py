"""Training data: the CAVE split, cube loading and resampling, random patches and crop packs."""

import json
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from gmsr_cli import spectra
from gmsr_cli.errors import DataError, FormatError, OutputExistsError
from gmsr_cli.train import data


def _write_cave_like(path: Path, cube: np.ndarray, wavelengths) -> Path:
    """A scene file in the CAVE layout: uint16 'cube' with a 'scale' attribute and 'wavelengths'."""
    scale = 1 / 65535
    with h5py.File(path, "w") as fh:
        ds = fh.create_dataset("cube", data=np.rint(np.clip(cube, 0, 1) / scale).astype(np.uint16))
        ds.attrs["scale"] = scale
        fh["wavelengths"] = np.asarray(wavelengths, dtype=np.float32)
    return path


def _distinct_cube(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Reflectance (h, w, 31) whose pixels are all different, values well inside (0, 0.5)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.02, 0.5, size=(h, w, 31)).astype(np.float32)


def _symmetries(a: np.ndarray):
    for k in range(4):
        r = np.rot90(a, k, axes=(0, 1))
        yield r
        yield r[:, ::-1]


def _find_source(target: np.ndarray, source: np.ndarray, p: int):
    """(gain, n_matches): the gain for which target == gain * some symmetry of a p x p crop of source."""
    found = []
    for y in range(source.shape[0] - p + 1):
        for x in range(source.shape[1] - p + 1):
            for crop in _symmetries(source[y : y + p, x : x + p]):
                ratio = target / crop
                if np.allclose(ratio, ratio.flat[0], rtol=1e-5):
                    found.append(float(ratio.flat[0]))
    return found


# --- split and scenes --------------------------------------------------------------------------


def test_split_is_the_24_cave_scenes(shared_dir):
    index = json.loads((shared_dir / "data" / "cave" / "index.json").read_text())
    assert len(data.VAL_SCENES) == 4 and len(data.TRAIN_SCENES) == 20
    assert not set(data.VAL_SCENES) & set(data.TRAIN_SCENES)
    assert sorted(data.VAL_SCENES + data.TRAIN_SCENES) == sorted(index["scenes"])
    paths = data.scene_paths("val", shared_dir / "data" / "cave")
    assert [p.stem for p in paths] == list(data.VAL_SCENES) and all(p.is_file() for p in paths)
    assert len(data.scene_paths("all", shared_dir / "data" / "cave")) == 24


def test_scene_paths_errors(tmp_path):
    with pytest.raises(DataError, match="GMSR_CAVE_DIR"):
        data.scene_paths("train", tmp_path)
    with pytest.raises(DataError, match="unknown split"):
        data.scene_paths("test", tmp_path)


def test_scene_paths_from_environment(tmp_path, monkeypatch):
    for name in data.VAL_SCENES:
        (tmp_path / f"{name}.h5").write_bytes(b"")
    monkeypatch.setenv(data.CAVE_DIR_ENV, str(tmp_path))
    assert data.scene_paths("val") == [tmp_path / f"{n}.h5" for n in data.VAL_SCENES]


def test_load_cave_scene(shared_dir):
    path = shared_dir / "data" / "cave" / "clay.h5"
    cube, wavelengths = data.load_training_cube(path)
    assert cube.dtype == np.float32 and cube.shape == (512, 512, 31)
    np.testing.assert_array_equal(wavelengths, spectra.WAVELENGTHS_NM)
    with h5py.File(path, "r") as fh:
        raw = fh["cube"][100]
        scale = fh["cube"].attrs["scale"]
    np.testing.assert_allclose(cube[100], raw * scale, rtol=1e-6)
    assert 0.0 <= cube.min() and cube.max() <= 1.0


# --- resampling ----------------------------------------------------------------------------------


def test_resample_linear_spectra_exactly():
    # a spectrum linear in wavelength is reproduced exactly by linear interpolation
    wl = np.arange(395.0, 706.0, 5.0)[::-1]  # descending, 5 nm
    cube = (0.001 * (wl - 380.0))[None, None, :] * np.array([1.0, 0.5])[:, None, None]  # (2, 1, 63)
    got = data.resample_to_grid(cube, wl)
    expected = (0.001 * (spectra.WAVELENGTHS_NM - 380.0))[None, None, :] * np.array([1.0, 0.5])[:, None, None]
    assert got.shape == (2, 1, 31) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_resample_irregular_grid_by_hand():
    wl = np.array([390.0, 420.0, 690.0, 720.0])
    cube = np.array([[[0.0, 0.3, 0.6, 0.9]]])
    got = data.resample_to_grid(cube, wl)[0, 0]
    # 400 nm lies 1/3 of the way from 390 (0.0) to 420 (0.3): 0.1; 410 -> 0.2; 420 -> 0.3
    np.testing.assert_allclose(got[:3], [0.1, 0.2, 0.3], rtol=1e-6)
    # 430..690 between 420 (0.3) and 690 (0.6): 0.3 + 0.3 * (w - 420) / 270; 700 -> 0.7
    np.testing.assert_allclose(got[3], 0.3 + 0.3 * 10 / 270, rtol=1e-6)
    np.testing.assert_allclose(got[-1], 0.7, rtol=1e-6)


def test_resample_must_cover_400_700():
    with pytest.raises(DataError, match="do not cover 400-700"):
        data.resample_to_grid(np.zeros((1, 1, 30)), np.arange(410.0, 710.0, 10.0))
    with pytest.raises(DataError, match="3 bands but 2 wavelengths"):
        data.resample_to_grid(np.zeros((1, 1, 3)), [400.0, 700.0])


def test_load_cave_layout_on_another_grid(tmp_path):
    wl = np.arange(400.0, 701.0, 5.0)  # 61 bands
    cube = np.broadcast_to(((wl - 400.0) / 400.0)[None, None, :], (6, 7, 61)).astype(np.float32)
    path = _write_cave_like(tmp_path / "fine.h5", cube, wl)
    loaded, grid = data.load_training_cube(path)
    assert loaded.shape == (6, 7, 31)
    np.testing.assert_allclose(loaded[3, 4], (spectra.WAVELENGTHS_NM - 400.0) / 400.0, atol=2e-5)
    (stored,) = data.load_stored_cubes([path])
    assert stored.counts.dtype == np.uint16 and stored.counts.shape == (6, 7, 31)
    np.testing.assert_allclose(stored.counts * stored.scale, loaded, atol=2e-5)

    short = _write_cave_like(tmp_path / "short.h5", cube[..., :40], wl[:40])
    with pytest.raises(DataError, match="do not cover 400-700"):
        data.load_training_cube(short)


# --- patches -------------------------------------------------------------------------------------


def test_patch_shapes_and_rendering():
    source = _distinct_cube(20, 24)
    ds = data.PatchDataset([source], patch_px=8, samples_per_epoch=10, seed=1)
    assert len(ds) == 10
    rgb, cube = ds[3]
    assert rgb.dtype == torch.float32 and rgb.shape == (3, 8, 8)
    assert cube.dtype == torch.float32 and cube.shape == (31, 8, 8)
    levels = rgb.numpy() * 255
    np.testing.assert_allclose(levels, np.rint(levels), atol=1e-4)  # 8-bit quantised
    # the RGB is the photo of this very target (same crop, flip, rotation and gain)
    np.testing.assert_array_equal(rgb.numpy(), spectra.render_rgb_float(cube.numpy(), band_axis=0))


def test_patch_is_gained_symmetry_of_a_crop():
    source = _distinct_cube(11, 9, seed=2)
    stored_source = np.rint(source * 65535) / 65535  # what uint16 storage keeps
    ds = data.PatchDataset([source], patch_px=5, gain_range=(0.5, 2.0), samples_per_epoch=40, seed=7)
    gains = []
    for i in range(len(ds)):
        _, cube = ds[i]
        found = _find_source(cube.numpy().transpose(1, 2, 0), stored_source, 5)
        assert len(found) == 1, f"sample {i}: {len(found)} matching crops"
        gains.append(found[0])
    gains = np.array(gains)
    assert gains.min() >= 0.5 - 1e-6 and gains.max() <= 2.0 + 1e-6
    assert gains.min() < 0.8 and gains.max() > 1.3  # log-uniform over the range, not constant


def test_exposure_clips_rgb_not_target():
    source = np.full((10, 10, 31), 0.8, dtype=np.float32)
    ds = data.PatchDataset([source], patch_px=4, gain_range=(2.0, 2.0), samples_per_epoch=2, camera="cie1964")
    rgb, cube = ds[0]
    np.testing.assert_allclose(cube.numpy(), 1.6, rtol=1e-4)  # target keeps the full gain
    assert torch.all(rgb == 1.0)  # the photo saturates


def test_mixed_patches_blend_two_scenes_linearly():
    """--mix-prob: a mixed patch's reflectance is a * A + (1 - a) * B of two scenes (times the
    exposure gain), with a spread over (0, 1), and its RGB is the photo of that blend."""
    s1 = np.array(np.linspace(0.05, 0.45, 31), dtype=np.float32)  # rising spectrum
    s2 = s1[::-1].copy()  # falling
    sources = [np.broadcast_to(s1, (12, 12, 31)).copy(), np.broadcast_to(s2, (12, 12, 31)).copy()]
    stored = [np.rint(s * 65535) / 65535 for s in (s1, s2)]
    basis = np.stack(stored, axis=1)  # (31, 2)
    ds = data.PatchDataset(sources, patch_px=4, gain_range=(1.0, 1.0), samples_per_epoch=60, seed=4, mix_prob=1.0)
    weights = []
    for i in range(len(ds)):
        rgb, cube = ds[i]
        spectrum = cube.numpy()[:, 0, 0]
        assert np.allclose(cube.numpy(), spectrum[:, None, None])  # the same blend over the patch
        coef, *_ = np.linalg.lstsq(basis, spectrum, rcond=None)
        np.testing.assert_allclose(basis @ coef, spectrum, atol=1e-5)  # on the line through A and B
        assert coef.min() >= -1e-4 and abs(coef.sum() - 1) < 1e-4  # convex
        np.testing.assert_array_equal(rgb.numpy(), spectra.render_rgb_float(cube.numpy(), band_axis=0))
        weights.append(coef[0])
    weights = np.array(weights)
    strictly_between = weights[(weights > 0.05) & (weights < 0.95)]
    # the second patch comes from the other scene about half the time
    assert len(strictly_between) > 15 and strictly_between.std() > 0.15
    # without mixing, every patch is one scene's spectrum
    pure = data.PatchDataset(sources, patch_px=4, gain_range=(1.0, 1.0), samples_per_epoch=20, seed=4)
    for i in range(len(pure)):
        spectrum = pure[i][1].numpy()[:, 0, 0]
        assert min(np.abs(spectrum - s).max() for s in stored) < 1e-6
    with pytest.raises(DataError, match="mix_prob"):
        data.PatchDataset(sources, patch_px=4, mix_prob=1.5)


def test_patches_deterministic_and_seeded():
    source = _distinct_cube(16, 16)
    a = data.PatchDataset([source], patch_px=6, samples_per_epoch=8, seed=5)
    b = data.PatchDataset([source], patch_px=6, samples_per_epoch=8, seed=5)
    c = data.PatchDataset([source], patch_px=6, samples_per_epoch=8, seed=6)
    for i in range(8):
        assert torch.equal(a[i][1], b[i][1]) and torch.equal(a[i][0], b[i][0])
    assert not all(torch.equal(a[i][1], c[i][1]) for i in range(8))
    first = [a[i][1] for i in range(8)]
    a.set_epoch(1)
    assert not all(torch.equal(first[i], a[i][1]) for i in range(8))
    assert not torch.equal(first[0], first[1])
    with pytest.raises(IndexError):
        a[8]


def test_patches_same_with_workers():
    source = _distinct_cube(16, 16)
    ds = data.PatchDataset([source], patch_px=6, samples_per_epoch=6, seed=3, cameras=["srgb", "cie1964"])
    direct = [ds[i] for i in range(6)]
    loader = DataLoader(ds, batch_size=3, num_workers=2, shuffle=False)
    batched = list(loader)
    rgb = torch.cat([b[0] for b in batched])
    cube = torch.cat([b[1] for b in batched])
    assert torch.equal(rgb, torch.stack([d[0] for d in direct]))
    assert torch.equal(cube, torch.stack([d[1] for d in direct]))


def test_random_camera_per_sample(shared_dir):
    source = _distinct_cube(16, 16)
    cams = ["srgb", "cie1964", "Nikon D700"]
    ds = data.PatchDataset([source], patch_px=4, samples_per_epoch=30, seed=0, cameras=cams)
    used = set()
    for i in range(len(ds)):
        rgb, cube = ds[i]
        matches = [c for c in cams if torch.equal(rgb, torch.from_numpy(spectra.render_rgb_float(cube.numpy(), c, band_axis=0)))]
        assert matches
        used.update(matches)
    assert used == set(cams)


def test_patch_dataset_errors():
    with pytest.raises(DataError, match="lower patch_px"):
        data.PatchDataset([_distinct_cube(8, 8)], patch_px=9)
    with pytest.raises(FormatError, match="unknown camera"):
        data.PatchDataset([_distinct_cube(8, 8)], patch_px=4, camera="nope")
    with pytest.raises(DataError, match="gain_range"):
        data.PatchDataset([_distinct_cube(8, 8)], patch_px=4, gain_range=(0.0, 1.0))
    with pytest.raises(DataError, match=r"float reflectance \(H, W, 31\)"):
        data.PatchDataset([np.zeros((8, 8, 31), dtype=np.uint16)], patch_px=4)


def test_values_above_one_survive_storage():
    source = _distinct_cube(8, 8)
    source[2, 3] = 1.4
    (stored,) = data.load_stored_cubes([source])
    np.testing.assert_allclose(stored.counts[2, 3] * stored.scale, 1.4, rtol=1e-4)


def test_real_scene_patches_fast(shared_dir):
    ds = data.PatchDataset([shared_dir / "data" / "cave" / "beads.h5"], patch_px=128, samples_per_epoch=100, seed=0)
    assert ds.cubes[0].counts.dtype == np.uint16  # kept as stored, half the RAM of float32
    start = time.perf_counter()
    for i in range(len(ds)):
        rgb, cube = ds[i]
    per_sample = (time.perf_counter() - start) / len(ds)
    assert rgb.shape == (3, 128, 128) and 0 <= cube.min() and cube.max() <= 2.0 + 1e-6
    assert per_sample < 0.02, f"{per_sample * 1e3:.1f} ms per 128 px patch"


def test_whole_scene_pair(shared_dir):
    path = shared_dir / "data" / "cave" / "paints.h5"
    rgb, cube = data.whole_scene_pair(path)
    assert rgb.shape == (512, 512, 3) and rgb.dtype == np.float32
    assert cube.shape == (512, 512, 31) and cube.dtype == np.float32
    np.testing.assert_array_equal(rgb, spectra.render_rgb(cube) / np.float32(255))
    rgb_lin, _ = data.whole_scene_pair(cube, "cie1964")
    np.testing.assert_array_equal(rgb_lin, spectra.render_rgb_float(cube, "cie1964"))


# --- crop packs ----------------------------------------------------------------------------------


def test_pack_crops_round_trip(shared_dir, tmp_path):
    scenes = [shared_dir / "data" / "cave" / f"{n}.h5" for n in ("clay", "hairs")]
    out = data.pack_crops(scenes, tmp_path / "pack.h5", n_crops=5, crop_px=64, seed=4)
    with h5py.File(out, "r") as fh:
        crops = fh["crops"]
        assert crops.dtype == np.uint16 and crops.shape == (5, 64, 64, 31)
        assert crops.compression == "gzip" and crops.shuffle
        names = [s.decode() for s in fh["scene"][()]]
        assert names == ["clay", "clay", "clay", "hairs", "hairs"]
        origins = fh["origin"][()]
        first, last = crops[0], crops[4]
        np.testing.assert_allclose(fh["wavelengths"][()], spectra.WAVELENGTHS_NM)
    for crop, scene, (y, x) in ((first, "clay", origins[0]), (last, "hairs", origins[4])):
        with h5py.File(shared_dir / "data" / "cave" / f"{scene}.h5", "r") as fh:
            np.testing.assert_array_equal(crop, fh["cube"][y : y + 64, x : x + 64])

    ds = data.PatchDataset([out], patch_px=32, samples_per_epoch=4)
    assert len(ds.cubes) == 5 and ds.cubes[4].name == "hairs#4"
    rgb, cube = ds[0]
    assert rgb.shape == (3, 32, 32) and cube.shape == (31, 32, 32)

    with pytest.raises(OutputExistsError):
        data.pack_crops(scenes, out, n_crops=2, crop_px=64)
    with pytest.raises(DataError, match="smaller than crop_px"):
        data.pack_crops(scenes, tmp_path / "big.h5", n_crops=2, crop_px=600)
    assert not (tmp_path / "big.h5").exists() and not (tmp_path / "big.h5.tmp").exists()


def test_pack_crops_from_arrays(tmp_path):
    source = _distinct_cube(30, 30)
    source[0, 0, 0] = 1.25  # needs a scale above 1/65535
    out = data.pack_crops([source], tmp_path / "p.h5", n_crops=3, crop_px=30, seed=0)
    (stored, *_) = data.load_stored_cubes([out])
    np.testing.assert_allclose(stored.counts * stored.scale, source, atol=2e-5)


# --- other cube formats through gmsr_cli.io -----------------------------------------------------


@pytest.mark.parametrize("suffix", [".hdr", ".mat", ".h5"])
def test_load_io_formats_resampled(tmp_path, suffix):
    from gmsr_cli.io import Cube, write_cube

    wl = np.arange(395.0, 706.0, 5.0)  # 63 bands, 5 nm: must come back on the 31-band grid
    rng = np.random.default_rng(0)
    slope = rng.uniform(0, 1e-3, size=(5, 6, 1))
    cube = ((wl - 390.0)[None, None, :] * slope).astype(np.float32)  # linear in wavelength: exact
    (path, *_) = write_cube(Cube(cube, wl), tmp_path / f"scene{suffix}")
    loaded, grid = data.load_training_cube(path)
    np.testing.assert_array_equal(grid, spectra.WAVELENGTHS_NM)
    assert loaded.shape == (5, 6, 31) and loaded.dtype == np.float32
    np.testing.assert_allclose(loaded, (spectra.WAVELENGTHS_NM - 390.0)[None, None, :] * slope, rtol=1e-5, atol=1e-7)
    # and it is a PatchDataset source
    ds = data.PatchDataset([path], patch_px=4, samples_per_epoch=2)
    assert ds.cubes[0].counts.dtype == np.uint16 and ds[1][1].shape == (31, 4, 4)


def test_load_io_format_not_covering_range(tmp_path):
    from gmsr_cli.io import Cube, write_cube

    wl = np.arange(450.0, 951.0, 10.0)
    (path, *_) = write_cube(Cube(np.zeros((3, 3, wl.size), np.float32), wl), tmp_path / "nir.hdr")
    with pytest.raises(DataError, match="450-950 nm do not cover 400-700"):
        data.load_training_cube(path)
