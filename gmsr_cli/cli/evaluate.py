"""`gmsr evaluate`: score weights on hyperspectral scenes, optionally beside the baseline."""

from __future__ import annotations

import json

import click

from gmsr_cli.cli.options import (backend_option, device_option, exact_colour_option, overlap_option, tile_option,
                                  tta_option)


@click.command("evaluate")
@click.argument("scenes", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--weights", default="gmsr-cave-srgb", show_default=True, metavar="NAME|PATH",
              help="Shipped weights name or a weights file.")
@click.option("--rgb", "rgb_images", multiple=True, type=click.Path(dir_okay=False), metavar="IMAGE",
              help="An RGB photo of each scene, in order (default: render each cube with the weights' camera).")
@click.option("--camera", default=None, metavar="NAME", help="Camera model to render RGB with [default: the weights'].")
@click.option("--baseline", is_flag=True, help="Also score the root-polynomial regression baseline.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="CAVE scene folder for the default scenes and the baseline fit "
                   "[default: $GMSR_CAVE_DIR, else cave/ in $GMSR_DATA_DIR, else ../shared/data/cave of a checkout].")
@click.option("--split", type=click.Choice(["val", "train"]), default=None,
              help="Score the CAVE validation or training scenes instead of SCENES [default: val when no SCENES]; "
                   "train beside val shows how much of a model's fit carries over to scenes it never saw.")
@click.option("--charts", is_flag=True,
              help="Also score GMSR-Net and the baseline on the spectral checks: flat patches of the measured "
                   "reflectances kept out of training (natural objects, clothes, hair, skin), patch RMSE and SAM; "
                   "and synthetic scenes of them (shaded overlapping discs), MRAE, RMSE, PSNR and SAM.")
@click.option("--per-band", is_flag=True, help="Also print the RMSE of each band, pooled over the scenes.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON (per-band RMSE included).")
@tile_option
@overlap_option
@tta_option
@exact_colour_option
@device_option
@backend_option
def command(scenes, weights, rgb_images, camera, baseline, data_dir, split, charts, per_band, as_json, tile_px, overlap_px, tta,
            exact_colour, device, backend):
    """Reconstruct whole SCENES (cube files) and report MRAE, RMSE, PSNR and SAM.

    The RGB input is rendered from each cube by the weights' camera model as an 8-bit photo and
    goes through exactly the tiled path of `gmsr reconstruct`. Without SCENES, the four CAVE
    validation scenes are used.

    \b
    Example:
      gmsr evaluate --weights gmsr-cave-srgb --baseline
      gmsr evaluate --split train --baseline --per-band
      gmsr evaluate --weights my.safetensors scene1.h5 scene2.mat --json
      gmsr evaluate --weights gmsr-cave-srgb --charts
    """
    from rich.console import Console
    from rich.table import Table

    from gmsr_cli.api import load_model
    from gmsr_cli.train import data as train_data
    from gmsr_cli.train.evaluate import evaluate

    if scenes and split:
        raise click.UsageError("give SCENES or --split, not both")
    paths = list(scenes) or [str(p) for p in train_data.scene_paths(split or "val", data_dir)]
    model = load_model(weights, device, backend)
    err = Console(stderr=True)

    def on_scene(row):
        if not as_json:
            err.print(f"[dim]{row['scene']}: {row['seconds']} s[/dim]")

    result = evaluate(model, paths, rgb_images=list(rgb_images) or None, camera=camera, tile_px=tile_px,
                      overlap_px=overlap_px, tta=tta, baseline=baseline, data_dir=data_dir,
                      exact_colour=exact_colour, charts=charts, on_scene=on_scene)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    table = Table(title=f"{result['weights']} (camera {result['camera']}, tile {tile_px}, overlap {overlap_px}"
                  f"{', TTA' if tta else ''}{', exact colour' if result['exact_colour'] else ''})")
    table.add_column("scene")
    table.add_column("method")
    for name in ("MRAE", "RMSE", "PSNR dB", "SAM deg"):
        table.add_column(name, justify="right")

    def add(scene, method, m, style=None):
        table.add_row(scene, method, *_metric_cells(m), style=style)

    for row in result["scenes"]:
        add(row["scene"], "GMSR-Net", row["model"])
        if "baseline" in row:
            add("", "baseline", row["baseline"], style="dim")
    add("mean", "GMSR-Net", result["mean"], style="bold")
    if "baseline_mean" in result:
        add("mean", "baseline", result["baseline_mean"], style="bold dim")
    Console().print(table)
    if charts:
        _print_charts(result["charts"])
    if per_band:
        bands = Table(title="RMSE per band, pooled over the scenes")
        bands.add_column("nm", justify="right")
        bands.add_column("GMSR-Net", justify="right")
        if "baseline_band_rmse" in result:
            bands.add_column("baseline", justify="right")
        for i, nm in enumerate(result["wavelengths_nm"]):
            cells = [f"{nm:.0f}", f"{result['band_rmse'][i]:.4f}"]
            if "baseline_band_rmse" in result:
                cells.append(f"{result['baseline_band_rmse'][i]:.4f}")
            bands.add_row(*cells)
        Console().print(bands)


def _metric_cells(m: dict) -> list[str]:
    """A table row's MRAE, RMSE, PSNR and SAM cells."""
    from gmsr_cli.train.evaluate import METRICS

    return [f"{m[k]:.4f}" if k in ("mrae", "rmse") else f"{m[k]:.2f}" for k in METRICS]


def _print_charts(charts: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Spectral check charts (measured reflectances as flat patches, 8-bit RGB; mean over patches)")
    table.add_column("set", no_wrap=True)
    table.add_column("patches", justify="right")
    for name in ("GMSR-Net RMSE", "baseline RMSE", "GMSR-Net SAM deg", "baseline SAM deg"):
        table.add_column(name, justify="right")
    rows = [(name, s["model"], s["baseline"]) for name, s in charts["sets"].items()]
    rows.append(("all", charts["mean"], charts["baseline_mean"]))
    for name, ours, theirs in rows:
        table.add_row(name, str(ours["patches"]), f"{ours['patch_rmse']:.4f}", f"{theirs['patch_rmse']:.4f}",
                      f"{ours['patch_sam']:.2f}", f"{theirs['patch_sam']:.2f}", style="bold" if name == "all" else None)
    Console().print(table)
    scenes = charts["scenes"]
    table = Table(title=f"Synthetic check scenes ({scenes['per_set']} per set, {scenes['px']} px: shaded discs of "
                  "the same reflectances, 8-bit RGB; every pixel)")
    table.add_column("set", no_wrap=True)
    table.add_column("method")
    for name in ("MRAE", "RMSE", "PSNR dB", "SAM deg"):
        table.add_column(name, justify="right")
    rows = [(name, s["model"], s["baseline"]) for name, s in scenes["sets"].items()]
    rows.append(("all", scenes["mean"], scenes["baseline_mean"]))
    for name, ours, theirs in rows:
        for method, m, style in (("GMSR-Net", ours, "bold" if name == "all" else None), ("baseline", theirs, "dim")):
            table.add_row(name if method == "GMSR-Net" else "", method, *_metric_cells(m), style=style)
    Console().print(table)
