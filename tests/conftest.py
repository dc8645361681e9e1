"""Shared pytest fixtures: the shared data folder, random weights, test photos and cubes, a CLI runner."""

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from click.testing import CliRunner
from PIL import Image

# Without a GPU, Triton kernels run on CPU tensors in Triton's interpreter, which Triton reads when a
# kernel is defined: set here, before any test imports one (on a CUDA machine they are compiled).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from gmsr_cli.cli.main import cli  # noqa: E402
from gmsr_cli.io import open_cube_writer  # noqa: E402
from gmsr_cli.model.gmsr import GMSRNet  # noqa: E402
from gmsr_cli.model.weights import save_weights  # noqa: E402
from gmsr_cli.spectra import WAVELENGTHS_NM  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ../shared folder beside the checkout; skips the test when it is absent."""
    if not (SHARED_DIR / "spec").is_dir() or not (SHARED_DIR / "data").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DIR} (tests need ../shared beside the repo)")
    return SHARED_DIR


@pytest.fixture(scope="session")
def random_net() -> GMSRNet:
    """A GMSR-Net initialised from torch seed 0, in eval mode; the global torch RNG is left as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return GMSRNet().eval()


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory, random_net) -> Path:
    """`random_net` saved once per session as gmsr-cli safetensors, card name "test-random-init",
    camera "srgb", metrics {"mrae": 0.2}."""
    path = tmp_path_factory.mktemp("weights") / "test-weights.safetensors"
    card = {"name": "test-random-init", "camera": "srgb", "metrics": {"mrae": 0.2}}
    return save_weights(random_net, path, card=card)


class Photos:
    """Test photos: `array` makes the pixels, `write` saves them to a file and returns its path."""

    @staticmethod
    def array(h: int = 24, w: int = 36, seed: int = 0, bit_depth: int = 8, channels: int = 3) -> np.ndarray:
        """Pixels of the seed. 8 bits: uint8 (h, w, 3), smooth gradients plus noise, so every PNG
        filter and rotation shows. 16 bits: uint16 (h, w, channels) noise over the full range."""
        rng = np.random.default_rng(seed)
        if bit_depth == 16:
            return rng.integers(0, 65536, (h, w, channels), dtype=np.uint16)
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x * 255 // max(1, w - 1), y * 255 // max(1, h - 1), (x + y) % 256], axis=-1)
        return np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)

    def write(self, path, h: int = 24, w: int = 36, seed: int = 0, bit_depth: int = 8, **options) -> Path:
        """The RGB `array(h, w, seed, bit_depth)` saved at `path` (folders made): 8 bits by Pillow in
        the format of the suffix (`options` go to Image.save), 16 bits as a TIFF by tifffile."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = self.array(h, w, seed, bit_depth)
        if bit_depth == 16:
            tifffile.imwrite(path, pixels, photometric="rgb")
        else:
            Image.fromarray(pixels).save(path, **options)
        return path


@pytest.fixture(scope="session")
def photos() -> Photos:
    """The test photo factory (see Photos)."""
    return Photos()


class Cubes:
    """Test cubes on the 31-band grid: `array` makes one, `write` streams one to any cube format."""

    wavelengths = WAVELENGTHS_NM

    @staticmethod
    def array(h: int, w: int, bands: int = 31, seed: int = 0) -> np.ndarray:
        """(h, w, bands) float32 reflectance in [0.2, 0.71): smooth ramps across x, y and the
        bands (a plausible spectrum per pixel) plus 0.01 uniform noise of the seed, so values rarely tie."""
        yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
        t = np.linspace(0, 1, bands)
        smooth = 0.2 + 0.5 * xx[..., None] * t + 0.3 * yy[..., None] * (1 - t)
        return (smooth + 0.01 * np.random.default_rng(seed).random((h, w, bands))).astype(np.float32)

    def write(self, path, data: np.ndarray, blocks: list[int] | None = None, wavelengths=None, **options) -> Path:
        """`data` (h, w, bands) written at `path` by gmsr_cli's open_cube_writer in row blocks of the
        given heights (default: one block), with `wavelengths` (nm; default: the grid's first `bands`);
        `options` go to open_cube_writer (format, dtype, attrs, overwrite, mat_version...)."""
        wavelengths = self.wavelengths[: data.shape[2]] if wavelengths is None else wavelengths
        with open_cube_writer(path, data.shape[0], data.shape[1], wavelengths, **options) as writer:
            y = 0
            for n in blocks or [data.shape[0]]:
                writer.write_rows(y, data[y : y + n])
                y += n
        return Path(path)


@pytest.fixture(scope="session")
def cubes() -> Cubes:
    """The test cube factory (see Cubes)."""
    return Cubes()


@pytest.fixture(scope="session")
def gmsr():
    """Run `gmsr ARGS...` in-process with click's CliRunner: `gmsr(*args, code=None)` turns each
    argument into a string and returns the click Result; with `code`, asserts the exit code first."""
    def run(*args, code: int | None = None):
        result = CliRunner().invoke(cli, [str(a) for a in args])
        if code is not None:
            assert result.exit_code == code, result.output
        return result

    return run
