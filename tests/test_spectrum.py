"""`gmsr spectrum`: the numbers it reports are the cube's (pixels) and numpy's (box statistics), in every format."""

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gmsr_cli import spectrum
from gmsr_cli.cli.main import cli
from gmsr_cli.io import open_cube_writer, read_cube
from gmsr_cli.spectra import WAVELENGTHS_NM, render_rgb

H, W = 30, 40


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W] / np.array([H, W])[:, None, None]
    bands = np.linspace(0, 1, 31)
    smooth = 0.1 + 0.6 * xx[..., None] * bands + 0.3 * yy[..., None] * (1 - bands)
    return (smooth + rng.uniform(-0.05, 0.05, smooth.shape)).astype(np.float32)


def write(path, data, wavelengths=WAVELENGTHS_NM):
    """Our writers; "NAME.bsq.hdr" / ".bil.hdr": ENVI band- / line-interleaved by SPy; "NAME.v73.mat": MATLAB 7.3."""
    if path.name.endswith((".bsq.hdr", ".bil.hdr")):
        from spectral.io import envi

        envi.save_image(str(path), data, interleave=path.name.split(".")[-2], dtype=np.float32,
                        metadata={"wavelength": list(wavelengths), "wavelength units": "nm"})
        return path
    options = {"mat_version": "7.3"} if path.name.endswith(".v73.mat") else {}
    with open_cube_writer(path, data.shape[0], data.shape[1], wavelengths, **options) as writer:
        writer.write_rows(0, data)
    return path


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def h5(tmp_path_factory, data):
    return write(tmp_path_factory.mktemp("spectrum") / "cube.h5", data)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("name", ["cube.h5", "cube.hdr", "cube.bsq.hdr", "cube.bil.hdr", "cube.mat", "cube.v73.mat",
                                  "cube.tif", "cube.npy"])
