"""`gmsr preview` and `gmsr render`: pictures of cubes, checked against spectra.render_rgb."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gmsr_cli import api
from gmsr_cli.cli.main import cli
from gmsr_cli.io import open_cube_writer
from gmsr_cli.spectra import WAVELENGTHS_NM, camera_names, render_rgb

H, W = 30, 40


@pytest.fixture
def cube(tmp_path):
    yy, xx = np.mgrid[0:H, 0:W] / np.array([H, W])[:, None, None]
    bands = np.linspace(0, 1, 31)
    data = (0.1 + 0.6 * xx[..., None] * bands + 0.3 * yy[..., None] * (1 - bands)).astype(np.float32)
    path = tmp_path / "cube.hdr"
    with open_cube_writer(path, H, W, WAVELENGTHS_NM) as writer:
        writer.write_rows(0, data)
    return path, data


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def picture(path):
    return np.asarray(Image.open(path))


def test_default_preview_is_true_colour(cube, tmp_path):
    path, data = cube
    result = run("preview", path)
    assert result.exit_code == 0, result.output
    out = tmp_path / "cube_preview.png"
    assert str(out) in result.output
    assert np.array_equal(picture(out), render_rgb(data, "srgb"))


def test_band_preview(cube, tmp_path):
    path, data = cube
    result = run("preview", path, "--band", "560nm", "-o", tmp_path / "b.png", "--no-label")
    assert result.exit_code == 0, result.output
    grey = picture(tmp_path / "b.png")
    assert grey.shape == (H, W) and grey.dtype == np.uint8 and grey.min() == 0 and grey.max() == 255
    assert np.corrcoef(grey.ravel(), data[:, :, 16].ravel())[0, 1] > 0.99
    assert run("preview", path, "--band", "560").exit_code == 0  # default name beside the cube
    labelled_grey = picture(tmp_path / "cube_band560.png")
    assert np.array_equal(labelled_grey[-5:], grey[-5:]) and not np.array_equal(labelled_grey[:5], grey[:5])
    labelled = run("preview", path, "--band", "16", "-o", tmp_path / "l.png", "--cmap", "magma")
    assert labelled.exit_code == 0, labelled.output
    colour = picture(tmp_path / "l.png")
    assert colour.shape == (H, W, 3)
    no_label = api.colormap("magma")[grey]
    assert np.array_equal(colour[-5:], no_label[-5:]) and not np.array_equal(colour[:5], no_label[:5])


def test_false_colour_preview(cube, tmp_path):
    path, data = cube
    result = run("preview", path, "--rgb", "650,550,450", "--stretch", "0,100", "--no-label", "-o", tmp_path / "f.png")
    assert result.exit_code == 0, result.output
    rgb = picture(tmp_path / "f.png")
    assert rgb.shape == (H, W, 3)
    for channel, band in enumerate((25, 15, 5)):
        values = data[:, :, band]
        expected = np.rint(np.clip((values - values.min()) / (values.max() - values.min()), 0, 1) * 255)
        np.testing.assert_allclose(rgb[:, :, channel], expected, atol=1)


@pytest.mark.parametrize("camera", ["srgb", "cie1964"])
def test_render_equals_render_rgb(cube, tmp_path, camera):
    path, data = cube
    out = tmp_path / f"{camera}.png"
    result = run("render", path, "--camera", camera, "-o", out)
    assert result.exit_code == 0, result.output
    assert np.array_equal(picture(out), render_rgb(data, camera))


def test_render_matches_the_golden_renderings(shared_dir, tmp_path):
    golden = np.load(shared_dir / "spec" / "golden" / "render_golden.npz")
    cube = golden["cube"]
    path = tmp_path / "golden.h5"
    with open_cube_writer(path, *cube.shape[:2], WAVELENGTHS_NM) as writer:
        writer.write_rows(0, cube)
    for camera in ("srgb", "cie1964"):
        result = run("render", path, "--camera", camera, "-o", tmp_path / f"{camera}.tif")
        assert result.exit_code == 0, result.output
        assert np.array_equal(picture(tmp_path / f"{camera}.tif"), golden[camera])


def test_render_with_a_measured_camera_and_the_camera_list(shared_dir, cube, tmp_path):
    names = camera_names()
    assert len(names) > 2, "the measured cameras should be found in ../shared"
    listed = run("render", "--list-cameras")
    assert listed.exit_code == 0 and listed.output.split("\n")[: len(names)] == names
    result = run("render", cube[0], "--camera", names[-1], "-o", tmp_path / "m.jpg")
    assert result.exit_code == 0, result.output
    assert picture(tmp_path / "m.jpg").shape == (H, W, 3)


def test_existing_picture_is_kept(cube, tmp_path):
    path, _ = cube
    out = tmp_path / "keep.png"
    out.write_bytes(b"mine")
    result = run("render", path, "-o", out)
    assert result.exit_code == 1 and "--overwrite" in result.output and out.read_bytes() == b"mine"
    assert run("render", path, "-o", out, "--overwrite").exit_code == 0
    assert picture(out).shape == (H, W, 3)
