"""The quickstart of examples/README.md runs as written (with the shipped weights)."""

import re
import shlex
import shutil
from pathlib import Path

import h5py
import pytest

from gmsr_cli.model.weights import DEFAULT_WEIGHTS, shipped_weight_names

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def code_blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", (EXAMPLES / "README.md").read_text(), flags=re.S)


def test_example_photos_are_small_pngs():
    photos = sorted(EXAMPLES.glob("*.png"))
    assert [p.name for p in photos] == ["peppers.png", "sunflowers.png", "toys.png"]
    assert all(p.stat().st_size < 150_000 for p in photos)


@pytest.mark.slow
def test_quickstart_runs_as_written(tmp_path, monkeypatch, gmsr):
    if DEFAULT_WEIGHTS not in shipped_weight_names():
        pytest.skip(f"the shipped weights {DEFAULT_WEIGHTS}.safetensors are not in weights/ yet")
    work = tmp_path / "examples"
    shutil.copytree(EXAMPLES, work)
    monkeypatch.chdir(work)
    [shell] = code_blocks("sh")
    for line in shell.strip().splitlines():
        args = shlex.split(line)
        if args[:2] == ["mkdir", "-p"]:
            Path(args[2]).mkdir(parents=True, exist_ok=True)
            continue
        assert args[0] == "gmsr", f"the quickstart should hold only gmsr commands: {line}"
        result = gmsr(*args[1:])
        assert result.exit_code == 0, f"{line}\n{result.output}"
    for name in ("peppers.h5", "toys.h5", "sunflowers.h5"):
        with h5py.File(work / "out" / name, "r") as f:
            assert f["cube"].shape == (256, 256, 31)
    assert (work / "out" / "toys.hdr").exists() and (work / "out" / "peppers_650nm.png").exists()
    for block in code_blocks("python"):
        exec(compile(block, "README.md", "exec"), {})
