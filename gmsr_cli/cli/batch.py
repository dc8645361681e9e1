"""`gmsr batch`: many photos to a mirrored tree of cube files, resumable and splittable across machines."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from gmsr_cli.cli.options import (dtype_option, exact_colour_option, model_options, overwrite_option, quiet_option,
                                  tiling_options, writer_options)
from gmsr_cli.cli.ui import progress_bars, warn
from gmsr_cli.io.registry import DEFAULT_FORMAT, FORMAT_NAMES

MAX_LISTED_FAILURES = 50


@click.command(short_help="Reconstruct every photo of folders or glob patterns.")
@click.argument("inputs", nargs=-1, required=True, metavar="DIR|GLOB|PHOTO...")
@click.option("-o", "--output-dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the cubes; the input folders' trees are mirrored below it  "
                   "[default: each cube beside its photo].")
@click.option("--format", "format", type=click.Choice(FORMAT_NAMES), default=DEFAULT_FORMAT, show_default=True,
              help="Cube file format.")
@click.option("--shard", default=None, metavar="I/N",
              help="Process only part I of N (counted from 1): every N-th photo of the sorted list, "
                   "for cluster job arrays.")
@click.option("--dry-run", is_flag=True, help="List what would be done and exit.")
@dtype_option
@writer_options
@model_options
@tiling_options
@exact_colour_option
@overwrite_option
@quiet_option
def command(inputs: tuple[str, ...], output_dir: Path | None, format: str, shard: str | None, dry_run: bool, dtype: str,
            weights: str, device: str, backend: str, tile_px: int, overlap_px: int, batch_tiles: int | None,
            tta: bool, exact_colour: bool, overwrite: bool, quiet: bool) -> None:
    """Reconstruct every photo found in DIR (recursively), matched by GLOB, or given as PHOTO.

    Each cube is written beside its photo (photo.png -> photo.h5), or with -o mirroring the input
    tree under that folder. Photos whose cube already exists are
    skipped, so running the same command again resumes an interrupted batch (--overwrite redoes
    them). A photo that fails is reported and the others go on; the exit status is 1 if any
    failed. With --shard I/N, N machines each run part I (1..N) and together cover every photo
    exactly once.

    \b
    Examples:
      gmsr batch photos/
      gmsr batch photos/ -o cubes/
      gmsr batch 'shoot/**/*.jpg' -o cubes/ --format envi
      gmsr batch photos/ -o cubes/ --shard $SLURM_ARRAY_TASK_ID/8   (with --array=1-8)
    """
    from gmsr_cli import api

    items = api.batch_plan(inputs, output_dir, format=format, shard=shard)
    if dry_run:
        for item in items:
            click.echo(f"{item.input_path} -> {item.output_path}")
        click.echo(f"{len(items)} photo(s)" + (f" in shard {shard}" if shard else ""))
        return
    with progress_bars(quiet) as bars:
        files_task = bars.add_task("photos", total=len(items))
        tiles_task = bars.add_task("tiles", total=None)

        def start(i: int, item: api.BatchItem) -> None:
            bars.update(tiles_task, description=f"{item.input_path.name}", completed=0, total=None)

        def end(i: int, result: api.BatchResult) -> None:
            bars.update(files_task, completed=i + 1)
            if result.status == "failed":
                where = str(result.item.input_path)
                warn(f"failed: {result.message if where in result.message else where + ': ' + result.message}")

        def tiles(done: int, total: int) -> None:
            bars.update(tiles_task, completed=done, total=total)

        results = api.run_batch(items, weights=weights, device=device, backend=backend, tile_px=tile_px,
                                overlap_px=overlap_px, batch_tiles=batch_tiles, tta=tta, format=format,
                                dtype=dtype, exact_colour=exact_colour, overwrite=overwrite, on_file_start=start,
                                on_file_end=end, progress=tiles, on_warning=warn)
    failed = [r for r in results if r.status == "failed"]
    _print_summary(results, failed)
    untried = [r for r in results if r.status == "not tried"]
    if untried:
        raise click.ClickException(f"the disk is full: stopped with {len(untried)} of {len(results)} photo(s) "
                                   "not tried; free some space and run the same command again to resume")
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(results)} photo(s) failed (listed above)")


def _print_summary(results: list, failed: list) -> None:
    console = Console(file=sys.stdout, width=max(100, Console().width), soft_wrap=True)
    counts = Table(title="gmsr batch", show_edge=False)
    counts.add_column("status")
    counts.add_column("photos", justify="right")
    counts.add_column("seconds", justify="right")
    for status in ("done", "skipped", "failed", "not tried"):
        group = [r for r in results if r.status == status]
        if status == "not tried" and not group:
            continue
        counts.add_row(status, str(len(group)), f"{sum(r.seconds for r in group):.1f}")
    console.print(counts)
    if failed:
        table = Table(title="failed", show_edge=False)
        table.add_column("photo", overflow="fold")
        table.add_column("reason", overflow="fold")
        for r in failed[:MAX_LISTED_FAILURES]:
            table.add_row(str(r.item.input_path), r.message)
        if len(failed) > MAX_LISTED_FAILURES:
            table.add_row(f"... and {len(failed) - MAX_LISTED_FAILURES} more", "")
        console.print(table)
