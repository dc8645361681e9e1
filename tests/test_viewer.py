"""`gmsr view`: the page's embedded data, and the page itself in headless Chromium (hover, pin, bands, CSV)."""

import base64
import csv
import io
import json
import os
import re
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from gmsr_cli.cli.main import cli
from gmsr_cli.io import open_cube_writer
from gmsr_cli.model.gmsr import GMSRNet
from gmsr_cli.model.weights import save_weights
from gmsr_cli.spectra import WAVELENGTHS_NM, render_rgb
from gmsr_cli.spectrum import stride_for
from gmsr_cli.viewer import NON_FINITE_CODE, quantise

H, W = 48, 64
# Where the browser test leaves its screenshot for a person to look at (also under tmp_path).
ARTIFACTS = Path(os.environ.get("GMSR_TEST_ARTIFACTS", Path(tempfile.gettempdir()) / "gmsr-test-artifacts"))


def make_data():
    """Smooth, different spectra everywhere: colours from dark to bright, a ramp along x and y."""
    yy, xx = np.mgrid[0:H, 0:W] / np.array([H, W])[:, None, None]
    wl = (WAVELENGTHS_NM - 400.0) / 300.0
    red = np.exp(-((wl - 0.85) / 0.2) ** 2)
    green = np.exp(-((wl - 0.5) / 0.15) ** 2)
    blue = np.exp(-((wl - 0.15) / 0.15) ** 2)
    data = 0.05 + 0.8 * xx[..., None] * red + 0.7 * yy[..., None] * green + 0.5 * (1 - xx[..., None]) * blue
    return data.astype(np.float32)


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    path = tmp_path_factory.mktemp("view") / "scene.hdr"
    data = make_data()
    with open_cube_writer(path, H, W, WAVELENGTHS_NM) as writer:
        writer.write_rows(0, data)
    return path, data


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def embedded(page: Path) -> dict:
    match = re.search(r'<script id="gmsr-data" type="application/json">(.*?)</script>', page.read_text(), re.S)
    return json.loads(match.group(1))


def unpack(data: dict) -> np.ndarray:
    """The page's codes, unpacked as viewer.pack_codes documents (independently of the page's script)."""
    planes = np.frombuffer(zlib.decompress(base64.b64decode(data["codes"])), dtype=np.uint8)
    n = planes.size // 2
    delta = (planes[:n].astype(np.uint16) << 8) | planes[n:]
    delta = delta.reshape(data["height"], data["width"], data["bands"])
    return np.cumsum(delta, axis=-1, dtype=np.uint16)  # wraps mod 65536, as the page does


def test_page_embeds_a_strided_quantised_cube(cube, tmp_path):
    path, data = cube
    page = tmp_path / "v.html"
    result = run("view", path, "-o", page, "--max-pixels", 800)
    assert result.exit_code == 0, result.output
    assert "downsampled by 2" in result.output
    d = embedded(page)
    assert (d["step"], d["height"], d["width"], d["sourceHeight"], d["sourceWidth"]) == (2, 24, 32, H, W)
    values = np.asarray(d["lo"]) + unpack(d).astype(np.float64) * np.asarray(d["scale"])
    strided = data[::2, ::2].astype(np.float64)
    # Every embedded value is within half a quantisation step of the cube's value at (2 x, 2 y).
    assert np.all(np.abs(values - strided) <= np.asarray(d["scale"]) / 2 * (1 + 1e-9))
    assert max(d["scale"]) < 2e-5
    preview = np.asarray(Image.open(io.BytesIO(base64.b64decode(d["preview"].split(",", 1)[1]))))
    assert np.array_equal(preview, render_rgb(data[::2, ::2]))
    # The whole cube fits the default budget: every pixel.
    full = run("view", path, "-o", tmp_path / "full.html")
    assert full.exit_code == 0 and "every pixel" in full.output
    assert embedded(tmp_path / "full.html")["step"] == 1
    assert "http://" not in page.read_text().replace("http://www.w3.org/2000/svg", "")  # nothing fetched


def test_other_wavelength_grids_get_a_false_colour_page(tmp_path):
    wl = np.linspace(450.0, 950.0, 11)
    data = np.random.default_rng(2).uniform(0, 1, (6, 7, 11)).astype(np.float32)
    path = tmp_path / "nir.h5"
    with open_cube_writer(path, 6, 7, wl) as writer:
        writer.write_rows(0, data)
    assert run("view", path).exit_code == 0
    d = embedded(tmp_path / "nir_view.html")
    assert d["wavelengths"] == list(wl) and d["shows"].startswith("false colour R 650 G 550 B 450")
    values = np.asarray(d["lo"]) + unpack(d).astype(np.float64) * np.asarray(d["scale"])
    assert np.all(np.abs(values - data) <= np.asarray(d["scale"]) / 2 * (1 + 1e-9))


