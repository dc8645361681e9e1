"""`gmsr info`: cubes, weights and photos described."""

import json

import numpy as np
import pytest


def test_cube_info(tmp_path, cubes, gmsr):
    data = np.linspace(0.0, 0.8, 6 * 7 * 31, dtype=np.float32).reshape(6, 7, 31)
    path = cubes.write(tmp_path / "c.mat", data, attrs={"weights": "some-weights"})
    result = gmsr("info", path, code=0)
    text = result.output
    assert "6 x 7 x 31" in text and "400-700 nm, 31 bands, 10 nm steps" in text and "float32" in text
    assert "min 0" in text and "max 0.8" in text
    assert "some-weights" in text
    described = json.loads(gmsr("info", path, "--json").output)
    assert described["shape"] == [6, 7, 31] and described["format"] == "mat"
    assert described["value_max"] == pytest.approx(0.8)


def test_weights_info(weights_file, gmsr):
    result = gmsr("info", weights_file, code=0)
    assert "test-random-init" in result.output and "44,980" in result.output and "fits" in result.output
    assert '{"mrae": 0.2}' in result.output


def test_photo_info(tmp_path, photos, gmsr):
    result = gmsr("info", photos.write(tmp_path / "p.jpg", 5, 9))
    assert result.exit_code == 0 and "5 x 9" in result.output


def test_weights_by_option_and_usage(weights_file, gmsr):
    result = gmsr("info", "--weights", weights_file, "--json")
    assert result.exit_code == 0 and json.loads(result.output)["name"] == "test-random-init"
    assert gmsr("info").exit_code == 2
    missing = gmsr("info", "--weights", "no-such-weights")
    assert missing.exit_code == 1 and missing.output.startswith("Error: unknown weights name 'no-such-weights'")
