"""First contact: `gmsr --help` and `--version` answer without importing torch, the commands are
listed without importing them, a reconstruction on the CPU never imports torch, and the first run
says that it compiles the CPU kernels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from gmsr_cli.cli.main import COMMAND_MODULES, SHORT_HELP, cli
from gmsr_cli.firstrun import FIRST_RUN_NOTE, first_run_note, kernels_to_compile

REPO_ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys
from gmsr_cli.cli.main import cli
code = cli.main(sys.argv[1:], prog_name="gmsr", standalone_mode=False)
heavy = sorted(m for m in ("torch", "numba", "h5py", "numpy", "gmsr_cli.cli.reconstruct") if m in sys.modules)
print(json.dumps(heavy), file=sys.stderr)
"""


def _python(code: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -c code args`` in a fresh process with this checkout first on its path."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def _heavy_imports(*args: str) -> list[str]:
    done = _python(PROBE, *args, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stderr.strip().splitlines()[-1])


def test_help_and_version_import_nothing_heavy():
    assert _heavy_imports("--help") == []
    assert _heavy_imports("--version") == []


def test_every_commands_help_imports_no_torch():
    """`gmsr COMMAND --help` too: the defaults it shows live in gmsr_cli/defaults.py, not beside torch."""
    code = ("import sys; from gmsr_cli.cli.main import cli, COMMAND_MODULES\n"
            "for name in COMMAND_MODULES:\n"
            "    try:\n        cli.main([name, '--help'], prog_name='gmsr', standalone_mode=False)\n"
            "    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('torch', 'numba') if m in sys.modules), file=sys.stderr)")
    done = _python(code, timeout=120)
    assert done.returncode == 0 and done.stderr.strip().splitlines()[-1] == "[]", done.stderr


def test_a_reconstruction_on_the_cpu_imports_no_torch(tmp_path, photos):
    """`gmsr reconstruct` (and batch) with the shipped weights on the CPU run the CPU engine from
    the weights file's arrays: torch, about 1 s to import, is never loaded; with --device auto too
    where PyTorch is a CPU build. The cube is the library's (the engine equals the published
    network: tests/test_model.py)."""
    photo = photos.write(tmp_path / "in" / "p.png", 40, 52)
    code = ("import sys; from gmsr_cli.cli.main import cli\n"
            "try:\n    cli.main(sys.argv[1:], prog_name='gmsr', standalone_mode=False)\n"
            "finally:\n    print(sorted(m for m in ('torch', 'numba') if m in sys.modules), file=sys.stderr)")
    from gmsr_cli.device import torch_build_has_gpu

    runs = [["reconstruct", str(photo), "-o", str(tmp_path / "a.h5"), "--device", "cpu", "--quiet"],
            ["batch", str(photo.parent), "-o", str(tmp_path / "out"), "--device", "cpu", "--quiet"]]
    if not torch_build_has_gpu():  # a CPU build of PyTorch: auto means the CPU, told without torch
        runs.append(["reconstruct", str(photo), "-o", str(tmp_path / "b.h5"), "--quiet"])
    for args in runs:
        done = _python(code, *args)
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip().splitlines()[-1] == "['numba']", (args, done.stderr)
    import h5py
    import numpy as np

    from gmsr_cli.api import reconstruct_image

    with h5py.File(tmp_path / "a.h5") as f:
        cube = f["cube"][...]
    assert cube.shape == (40, 52, 31)
    np.testing.assert_allclose(cube, reconstruct_image(photo), rtol=0, atol=1e-6)


def test_large_photos_take_torchs_products(tmp_path):
    """From TORCH_PRODUCTS_MIN_PIXELS on, the tiler imports torch for the engine's products (faster:
    gmsr_cli/model/matmul.py); below it, it does not. (The threshold is lowered here so that the
    test photo stays small.)"""
    code = ("import sys\nimport numpy as np\nimport gmsr_cli.tiling as tiling\n"
            "from gmsr_cli.model.loading import load_model\n"
            "tiling.TORCH_PRODUCTS_MIN_PIXELS = 600\n"
            "engine = load_model('gmsr-cave-srgb', 'cpu').engine\n"
            "out = []\n"
            "for h, w in ((20, 25), (20, 30)):\n"
            "    tiling.reconstruct_array(engine, np.zeros((h, w, 3), np.uint8))\n"
            "    out.append('torch' in sys.modules)\n"
            "print(out)")
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[False, True]"


def test_help_lists_every_command_with_its_own_short_help():
    out = CliRunner().invoke(cli, ["--help"]).output
    for name in COMMAND_MODULES:
        command = cli.commands[name]  # imports it
        assert SHORT_HELP[name] == command.get_short_help_str(limit=200), name
        assert name in out
    assert sorted(cli.commands) == sorted(COMMAND_MODULES)


def test_first_run_note_only_for_the_cpu_kernels_and_only_while_uncompiled():
    assert first_run_note("cuda:0", "mamba") is None
    assert first_run_note("cpu", "reference") is None
    pending = kernels_to_compile()
    assert pending is not None  # numba's cache layout is still what we read
    assert first_run_note("cpu", "numba") == (FIRST_RUN_NOTE if pending else None)


def test_an_empty_kernel_cache_is_announced(tmp_path):
    # NUMBA_CACHE_DIR: numba's own way to move its cache, here to an empty folder (a first run).
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path),
               PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", "from gmsr_cli.firstrun import first_run_note; "
                           "print(first_run_note('cpu', 'numba'))"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == FIRST_RUN_NOTE
