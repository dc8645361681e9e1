"""Synthetic training scenes of measured reflectances, relighting with white balance, and the gmsr train options."""

import json

import h5py
import numpy as np
import pytest

from gmsr_cli.errors import DataError
from gmsr_cli.model.weights import read_weights
from gmsr_cli.spectra import camera_matrix, linearize, render_rgb_float
from gmsr_cli.train import charts
from gmsr_cli.train.synthetic import SpectralPatchDataset, dead_leaves, relit_rgb


@pytest.fixture(scope="module")
def library(shared_dir):
    return charts.load_library(shared_dir / "data" / "spectra" / charts.SPECTRA_FILE)


@pytest.fixture(scope="module")
def train_spectra(library):
    train, _ = charts.split_reflectances(library)
    return np.concatenate(list(train.values()))


@pytest.fixture(scope="module")
def tiny_cube(tmp_path_factory, shared_dir):
    """A 40 x 40 crop of a real CAVE scene as an HDF5 cube file."""
    with h5py.File(shared_dir / "data" / "cave" / "beads.h5", "r") as f:
        cube = f["cube"][100:140, 200:240].astype(np.float32) * np.float32(f["cube"].attrs["scale"])
        wl = f["wavelengths"][()]
    path = tmp_path_factory.mktemp("tiny") / "beads.h5"
    with h5py.File(path, "w") as f:
        f["cube"], f["wavelengths"] = cube, wl
    return str(path)


def _matching_spectrum(pixels: np.ndarray, library: np.ndarray) -> np.ndarray:
    """For each (n, 31) pixel the largest deviation from the nearest library spectrum times the best scale."""
    scale = (pixels @ library.T) / np.maximum((library ** 2).sum(1), 1e-12)  # (n, N) least-squares factors
    residual = np.abs(pixels[:, None, :] - scale[..., None] * library[None]).max(-1)
    return residual.min(axis=1)


def test_dead_leaves_paints_shaded_library_spectra(train_spectra):
    cube, labels, shading = dead_leaves(train_spectra, 32, np.random.default_rng(0))
    assert cube.shape == (32, 32, 31) and cube.dtype == np.float32
    np.testing.assert_allclose(cube, train_spectra[labels] * shading[..., None], rtol=1e-6)
    assert shading.min() >= 0.35 and shading.max() <= 1.0 and shading.std() > 0.01
    assert len(np.unique(labels)) > 3


def test_synthetic_patches_are_library_spectra_rendered_by_the_camera(train_spectra, tiny_cube):
    ds = SpectralPatchDataset([tiny_cube], patch_px=16, reflectances=train_spectra, synthetic_prob=1.0,
                              gain_range=(1.0, 1.0), samples_per_epoch=4, seed=3, camera="srgb")
    for i in range(len(ds)):
        rgb, cube = (t.numpy().transpose(1, 2, 0) for t in ds[i])
        # every pixel is one measured spectrum scaled by its shading: no CAVE pixel got in
        assert _matching_spectrum(cube.reshape(-1, 31).astype(np.float64), train_spectra).max() < 1e-5
        np.testing.assert_array_equal(rgb, render_rgb_float(cube, "srgb"))
    real = SpectralPatchDataset([tiny_cube], patch_px=16, reflectances=train_spectra, synthetic_prob=0.0,
                                gain_range=(1.0, 1.0), samples_per_epoch=1, seed=3)[0][1].numpy()
    assert _matching_spectrum(real.transpose(1, 2, 0).reshape(-1, 31).astype(np.float64), train_spectra).max() > 1e-3


def test_relighting_is_white_balanced(library):
    white = np.full((2, 2, 31), 0.5, dtype=np.float32)
    flat = np.ones(31)
    for camera in ("srgb", "cie1964"):
        # the flat light is the one the targets assume: the same photo (an 8-bit level where rounding ties)
        np.testing.assert_allclose(relit_rgb(white, flat, camera), render_rgb_float(white, camera), atol=1.01 / 255)
        for light in library["illuminant_sfu_illuminants"][::20]:
            # a grey under any light, white balanced, is the grey under the flat light (to 8-bit rounding)
            np.testing.assert_allclose(relit_rgb(white, light, camera), render_rgb_float(white, camera), atol=1.5 / 255)
    tungsten_like = np.linspace(0.2, 1.0, 31)
    red = np.zeros((1, 1, 31), np.float32)
    red[..., 20:] = 0.6
    lit = linearize(relit_rgb(red, tungsten_like, "cie1964"), "cie1964")
    unbalanced = (red.astype(np.float64) * tungsten_like) @ camera_matrix("cie1964")
    assert not np.allclose(lit, unbalanced, atol=2 / 255)  # the balance did something


def test_relit_samples_come_from_the_illuminants(library, train_spectra, tiny_cube):
    lights = library["illuminant_sfu_illuminants"][:3]
    ds = SpectralPatchDataset([tiny_cube], patch_px=8, reflectances=train_spectra, synthetic_prob=0.5,
                              illuminants=lights, relight_prob=1.0, samples_per_epoch=3, seed=1)
    for i in range(3):
        rgb, cube = (t.numpy().transpose(1, 2, 0) for t in ds[i])
        assert any(np.array_equal(rgb, relit_rgb(cube, light, "srgb")) for light in lights)
    with pytest.raises(DataError, match="needs illuminants"):
        SpectralPatchDataset([tiny_cube], patch_px=8, reflectances=train_spectra, relight_prob=0.5)
    with pytest.raises(DataError, match="synthetic_prob"):
        SpectralPatchDataset([tiny_cube], patch_px=8, reflectances=train_spectra, synthetic_prob=2.0)


def test_train_options_smoke_run(gmsr, tiny_cube, tmp_path):
    """One tiny epoch with both options: the run finishes and its card's recipe records them."""
    out = tmp_path / "run"
    gmsr("train", "--out", out, "--epochs", "1", "--samples-per-epoch", "8", "--patch", "16", "--batch-size", "8",
         "--train", tiny_cube, "--val", tiny_cube, "--synthetic-prob", "0.5", "--relight-prob", "0.5",
         "--device", "cpu", code=0)
    _, info = read_weights(out / "best.safetensors")
    recipe = info.card["recipe"]
    assert (recipe["synthetic_prob"], recipe["relight_prob"]) == (0.5, 0.5)
    assert json.loads((out / "log.jsonl").read_text().splitlines()[0])["epoch"] == 1
