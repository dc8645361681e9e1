"""`gmsr info`: cubes, weights and photos described."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from gmsr_cli.cli.main import cli
from gmsr_cli.io import open_cube_writer
from gmsr_cli.model.gmsr import GMSRNet
from gmsr_cli.model.weights import save_weights
from gmsr_cli.spectra import WAVELENGTHS_NM


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_cube_info(tmp_path):
    data = np.linspace(0.0, 0.8, 6 * 7 * 31, dtype=np.float32).reshape(6, 7, 31)
    path = tmp_path / "c.mat"
    with open_cube_writer(path, 6, 7, WAVELENGTHS_NM, attrs={"weights": "some-weights"}) as writer:
        writer.write_rows(0, data)
    result = run("info", path)
    assert result.exit_code == 0, result.output
    text = result.output
    assert "6 x 7 x 31" in text and "400-700 nm, 31 bands, 10 nm steps" in text and "float32" in text
    assert "min 0" in text and "max 0.8" in text
    assert "some-weights" in text
    described = json.loads(run("info", path, "--json").output)
    assert described["shape"] == [6, 7, 31] and described["format"] == "mat"
    assert described["value_max"] == pytest.approx(0.8)


def test_weights_info(tmp_path):
    torch.manual_seed(0)
    path = save_weights(GMSRNet(), tmp_path / "w.safetensors", card={"name": "demo", "camera": "srgb",
                                                                      "metrics": {"mrae": 0.2}})
    result = run("info", path)
    assert result.exit_code == 0, result.output
    assert "demo" in result.output and "44,980" in result.output and "fits" in result.output
    assert '{"mrae": 0.2}' in result.output


def test_photo_info(tmp_path):
    Image.fromarray(np.zeros((5, 9, 3), np.uint8)).save(tmp_path / "p.jpg")
    result = run("info", tmp_path / "p.jpg")
    assert result.exit_code == 0 and "5 x 9" in result.output


def test_weights_by_option_and_usage(tmp_path):
    torch.manual_seed(0)
    path = save_weights(GMSRNet(), tmp_path / "w.safetensors", card={"name": "demo"})
    result = run("info", "--weights", path, "--json")
    assert result.exit_code == 0 and json.loads(result.output)["name"] == "demo"
    assert run("info").exit_code == 2
    missing = run("info", "--weights", "no-such-weights")
    assert missing.exit_code == 1 and missing.output.startswith("Error: unknown weights name 'no-such-weights'")