def test_json_numbers_are_the_cubes_in_every_format(tmp_path, data, name):
    path = write(tmp_path / name, data)
    points = [(0, 0), (W - 1, H - 1), (17, 4), (3, 22)]
    box = (5, 7, 31, 26)  # columns 5..30, rows 7..25
    args = ["spectrum", path, "--json", "--box", ",".join(map(str, box))]
    for x, y in points:
        args += ["--at", f"{x},{y}"]
    result = run(*args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["wavelengths_nm"] == list(WAVELENGTHS_NM)
    assert report["shape"] == [H, W, 31]
    for (x, y), pixel in zip(points, report["pixels"]):
        assert (pixel["x"], pixel["y"]) == (x, y)
        # Exactly the stored float32 values of that pixel: row y, column x.
        assert np.array_equal(np.array(pixel["values"], dtype=np.float32), data[y, x])
        assert pixel["colour"] == "#{:02x}{:02x}{:02x}".format(*render_rgb(data[y, x][None])[0])
    region = data[box[1]:box[3], box[0]:box[2]].astype(np.float64)
    stats = report["boxes"][0]
    assert stats["pixels"] == region.shape[0] * region.shape[1] == 26 * 19
    np.testing.assert_allclose(stats["mean"], region.mean(axis=(0, 1)), rtol=1e-12)
    np.testing.assert_allclose(stats["std"], region.std(axis=(0, 1)), rtol=1e-10)


@pytest.mark.parametrize("name", ["cube.h5", "cube.bsq.hdr", "cube.v73.mat", "cube.npy"])
@pytest.mark.parametrize("step", [1, 3, 7])
def test_strided_copies_are_every_step_th_pixel(tmp_path, data, name, step):
    """What the plot's thumbnail and the viewer embed: pixel (i, j) is cube pixel (step i, step j)."""
    with read_cube(write(tmp_path / name, data)) as cube:
        assert np.array_equal(spectrum.read_strided(cube, step), data[::step, ::step])
        # In blocks of two output rows: the blocks must join up exactly.
        two_rows = 2 * -(-W // step) * 31 * 4
        assert np.array_equal(spectrum.read_strided(cube, step, block_bytes=two_rows), data[::step, ::step])


def test_box_statistics_merge_blocks_and_skip_non_finite(tmp_path, data):
    """Box statistics are read in row blocks: with blocks of 2 rows they still equal numpy's over
    the whole box, and NaN values are left out of their band only."""
    holey = data.copy()
    holey[10, 12, 3] = np.nan
    holey[11, 13, :] = np.nan
    path = write(tmp_path / "holey.h5", holey)
    box = (2, 3, 38, 29)
    with read_cube(path) as cube:
        mean, std, count = spectrum.box_statistics(cube, box, block_bytes=2 * 36 * 31 * 8)
    region = holey[3:29, 2:38].reshape(-1, 31).astype(np.float64)
    np.testing.assert_allclose(mean, np.nanmean(region, axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, np.nanstd(region, axis=0), rtol=1e-10)
    expected = np.full(31, 26 * 36 - 1)
    expected[3] -= 1
    assert np.array_equal(count, expected)


def test_csv_has_a_row_per_wavelength(h5, data):
    result = run("spectrum", h5, "--at", "7,9", "--box", "0,0,4,3", "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output)))
    assert rows[0] == ["wavelength_nm", "x=7 y=9", "box x=0-3 y=0-2 mean", "box x=0-3 y=0-2 std"]
    assert len(rows) == 32
    table = np.array(rows[1:], dtype=np.float64)
    assert np.array_equal(table[:, 0], WAVELENGTHS_NM)
    assert np.array_equal(table[:, 1].astype(np.float32), data[9, 7])  # 9 digits: float32 exact
    np.testing.assert_allclose(table[:, 2], data[0:3, 0:4].astype(np.float64).mean(axis=(0, 1)), rtol=1e-8)


def test_numbers_to_files_and_the_plot(h5, data, tmp_path):
    out = tmp_path / "s.json"
    assert run("spectrum", h5, "--at", "1,2", "-o", out).exit_code == 0
    assert np.array_equal(np.float32(json.loads(out.read_text())["pixels"][0]["values"]), data[2, 1])
    again = run("spectrum", h5, "--at", "1,2", "-o", out)
    assert again.exit_code == 1 and "--overwrite" in again.output
    assert run("spectrum", h5, "--at", "1,2", "-o", out, "--overwrite", "--json").exit_code == 0

    plot = tmp_path / "plot.png"
    result = run("spectrum", h5, "--at", "1,2", "--at", "30,20", "--box", "10,10,20,20", "-o", plot)
    assert result.exit_code == 0, result.output
    picture = np.asarray(Image.open(plot).convert("RGB"))
    assert picture.shape == (440, 1000, 3)
    # Pixel (30, 20)'s own colour is drawn (its line, its marker on the thumbnail).
    colour = render_rgb(data[20, 30][None])[0].astype(int)
    assert (np.abs(picture.astype(int) - colour).max(axis=-1) <= 2).sum() > 200
    bare = tmp_path / "bare.png"
    assert run("spectrum", h5, "--at", "1,2", "-o", bare, "--no-thumbnail").exit_code == 0
    assert Image.open(bare).size == (720, 440)  # the plot alone
    bare.unlink()
    svg = tmp_path / "plot.svg"
    assert run("spectrum", h5, "--box", "0,0,40,30", "-o", svg).exit_code == 0
    assert svg.read_text().lstrip().startswith("<?xml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png", "plot.svg", "s.json"]  # no temporaries


def test_default_output_is_beside_the_cube(tmp_path, data):
    path = write(tmp_path / "scene.hdr", data)
    result = run("spectrum", path, "--at", "0,0")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "scene_spectrum.png").is_file()


def test_other_wavelength_grids_plot_without_colours(tmp_path):
    rng = np.random.default_rng(1)
    wl = np.linspace(450.0, 950.0, 11)
    path = write(tmp_path / "nir.h5", rng.uniform(0, 1, (8, 9, 11)).astype(np.float32), wl)
    report = json.loads(run("spectrum", path, "--at", "8,7", "--json").output)
    assert report["wavelengths_nm"] == list(wl) and report["pixels"][0]["colour"] is None
    assert run("spectrum", path, "--at", "8,7", "--box", "0,0,3,3", "-o", tmp_path / "nir.png").exit_code == 0


def check_one_line_error(result, *needles):
    assert result.exit_code != 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("args,needles", [
    (["--at", "40,0"], ["--at 40,0", "X (column) 0-39", "Y (row) 0-29"]),
    (["--at", "0,30"], ["outside"]),
    (["--at", "-1,3"], ["outside"]),
    (["--at", "3"], ["'3'", "X,Y"]),
    (["--at", "a,b"], ["X,Y"]),
    (["--box", "0,0,41,10"], ["--box 0,0,41,10", "at most 40 and 30"]),
    (["--box", "-2,0,4,4"], ["outside"]),
    (["--box", "5,5,5,9"], ["X1 must be greater"]),
    (["--box", "1,2,3"], ["four whole numbers"]),
    ([], ["--at X,Y"]),
    (["--at", "1,1", "-o", "{tmp}/plot.gif"], ["plot.gif", ".png"]),
    (["--at", "1,1", "--json", "-o", "{tmp}/plot.png"], ["--json", ".json"]),
    (["--at", "1,1", "--json", "--csv"], ["--json or --csv"]),
    (["--at", "1,1", "-o", "{tmp}/missing/plot.png"], ["missing"]),
])
def test_bad_input_gives_one_line(h5, tmp_path, args, needles):
    result = run("spectrum", h5, *[a.format(tmp=tmp_path) for a in args])
    check_one_line_error(result, *needles)
    assert list(tmp_path.iterdir()) == []


def test_bad_cube_files_give_one_line(tmp_path):
    (tmp_path / "cube.xyz").write_bytes(b"x")
    check_one_line_error(run("spectrum", tmp_path / "cube.xyz", "--at", "0,0"), "cube.xyz", "hdf5")
    check_one_line_error(run("spectrum", tmp_path / "absent.h5", "--at", "0,0"), "absent.h5", "not found")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    check_one_line_error(run("spectrum", tmp_path / "junk.h5", "--at", "0,0", "--json"), "junk.h5")


def test_matplotlib_is_imported_only_to_plot():
    code = ("import sys, gmsr_cli.cli.main, gmsr_cli.spectrum, gmsr_cli.viewer; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
