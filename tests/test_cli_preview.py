"""`gmsr preview` and `gmsr render`: pictures of cubes, checked against spectra.render_rgb."""

import numpy as np
import pytest
from PIL import Image

from gmsr_cli import api
from gmsr_cli.spectra import camera_names, render_rgb

H, W = 30, 40


@pytest.fixture
def cube(tmp_path, cubes):
    data = cubes.array(H, W)
    return cubes.write(tmp_path / "cube.hdr", data), data


def picture(path):
    return np.asarray(Image.open(path))


def test_default_preview_is_true_colour(cube, tmp_path, gmsr):
    path, data = cube
    result = gmsr("preview", path, code=0)
    out = tmp_path / "cube_preview.png"
    assert str(out) in result.output
    assert np.array_equal(picture(out), render_rgb(data, "srgb"))


def test_band_preview(cube, tmp_path, gmsr):
    path, data = cube
    gmsr("preview", path, "--band", "560nm", "-o", tmp_path / "b.png", "--no-label", code=0)
    grey = picture(tmp_path / "b.png")
    assert grey.shape == (H, W) and grey.dtype == np.uint8 and grey.min() == 0 and grey.max() == 255
    assert np.corrcoef(grey.ravel(), data[:, :, 16].ravel())[0, 1] > 0.99
    gmsr("preview", path, "--band", "560", code=0)  # default name beside the cube
    labelled_grey = picture(tmp_path / "cube_band560.png")
    assert np.array_equal(labelled_grey[-5:], grey[-5:]) and not np.array_equal(labelled_grey[:5], grey[:5])
    gmsr("preview", path, "--band", "16", "-o", tmp_path / "l.png", "--cmap", "magma", code=0)
    colour = picture(tmp_path / "l.png")
    assert colour.shape == (H, W, 3)
    no_label = api.colormap("magma")[grey]
    assert np.array_equal(colour[-5:], no_label[-5:]) and not np.array_equal(colour[:5], no_label[:5])


def test_false_colour_preview(cube, tmp_path, gmsr):
    path, data = cube
    gmsr("preview", path, "--rgb", "650,550,450", "--stretch", "0,100", "--no-label", "-o", tmp_path / "f.png", code=0)
    rgb = picture(tmp_path / "f.png")
    assert rgb.shape == (H, W, 3)
    for channel, band in enumerate((25, 15, 5)):
        values = data[:, :, band]
        expected = np.rint(np.clip((values - values.min()) / (values.max() - values.min()), 0, 1) * 255)
        np.testing.assert_allclose(rgb[:, :, channel], expected, atol=1)


@pytest.mark.parametrize("camera", ["srgb", "cie1964"])
def test_render_equals_render_rgb(cube, tmp_path, gmsr, camera):
    path, data = cube
    out = tmp_path / f"{camera}.png"
    gmsr("render", path, "--camera", camera, "-o", out, code=0)
    assert np.array_equal(picture(out), render_rgb(data, camera))


def test_render_matches_the_golden_renderings(shared_dir, tmp_path, cubes, gmsr):
    golden = np.load(shared_dir / "spec" / "golden" / "render_golden.npz")
    path = cubes.write(tmp_path / "golden.h5", golden["cube"])
    for camera in ("srgb", "cie1964"):
        gmsr("render", path, "--camera", camera, "-o", tmp_path / f"{camera}.tif", code=0)
        assert np.array_equal(picture(tmp_path / f"{camera}.tif"), golden[camera])


def test_render_with_a_measured_camera_and_the_camera_list(shared_dir, cube, tmp_path, gmsr):
    names = camera_names()
    assert len(names) > 2, "the measured cameras should be found in ../shared"
    listed = gmsr("render", "--list-cameras")
    assert listed.exit_code == 0 and listed.output.split("\n")[: len(names)] == names
    gmsr("render", cube[0], "--camera", names[-1], "-o", tmp_path / "m.jpg", code=0)
    assert picture(tmp_path / "m.jpg").shape == (H, W, 3)


def test_existing_picture_is_kept(cube, tmp_path, gmsr):
    path, _ = cube
    out = tmp_path / "keep.png"
    out.write_bytes(b"mine")
    result = gmsr("render", path, "-o", out)
    assert result.exit_code == 1 and "--overwrite" in result.output and out.read_bytes() == b"mine"
    gmsr("render", path, "-o", out, "--overwrite", code=0)
    assert picture(out).shape == (H, W, 3)
