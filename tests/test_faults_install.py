"""A non-editable install finds its data the same way a checkout does: shipped data from inside the
package, the CAVE scenes and measured cameras from GMSR_DATA_DIR, with errors that say so."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

PROBE = textwrap.dedent("""
    import json
    import gmsr_cli
    from gmsr_cli.errors import DataError
    from gmsr_cli.spectra import camera_names, measured_cameras_problem
    from gmsr_cli.train.data import scene_paths
    from gmsr_cli.model.weights import DEFAULT_WEIGHTS
    try:
        scenes = [p.name for p in scene_paths("val")]
    except DataError as exc:
        scenes = str(exc)
    print(json.dumps({"package": gmsr_cli.__file__, "cameras": camera_names(),
                      "camera_problem": measured_cameras_problem(), "scenes": scenes}))
""")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package installed (not editable) into a folder of its own, from a copy of the source."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    for folder in ("gmsr_cli", "weights"):
        shutil.copytree(REPO_ROOT / folder, source / folder, ignore=ignore)
    target = base / "site"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(source)]
    # With the environment's setuptools when it has one (fast, offline), else pip fetches it.
    done = subprocess.run(command + ["--no-build-isolation"], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.skip(f"cannot build and install the package here: {done.stderr.strip()[-300:]}")
    return target


def _run(installed: Path, tmp_path: Path, args: list[str], **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GMSR_") and k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(installed), **env_extra)
    # From a folder of its own: nothing of the checkout is importable from there.
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)


def _probe(installed: Path, tmp_path: Path, **env_extra: str) -> dict:
    done = _run(installed, tmp_path, ["-c", PROBE], **env_extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_installed_package_without_data_folder_says_what_to_set(installed, tmp_path):
    found = _probe(installed, tmp_path)
    assert found["package"].startswith(str(installed))
    assert found["cameras"] == ["srgb", "cie1964"]  # shipped in the package
    assert "GMSR_DATA_DIR" in found["camera_problem"] and "GMSR_CAMERA_DATA" in found["camera_problem"]
    assert "not found" in found["scenes"] and "GMSR_DATA_DIR" in found["scenes"]
    assert ".venv" not in found["scenes"] and "site-packages" not in found["scenes"]
    listed = _run(installed, tmp_path, ["-m", "gmsr_cli.cli.main", "render", "--list-cameras"])
    assert listed.returncode == 0 and listed.stdout.split() == ["srgb", "cie1964"]
    assert "GMSR_DATA_DIR" in listed.stderr  # not lost silently
    evaluated = _run(installed, tmp_path, ["-m", "gmsr_cli.cli.main", "evaluate"])
    assert evaluated.returncode == 1 and "GMSR_DATA_DIR" in evaluated.stderr, evaluated.stderr
    assert "Traceback" not in evaluated.stderr


def test_installed_package_finds_the_data_folder_from_the_environment(installed, tmp_path, shared_dir):
    found = _probe(installed, tmp_path, GMSR_DATA_DIR=str(shared_dir / "data"))
    assert len(found["cameras"]) == 30 and found["camera_problem"] is None
    assert found["scenes"] == [f"{name}.h5" for name in
                               ("fake_and_real_food", "stuffed_toys", "oil_painting", "glass_tiles")]
    listed = _run(installed, tmp_path, ["-m", "gmsr_cli.cli.main", "render", "--list-cameras"],
                  GMSR_DATA_DIR=str(shared_dir / "data"))
    assert len(listed.stdout.split("\n")) > 28 and listed.stderr == ""


def test_the_environments_own_gmsr_from_another_folder(tmp_path):
    """The `gmsr` this environment installed (CI: `pip install .`, not editable) run from elsewhere."""
    import sysconfig
    from importlib.metadata import distributions

    # Only the environment's own install: a checkout holds a gmsr_cli.egg-info of its own, which
    # `python -m pytest` (the checkout first on sys.path) would otherwise find first.
    site = [sysconfig.get_paths()["purelib"]]
    dist = next((d for d in distributions(path=site) if d.metadata["Name"] == "gmsr-cli"), None)
    if dist is None:
        pytest.skip("gmsr-cli is not installed in this environment")
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct.get("dir_info", {}).get("editable"):
        pytest.skip("this environment's install is editable (it runs the checkout); .ci/run's is not")
    script = Path(sys.executable).parent / "gmsr"
    if not script.exists():
        pytest.skip(f"no gmsr script beside {sys.executable}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GMSR_") and k != "PYTHONPATH"}
    listed = subprocess.run([str(script), "render", "--list-cameras"], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=300)
    assert listed.returncode == 0 and listed.stdout.split() == ["srgb", "cie1964"]
    assert "GMSR_DATA_DIR" in listed.stderr
    if (REPO_ROOT.parent / "shared" / "data" / "cameras").is_dir():
        env["GMSR_DATA_DIR"] = str(REPO_ROOT.parent / "shared" / "data")
        listed = subprocess.run([str(script), "render", "--list-cameras"], capture_output=True, text=True,
                                env=env, cwd=tmp_path, timeout=300)
        assert len(listed.stdout.split("\n")) > 28, listed.stderr
