"""Where data read from outside the package lives (CAVE scenes, measured cameras), checkout or install.

What the package needs at run time ships inside it (gmsr_cli/data, the weights). The CAVE scenes
and the 28 measured camera responses are not ours to ship; they are read from a data folder with
``cave/`` and ``cameras/`` in it: $GMSR_DATA_DIR, else, in a source checkout only, the project's
``../shared/data`` beside it. An installed package has no such neighbour: its location says
nothing about where the data is, so without $GMSR_DATA_DIR (or the per-item variables
GMSR_CAVE_DIR, GMSR_CAMERA_DATA, or --data-dir) the error says which variable to set.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "GMSR_DATA_DIR"

_PACKAGE = Path(__file__).resolve().parent


def checkout_data_dir() -> Path | None:
    """``<checkout>/../shared/data`` when this package runs from a source checkout (its parent
    holds pyproject.toml), else None: an installed package is not beside the shared folder."""
    root = _PACKAGE.parent
    if (root / "pyproject.toml").is_file() and (root / "gmsr_cli").resolve() == _PACKAGE:
        return root.parent / "shared" / "data"
    return None


def data_dir() -> Path | None:
    """The data folder: $GMSR_DATA_DIR, else a checkout's ../shared/data, else None."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return checkout_data_dir()


def data_path(env_var: str, relative: str) -> tuple[Path | None, str]:
    """(path, how it was found) of one item: $env_var, else data_dir()/relative; path None when
    neither is set (an install without $GMSR_DATA_DIR). `how` names what to set, for errors."""
    env = os.environ.get(env_var)
    if env:
        return Path(env).expanduser(), f"from {env_var}"
    folder = data_dir()
    hint = f"set {DATA_DIR_ENV} to the gmsr-cli data folder (holding {relative}) or {env_var}"
    if folder is None:
        return None, f"not set: {hint}"
    where = f"from {DATA_DIR_ENV}" if os.environ.get(DATA_DIR_ENV) else "beside the checkout"
    return folder / relative, f"{where}; {hint}"
