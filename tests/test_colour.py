"""Exact colour: corrected cubes render back to the photo's unclipped linear RGB, through the API, files and CLI."""

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image

from gmsr_cli import api, colour
from gmsr_cli.colour import correct_block, correct_cube, unclipped_mask
from gmsr_cli.errors import InputImageError
from gmsr_cli.model.weights import save_weights
from gmsr_cli.spectra import camera_matrix, linearize, render_rgb, render_rgb_float

H, W = 24, 20
TOLERANCE = 1e-4  # linear RGB, the bound


def _unit(photo: np.ndarray) -> np.ndarray:
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(photo.dtype, 1.0)
    return photo.astype(np.float64) / scale


def _linear_error(cube: np.ndarray, photo: np.ndarray, camera: str) -> np.ndarray:
    """|cube M - t| per pixel (max over channels), t the photo's linear RGB."""
    rendered = cube.astype(np.float64) @ camera_matrix(camera)
    return np.abs(rendered - linearize(_unit(photo), camera)).max(axis=-1)


def _smooth_spectra(h: int, w: int, seed: int) -> np.ndarray:
    """(h, w, 31) float32 reflectances: random mixtures of broad bumps, some above 1 (to clip)."""
    rng = np.random.default_rng(seed)
    nm = np.arange(31)
    bumps = np.exp(-0.5 * ((nm[None, :] - rng.uniform(0, 30, (4, 1))) / rng.uniform(3, 10, (4, 1))) ** 2)
    weights = rng.uniform(0.0, 0.7, (h, w, 4))
    cube = weights @ bumps + rng.uniform(0.0, 0.2, (h, w, 1))
    cube[0, :4] *= 3.0  # saturated pixels
    cube[1, :4] = 0.0  # black pixels
    return cube.astype(np.float32)


def _photo(cube: np.ndarray, camera: str, bits: int) -> np.ndarray:
    if bits == 8:
        return render_rgb(cube, camera)
    encoded = render_rgb_float(cube.astype(np.float64), camera, quantize=False)
    return np.rint(encoded.astype(np.float64) * 65535).astype(np.uint16)


@pytest.mark.parametrize("camera", ["srgb", "cie1964"])
@pytest.mark.parametrize("bits", [8, 16])
def test_corrected_spectra_render_to_the_photo_and_clipped_pixels_stay(camera, bits):
    truth = _smooth_spectra(H, W, seed=1)
    photo = _photo(truth, camera, bits)
    guess = _smooth_spectra(H, W, seed=2)  # a reconstruction that got the colour wrong
    fixed = correct_block(guess, photo, camera)
    unclipped = unclipped_mask(photo)
    assert 0 < unclipped.sum() < H * W  # both kinds are exercised
    assert _linear_error(guess, photo, camera)[unclipped].max() > 100 * TOLERANCE
    assert _linear_error(fixed, photo, camera)[unclipped].max() <= TOLERANCE
    np.testing.assert_array_equal(fixed[~unclipped], guess[~unclipped])
    assert fixed.dtype == np.float32 and fixed.shape == guess.shape
    if bits == 8:  # and the 8-bit render of the corrected cube is the photo itself
        np.testing.assert_array_equal(render_rgb(fixed, camera)[unclipped], photo[unclipped])


def test_correction_is_the_least_change():
    """s' - s lies in the span of the camera's responses: no other spectrum with the right colour is closer."""
    truth, guess = _smooth_spectra(H, W, seed=3), _smooth_spectra(H, W, seed=4)
    photo = render_rgb(truth, "srgb")
    change = correct_block(guess, photo, "srgb").astype(np.float64) - guess
    matrix = camera_matrix("srgb")
    coeffs, *_ = np.linalg.lstsq(matrix, change.reshape(-1, 31).T, rcond=None)
    np.testing.assert_allclose(matrix @ coeffs, change.reshape(-1, 31).T, atol=1e-5)


