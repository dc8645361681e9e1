"""Bad inputs and failures: one `Error:` line, exit 1, no traceback (unless -v); Ctrl-C is exit 130."""

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from gmsr_cli.cli.main import GmsrGroup, cli
from gmsr_cli.errors import CubeError


@pytest.fixture(scope="module")
def files(tmp_path_factory, photos, cubes):
    root = tmp_path_factory.mktemp("bad")
    data = photos.write(root / "good.png", 12, 16).read_bytes()
    (root / "truncated.png").write_bytes(data[: len(data) // 2])
    (root / "garbage.png").write_bytes(b"this is not a picture at all")
    Image.fromarray(photos.array(12, 16)[:, :, 0]).save(root / "grey.png")
    (root / "not_weights.safetensors").write_bytes(b"\x00" * 64)
    cubes.write(root / "cube.h5", np.full((4, 5, 31), 0.5, np.float32))
    return root


def check_one_line_error(result, *needles, code=1):
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ") and "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("args,needles", [
    (["reconstruct", "{root}/truncated.png", "-o", "{tmp}/x.h5"], ["truncated.png"]),
    (["reconstruct", "{root}/garbage.png", "-o", "{tmp}/x.h5"], ["garbage.png", "not an image"]),
    (["reconstruct", "{root}/grey.png", "-o", "{tmp}/x.h5"], ["grey.png", "greyscale"]),
    (["reconstruct", "{root}/missing.png", "-o", "{tmp}/x.h5"], ["missing.png", "not found"]),
    (["reconstruct", "{root}/good.png", "-o", "{tmp}/x.xyz"], ["x.xyz", "hdf5"]),
    (["reconstruct", "{root}/good.png", "-o", "{tmp}/x.hdr", "--dtype", "float16"], ["float16"]),
    (["reconstruct", "{root}/good.png", "-o", "{tmp}/nofolder/x.h5"], ["nofolder"]),
    (["reconstruct", "{root}/good.png", "-o", "{tmp}/x.h5", "--weights", "no-such-name"], ["no-such-name"]),
    (["reconstruct", "{root}/good.png", "-o", "{tmp}/x.h5", "--weights", "{root}/absent.safetensors"],
     ["absent.safetensors", "not found"]),
    (["reconstruct", "{root}/good.png", "-o", "{tmp}/x.h5", "--weights", "{root}/not_weights.safetensors"],
     ["not_weights.safetensors"]),
    (["reconstruct", "{root}/good.png", "-o", "{tmp}/x.h5", "--overlap", "200"], ["--overlap"]),
    (["preview", "{root}/cube.h5", "--band", "900nm", "-o", "{tmp}/p.png"], ["900", "400-700"]),
    (["preview", "{root}/cube.h5", "--band", "green", "-o", "{tmp}/p.png"], ["green"]),
    (["preview", "{root}/cube.h5", "-o", "{tmp}/p.gif"], ["p.gif"]),
    (["preview", "{root}/missing.h5", "-o", "{tmp}/p.png"], ["missing.h5"]),
    (["render", "{root}/cube.h5", "--camera", "nikon-x9000", "-o", "{tmp}/r.png"], ["nikon-x9000"]),
    (["render", "{root}/good.png", "-o", "{tmp}/r.png"], ["good.png"]),
    (["batch", "{root}/good.png", "-o", "{tmp}/out", "--shard", "0/4"], ["--shard", "1 to 4"]),
    (["batch", "{root}/good.png", "-o", "{tmp}/out", "--shard", "5/4"], ["--shard"]),
    (["batch", "{root}/good.png", "-o", "{tmp}/out", "--shard", "half"], ["--shard", "I/N"]),
    (["batch", "{root}/nothing-here", "-o", "{tmp}/out"], ["nothing-here"]),
    (["info", "{root}/garbage.png"], ["garbage.png"]),
    (["info", "{root}/missing.h5"], ["missing.h5"]),
])
def test_bad_inputs_give_one_line(files, weights_file, gmsr, tmp_path, args, needles):
    args = [a.format(root=files, tmp=tmp_path) for a in args]
    if args[0] in ("reconstruct", "batch") and "--weights" not in args:
        args += ["--weights", weights_file]
    check_one_line_error(gmsr(*args), *needles)
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_asking_for_a_missing_gpu(files, weights_file, gmsr, tmp_path):
    result = gmsr("reconstruct", files / "good.png", "-o", tmp_path / "x.h5", "--weights", weights_file,
                  "--device", "cuda")
    check_one_line_error(result, "--device cuda", "--device cpu")


def test_usage_errors_are_click_usage_errors(files, gmsr):
    assert "auto, cpu, cuda or cuda:N" in gmsr("reconstruct", files / "good.png", "--device", "gpu", code=2).output
    assert "LO,HI" in gmsr("preview", files / "cube.h5", "--stretch", "1", code=2).output


def test_verbose_shows_the_traceback(files, gmsr):
    result = gmsr("-v", "info", files / "garbage.png", code=1)
    assert "Traceback" in result.output and result.output.strip().splitlines()[-1].startswith("Error: ")


def group_with(exception):
    """A real GmsrGroup holding one command that raises ``exception``."""
    @click.group(cls=GmsrGroup)
    @click.option("-v", "--verbose", is_flag=True)
    def group(verbose):
        pass

    @group.command()
    def boom():
        raise exception

    return group


def test_unexpected_errors_are_one_line_with_a_hint():
    result = CliRunner().invoke(group_with(ZeroDivisionError("division by zero")), ["boom"])
    check_one_line_error(result, "ZeroDivisionError", "division by zero", "-v")
    result = CliRunner().invoke(group_with(ZeroDivisionError("division by zero")), ["-v", "boom"])
    assert result.exit_code == 1 and "Traceback" in result.output


def test_library_errors_and_interrupts():
    check_one_line_error(CliRunner().invoke(group_with(CubeError("x.h5: broken")), ["boom"]), "x.h5: broken")
    result = CliRunner().invoke(group_with(KeyboardInterrupt()), ["boom"])
    assert result.exit_code == 130 and "Interrupted" in result.output and "Traceback" not in result.output


def test_every_command_has_help_with_an_example(gmsr):
    for name, command in cli.commands.items():
        result = gmsr(name, "--help")
        assert result.exit_code == 0, name
        assert "Example" in result.output and f"gmsr {name}" in result.output, name
    assert "0.1.0" in gmsr("--version", code=0).output
