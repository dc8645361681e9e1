"""Does the train part of the measured spectra say anything about the check part that CAVE does not?

    python scripts/library_value.py [--cameras srgb,cie1964]

The spectral check charts (gmsr_cli/train/charts.py) score reconstructions of natural objects,
clothes, hair and skin (the check sets); `gmsr train --synthetic-prob` paints synthetic scenes
with the train sets (the SFU 1995 set, DuPont paints, Munsell chips, less near-duplicates of
check spectra). Before spending CPU hours on training with them, this asks the cheap model the
charts compare against: the per-pixel root-polynomial baseline (gmsr_cli/train/baseline.py,
fitted exactly as `gmsr evaluate --baseline` fits it) is fitted on

  cave          the 20 CAVE training scenes (20,000 pixels each; the evaluate baseline),
  library       the train sets alone, each spectrum a flat pixel at exposures 0.4, 0.7 and 1.0,
  cave+library  both, the library once and ten times over (more weight),

and scored on the check spectra (each a flat pixel, as the charts score a patch's mean): patch
RMSE and SAM, as in `gmsr evaluate --charts`. If the library fit is worse than the CAVE fit and
adding it does not help, the train sets carry nothing about the check materials that CAVE lacks,
for this model at least. Prints a markdown table; the numbers are quoted in the model cards'
notes and issue notes.
"""

from __future__ import annotations

import argparse

import numpy as np

from gmsr_cli import spectra
from gmsr_cli.train.baseline import RootPolyBaseline
from gmsr_cli.train.charts import load_library, patch_scores, split_reflectances
from gmsr_cli.train.data import scene_paths, whole_scene_pair

EXPOSURES = (0.4, 0.7, 1.0)


def flat_pair(reflectances: np.ndarray, camera: str) -> tuple[np.ndarray, np.ndarray]:
    """(rgb (N * 3, 1, 3), cube (N * 3, 1, 31)): each spectrum as one flat pixel at each exposure."""
    cube = np.concatenate([reflectances * g for g in EXPOSURES])[:, None, :].astype(np.float32)
    return spectra.render_rgb_float(cube, camera), cube


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", default="srgb,cie1964")
    args = parser.parse_args()
    train, check = split_reflectances(load_library())
    check_all = np.concatenate(list(check.values()))
    train_all = np.concatenate(list(train.values()))
    print(f"train sets: {', '.join(f'{k} ({len(v)})' for k, v in train.items())}; "
          f"check sets: {', '.join(f'{k} ({len(v)})' for k, v in check.items())}\n")
    print("| camera | baseline fitted on | check patch RMSE | check SAM deg |")
    print("|---|---|---:|---:|")
    for camera in args.cameras.split(","):
        cave = [whole_scene_pair(path, camera) for path in scene_paths("train")]
        library = flat_pair(train_all, camera)
        check_rgb = spectra.render_rgb_float(check_all[:, None, :].astype(np.float32), camera)
        fits = {"cave (the evaluate baseline)": cave, "library train part alone": [library],
                "cave + library": cave + [library], "cave + library x10": cave + [library] * 10}
        for name, pairs in fits.items():
            baseline = RootPolyBaseline(camera).fit(pairs)
            scores = patch_scores(baseline.predict(check_rgb)[:, 0], check_all)
            print(f"| {camera} | {name} | {scores['patch_rmse']:.4f} | {scores['patch_sam']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