def test_quantise_bounds_and_non_finite():
    rng = np.random.default_rng(0)
    values = rng.uniform(-0.1, 1.2, (5, 6, 4)).astype(np.float32)
    values[2, 3, 1] = np.nan
    values[:, :, 3] = 0.25  # a flat band
    q = quantise(values)
    assert q.codes[2, 3, 1] == NON_FINITE_CODE and np.isnan(q.values()[2, 3, 1])
    finite = np.isfinite(values)
    err = np.abs(q.values() - values)[finite]
    assert np.all(err <= np.broadcast_to(q.step / 2, values.shape)[finite] * (1 + 1e-9))
    assert np.all(q.values()[:, :, 3] == 0.25)


@pytest.mark.parametrize("h,w,budget", [(48, 64, 800), (1000, 3, 7), (5, 5, 25), (4000, 3000, 250_000), (7, 9, 1)])
def test_stride_is_the_smallest_that_fits(h, w, budget):
    s = stride_for(h, w, budget)
    assert -(-h // s) * -(-w // s) <= budget
    assert s == 1 or -(-h // (s - 1)) * -(-w // (s - 1)) > budget


def test_view_errors_give_one_line(cube, tmp_path):
    path, _ = cube
    for args, needle in [(["-o", tmp_path / "v.txt"], ".html"), (["--max-pixels", "0"], "--max-pixels"),
                         (["-o", tmp_path / "no" / "v.html"], "does not exist")]:
        result = run("view", path, *args)
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
        assert result.output.startswith("Error: ") and needle in result.output
    assert run("view", path, "-o", tmp_path / "v.html").exit_code == 0
    again = run("view", path, "-o", tmp_path / "v.html")
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_reconstruct_view_writes_the_page_beside_the_cube(tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "w.safetensors"
    save_weights(GMSRNet(), weights, card={"name": "test", "camera": "srgb"})
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(photo)
    args = ["reconstruct", photo, "-o", tmp_path / "cube.h5", "--weights", weights, "-q", "--view"]
    result = run(*args)
    assert result.exit_code == 0, result.output
    d = embedded(tmp_path / "cube_view.html")
    assert (d["height"], d["width"], d["step"], d["name"]) == (12, 16, 1, "cube.h5")
    # An existing page stops the run before any work: no cube appears.
    (tmp_path / "cube.h5").unlink()
    again = run(*args)
    assert again.exit_code == 1 and "cube_view.html" in again.output and "--overwrite" in again.output
    assert not (tmp_path / "cube.h5").exists()


# ---------------------------------------------------------------------------------------------
# The page in a real browser
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    cdp = pytest.importorskip("cdp", reason="tests/cdp.py needs websocket-client (pip install websocket-client)")
    pytest.importorskip("websocket", reason="the browser test needs websocket-client (the test extra)")
    executable = cdp.find_browser()
    if executable is None:
        pytest.skip("no Chromium/Chrome found (apt-get install chromium, or set GMSR_CHROMIUM)")
    with cdp.Browser(executable, width=1280, height=800) as b:
        yield b, cdp


def test_viewer_in_chromium(cube, tmp_path, browser):
    b, cdp = browser
    path, data = cube
    page = tmp_path / "scene_view.html"
    assert run("view", path, "-o", page, "--max-pixels", 800).exit_code == 0
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    b.send_browser("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads), eventsEnabled=True)
    b.navigate(page.as_uri())
    b.wait_for("window.gmsrViewer && (gmsrViewer.ready || gmsrViewer.error)")
    assert b.evaluate("gmsrViewer.error") is None
    info = b.evaluate("gmsrViewer.info")
    step = info["step"]
    assert (step, info["width"], info["height"]) == (2, 32, 24)
    lo, scale = np.asarray(info["lo"]), np.asarray(info["scale"])
    left, top, width, height = b.evaluate(
        "(() => { const r = document.getElementById('overlay').getBoundingClientRect();"
        " return [r.left, r.top, r.width, r.height]; })()")

    def centre(ix, iy):  # whole CSS pixels, as a real mouse reports them
        return round(left + (ix + 0.5) * width / info["width"]), round(top + (iy + 0.5) * height / info["height"])

    def plotted(kind):
        return b.evaluate(f"[...document.querySelectorAll('#series path[data-kind={kind}]')]"
                          ".map(p => [+p.dataset.x, +p.dataset.y, JSON.parse(p.dataset.values)])")

    # Hover: the plot holds that pixel's 31 values (grid pixel (ix, iy) is cube pixel (2 ix, 2 iy)).
    ix, iy = 21, 9
    b.mouse("mouseMoved", *centre(ix, iy))
    [(x, y, values)] = plotted("hover")
    assert (x, y) == (step * ix, step * iy)
    truth = data[y, x].astype(np.float64)
    values = np.asarray(values)
    assert np.all(np.abs(values - truth) <= scale / 2 * (1 + 1e-9))
    # ... exactly the value of the pixel's 16-bit code, as the page documents.
    assert np.array_equal(values, lo + np.rint((truth - lo) / scale) * scale)
    assert b.evaluate("gmsrViewer.hovered.values.length") == 31

    # Click to pin two pixels; each keeps its pixel's true colour.
    pins = [(5, 20), (30, 2)]
    for p in pins:
        b.click(*centre(*p))
    pinned = b.evaluate("gmsrViewer.pinned.map(p => [p.x, p.y, p.colour])")
    expected_colours = ["#{:02x}{:02x}{:02x}".format(*render_rgb(data[step * j, step * i][None])[0]) for i, j in pins]
    assert pinned == [[step * i, step * j, c] for (i, j), c in zip(pins, expected_colours)]
    assert [(x, y) for x, y, _ in plotted("pin")] == [(step * i, step * j) for i, j in pins]

    # The band slider shows one band, stretched between its 1st and 99th percentiles.
    grab = ("Array.from(document.getElementById('picture').getContext('2d')"
            ".getImageData(0, 0, gmsrViewer.info.width, gmsrViewer.info.height).data)")
    before = np.asarray(b.evaluate(grab), dtype=np.uint8).reshape(24, 32, 4)
    assert np.array_equal(before[:, :, :3], render_rgb(data[::2, ::2]))
    b.evaluate("(() => { const s = document.getElementById('band'); s.value = 25;"
               " s.dispatchEvent(new Event('input', {bubbles: true})); })()")
    assert b.evaluate("[gmsrViewer.mode, gmsrViewer.band]") == ["band", 25]
    after = np.asarray(b.evaluate(grab), dtype=np.uint8).reshape(24, 32, 4)
    band = data[::2, ::2, 25].astype(np.float64)
    p1, p99 = np.percentile(band, [1, 99])
    grey = np.rint(np.clip((band - p1) / (p99 - p1), 0, 1) * 255)
    assert np.all(after[:, :, 0] == after[:, :, 1]) and np.abs(after[:, :, 0] - grey).max() <= 1
    assert not np.array_equal(after[:, :, :3], before[:, :, :3])

    # Leave the mouse on the picture for the screenshot, then save it for a person to look at.
    b.mouse("mouseMoved", *centre(14, 14))
    shot = b.screenshot(tmp_path / "viewer.png")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stable = ARTIFACTS / "viewer.png"
    stable.write_bytes(shot.read_bytes())
    print(f"viewer screenshot: {stable}")
    assert Image.open(shot).size == (1280, 800)

    # Download CSV: the file holds the pinned spectra, one column each, a row per wavelength.
    bl, bt, bw, bh = b.evaluate("(() => { const r = document.getElementById('download').getBoundingClientRect();"
                                " return [r.left, r.top, r.width, r.height]; })()")
    b.click(bl + bw / 2, bt + bh / 2)
    saved = cdp.wait_for_file(downloads, "*.csv")
    assert saved.name == "scene_spectra.csv"
    rows = list(csv.reader(io.StringIO(saved.read_text())))
    assert rows[0] == ["wavelength_nm"] + [f"x={step * i} y={step * j}" for i, j in pins]
    table = np.asarray(rows[1:], dtype=np.float64)
    assert np.array_equal(table[:, 0], WAVELENGTHS_NM)
    for k, (i, j) in enumerate(pins):
        truth = data[step * j, step * i].astype(np.float64)
        # 7 significant digits of a value within half a step of the cube's.
        assert np.all(np.abs(table[:, k + 1] - truth) <= scale / 2 + 1e-6 * np.abs(truth))

    assert b.problems() == []
