"""Choose the default tile size: tiled against whole-image reconstruction on the CAVE validation scenes.

    python benchmarks/choose_tile.py [--weights NAME|PATH] [--settings 128:16,256:32,...] [--device cpu]
    python benchmarks/choose_tile.py --band [--settings 128:32,160:32,...]
    python benchmarks/choose_tile.py --band --upscale 2 --crop 908 --settings 256:32


For each validation scene (gmsr_cli.train.data.VAL_SCENES, rendered as 8-bit sRGB photos by
whole_scene_pair) and each tile/overlap setting, the scene is cropped (top left) to the largest
size n * tile - (n - 1) * overlap (n >= 2) that fits, so that its tiles overlap by exactly the
setting's overlap as they do in a large photo (on the uncropped 512 px scenes most settings would
spread their tiles into much larger overlaps) and tiled with tiles of exactly that size
(max_tile_px = tile). With --band the scenes are not cropped and the tiles are gmsr's default
plan: between tile and 2 x tile px, the fewest at the overlap, which keeps the overlap within a
pixel or two of the setting by itself. The crop is reconstructed in one pass and tiled.
--upscale F enlarges each scene's reflectance cube F times (bilinear) before it is rendered, so
that the band's large tiles (410-490 px at --tile 256 on large photos) can be checked against a
one-pass cube: two of them need a side of about 900 px, and the CAVE scenes have 512; --crop N
crops the scenes to N px instead of the sizes above (--band --upscale 2 --crop 908: 2 x 2 tiles of
470 px overlapping by 32, like a 4000 x 3000 photo's 473 x 456). Enlarged scenes are smoother
than photos of that size, so compare plans on the same scenes, not with the rows at 512 px.
Printed per setting, averaged over the scenes:
  vs whole  PSNR (dB), mean and largest absolute difference of the tiled cube against the one-pass
            cube: how much tiling changes the result (inf / 0 = identical);
  vs truth  MRAE and PSNR of the tiled cube against the real CAVE cube, beside the one-pass figures;
  time      seconds per crop, tiled and one pass.
The result and the choice are recorded in docs/tiling.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gmsr_cli import api
from gmsr_cli.model.weights import DEFAULT_WEIGHTS
from gmsr_cli.tiling import max_tile_for, plan_tiles, reconstruct_array
from gmsr_cli.train.data import load_training_cube, scene_paths, whole_scene_pair
from gmsr_cli.train.metrics import compute_metrics

DEFAULT_SETTINGS = "64:8,64:16,128:0,128:16,128:32,128:64,192:32,256:0,256:16,256:32,256:64"


def parse_settings(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in item.split(":")) for item in text.split(",")]  # type: ignore[misc]


def crop_size(tile: int, overlap: int, limit: int) -> int:
    """The largest n * tile - (n - 1) * overlap <= limit with n >= 2 (tiles that overlap exactly)."""
    n = (limit - overlap) // (tile - overlap)
    if n < 2:
        raise SystemExit(f"tile {tile} overlap {overlap}: two tiles do not fit in {limit} px")
    return n * tile - (n - 1) * overlap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help="shipped name or weights/checkpoint file")
    parser.add_argument("--settings", default=DEFAULT_SETTINGS, help="TILE:OVERLAP pairs, comma-separated")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-tiles", type=int, default=None)
    parser.add_argument("--scenes", type=int, default=None, help="use only the first N validation scenes")
    parser.add_argument("--band", action="store_true",
                        help="gmsr's plan (tiles from TILE to 2 x TILE px) on the whole scenes")
    parser.add_argument("--upscale", type=int, default=1,
                        help="enlarge each scene's cube this many times (bilinear) before rendering")
    parser.add_argument("--crop", type=int, default=None, help="crop the scenes to this many px (a square)")
    args = parser.parse_args()

    model = api.load_model(args.weights, device=args.device)
    name = model.weights.name if model.weights else "random-init"
    settings = parse_settings(args.settings)
    paths = scene_paths("val")[: args.scenes]
    rows: dict[tuple[int, int], list[dict[str, float]]] = {s: [] for s in settings}
    sizes = {}
    for path in paths:
        if args.upscale > 1:
            cube, _ = load_training_cube(path)
            planes = torch.from_numpy(np.ascontiguousarray(cube.transpose(2, 0, 1)))[None]  # (1, 31, H, W)
            cube = torch.nn.functional.interpolate(planes, scale_factor=args.upscale, mode="bilinear",
                                                   align_corners=False)
            rgb_full, truth_full = whole_scene_pair(cube[0].numpy().transpose(1, 2, 0))
        else:
            rgb_full, truth_full = whole_scene_pair(path)
        for tile, overlap in settings:
            limit = min(rgb_full.shape[:2])
            if args.crop:
                if args.crop > limit:
                    raise SystemExit(f"--crop {args.crop}: the scenes have {limit} px (use --upscale)")
                size = args.crop
            else:
                size = limit if args.band else crop_size(tile, overlap, limit)
            sizes[(tile, overlap)] = size
            max_tile = max_tile_for(tile) if args.band else tile
            rgb, truth = rgb_full[:size, :size], truth_full[:size, :size]
            start = time.perf_counter()
            whole = reconstruct_array(model.module, rgb, tile_px=0, overlap_px=0, device=model.device)
            whole_seconds = time.perf_counter() - start
            start = time.perf_counter()
            tiled = reconstruct_array(model.module, rgb, tile_px=tile, overlap_px=overlap, device=model.device,
                                      batch_tiles=args.batch_tiles, max_tile_px=max_tile)
            seconds = time.perf_counter() - start
            vs_whole = compute_metrics(tiled, whole)  # PSNR only: MRAE needs a positive reference
            whole_truth = compute_metrics(whole, truth)
            vs_truth = compute_metrics(tiled, truth)
            diff = np.abs(tiled - whole)
            plan = plan_tiles(size, size, tile, overlap, max_tile)
            n_tiles = sum(len(r) for r in plan)
            tile_side = plan[0][0].width
            rows[(tile, overlap)].append({
                "tiles": n_tiles, "side": tile_side, "psnr_whole": vs_whole["psnr"], "mae_whole": float(diff.mean()),
                "max_whole": float(diff.max()), "mrae_truth_whole": whole_truth["mrae"],
                "mrae_truth": vs_truth["mrae"], "psnr_truth_whole": whole_truth["psnr"],
                "psnr_truth": vs_truth["psnr"], "seconds_whole": whole_seconds, "seconds": seconds})
            print(f"{path.stem} {size} px, tile {tile} overlap {overlap}: vs whole {vs_whole['psnr']:.2f} dB, "
                  f"MRAE vs truth {vs_truth['mrae']:.4f} (one pass {whole_truth['mrae']:.4f}), "
                  f"{seconds:.1f} s (one pass {whole_seconds:.1f} s)", flush=True)

    print(f"\nweights {name}; {len(paths)} validation scenes ({', '.join(p.stem for p in paths)}); "
          f"device {model.device}; plan: {'band (tile..2 x tile)' if args.band else 'fixed tiles'}"
          f"{f'; scenes enlarged {args.upscale}x' if args.upscale > 1 else ''}\n")
    print("| tile | overlap | crop px | tiles (side px) | vs whole PSNR dB | vs whole mean abs | vs whole max abs "
          "| MRAE tiled | MRAE one pass | PSNR tiled | PSNR one pass | s tiled | s one pass |")
    print("|" + "---:|" * 13)
    for (tile, overlap), results in rows.items():
        m = {k: float(np.mean([r[k] for r in results])) for k in results[0]}
        print(f"| {tile} | {overlap} | {sizes[(tile, overlap)]} | {m['tiles']:.0f} ({m['side']:.0f}) "
              f"| {m['psnr_whole']:.2f} "
              f"| {m['mae_whole']:.5f} | {m['max_whole']:.4f} | {m['mrae_truth']:.4f} | {m['mrae_truth_whole']:.4f} "
              f"| {m['psnr_truth']:.2f} | {m['psnr_truth_whole']:.2f} | {m['seconds']:.1f} "
              f"| {m['seconds_whole']:.1f} |")


if __name__ == "__main__":
    main()
