"""Rebuild the example photos: sRGB renderings of CAVE validation scenes, cropped to 256 x 256.

    python examples/make_examples.py [CAVE_DIR]

CAVE_DIR holds the CAVE scene files (<scene>.h5); by default ../shared/data/cave beside the repo.
The photos are what `gmsr render SCENE.h5 --camera srgb` gives, cropped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from gmsr_cli.io import read_cube
from gmsr_cli.spectra import render_rgb

HERE = Path(__file__).resolve().parent
# (scene, output name, top, left): 256 x 256 crops on the main subject; all are validation scenes,
# which the shipped weights were not trained on.
CROPS = (
    ("fake_and_real_food", "peppers.png", 140, 0),
    ("stuffed_toys", "toys.png", 10, 10),
    ("oil_painting", "sunflowers.png", 20, 30),
)
SIZE = 256


def main(cave_dir: Path) -> None:
    for scene, name, top, left in CROPS:
        with read_cube(cave_dir / f"{scene}.h5") as cube:
            block = cube.read_rows(top, top + SIZE)[:, left:left + SIZE]
        rgb = render_rgb(np.ascontiguousarray(block), "srgb")
        Image.fromarray(rgb).save(HERE / name, optimize=True)
        print(f"{name}: {scene} rows {top}-{top + SIZE - 1}, columns {left}-{left + SIZE - 1}, "
              f"{(HERE / name).stat().st_size // 1024} KB")


if __name__ == "__main__":
    default = HERE.parent.parent / "shared" / "data" / "cave"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