def test_correct_cube_equals_blocks_and_rejects_mismatched_shapes(monkeypatch):
    truth, guess = _smooth_spectra(150, 6, seed=5), _smooth_spectra(150, 6, seed=6)
    photo = render_rgb(truth, "srgb")
    monkeypatch.setattr(colour, "_BLOCK_PIXELS", 60)  # 10 rows at a time: 15 blocks
    whole = correct_cube(guess.copy(), photo, "srgb")
    np.testing.assert_allclose(whole, correct_block(guess, photo, "srgb"), atol=1e-7)
    with pytest.raises(InputImageError, match=r"\(h, w, 31\) cube and its \(h, w, 3\) photo"):
        correct_block(guess, photo[:-1], "srgb")


@pytest.fixture(scope="module")
def models(tmp_path_factory, random_net, weights_file):
    """The random network as srgb weights and as cie1964 (linear camera) weights."""
    cie = tmp_path_factory.mktemp("cie") / "cie.safetensors"
    save_weights(random_net, cie, card={"name": "test-random-cie1964", "camera": "cie1964"})
    return {"srgb": api.load_model(weights_file, device="cpu"), "cie1964": api.load_model(cie, device="cpu")}


@pytest.mark.parametrize("camera", ["srgb", "cie1964"])
@pytest.mark.parametrize("bits", [8, 16])
def test_reconstructed_files_render_back_to_the_photo(models, photos, tmp_path, camera, bits):
    model = models[camera]
    pixels = photos.array(H, W, bit_depth=bits)
    top = np.iinfo(pixels.dtype).max
    pixels[0, :3, 1], pixels[1, :3, 2] = 0, top  # clipped pixels, whatever the random draw
    photo = tmp_path / ("p.png" if bits == 8 else "p.tif")
    if bits == 8:
        Image.fromarray(pixels).save(photo)
    else:
        tifffile.imwrite(photo, pixels, photometric="rgb")
    out, plain = tmp_path / "exact.h5", tmp_path / "plain.h5"
    api.reconstruct_file(photo, out, model=model, tile_px=16, overlap_px=4, exact_colour=True)
    api.reconstruct_file(photo, plain, model=model, tile_px=16, overlap_px=4, exact_colour=False)
    with h5py.File(out, "r") as f, h5py.File(plain, "r") as g:
        cube, before = f["cube"][...], g["cube"][...]
        assert (f.attrs["exact_colour"], g.attrs["exact_colour"]) == (1, 0)
    unclipped = unclipped_mask(pixels)
    assert 0 < unclipped.sum() < H * W
    assert _linear_error(before, pixels, camera)[unclipped].max() > 100 * TOLERANCE
    assert _linear_error(cube, pixels, camera)[unclipped].max() <= TOLERANCE
    np.testing.assert_array_equal(cube[~unclipped], before[~unclipped])
    in_memory = api.reconstruct_image(photo, model=model, tile_px=16, overlap_px=4, exact_colour=True)
    np.testing.assert_allclose(in_memory, cube, atol=1e-6)


def test_cli_flag_reaches_the_cube(gmsr, weights_file, photos, tmp_path):
    photo = photos.write(tmp_path / "p.png", H, W)
    for flag, expected in (("--exact-colour", 1), ("--no-exact-colour", 0)):
        out = tmp_path / f"{flag}.h5"
        gmsr("reconstruct", str(photo), "-o", str(out), "--weights", str(weights_file), "--tile", "16",
             "--overlap", "4", "--device", "cpu", flag, "--quiet")
        with h5py.File(out, "r") as f:
            assert f.attrs["exact_colour"] == expected


def test_default_is_the_cards_entry_else_on_for_srgb_only(models, random_net, tmp_path):
    from gmsr_cli.colour import resolve_exact_colour

    assert resolve_exact_colour(None, models["srgb"]) is True
    assert resolve_exact_colour(None, models["cie1964"]) is False
    assert resolve_exact_colour(True, models["cie1964"]) is True
    off = save_weights(random_net, tmp_path / "off.safetensors", card={"name": "off", "camera": "srgb",
                                                                      "exact_colour": False})
    photo = tmp_path / "p.png"
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(photo)
    api.reconstruct_file(photo, tmp_path / "c.h5", weights=off, device="cpu")
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert f.attrs["exact_colour"] == 0
