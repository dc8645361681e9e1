"""`gmsr reconstruct`: one photo to one cube file."""

from __future__ import annotations

from pathlib import Path

import click

from gmsr_cli.cli.options import (dtype_option, exact_colour_option, format_option, model_options, overwrite_option,
                                  quiet_option, tiling_options, writer_options)
from gmsr_cli.cli.ui import tile_progress, warn


@click.command(short_help="Reconstruct a hyperspectral cube from one RGB photo.")
@click.argument("photo", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Cube file (.h5/.hdf5, .hdr/.img ENVI, .mat, .tif, .npy)  [default: PHOTO with .h5].")
@format_option
@dtype_option
@writer_options
@model_options
@tiling_options
@exact_colour_option
@click.option("--view", is_flag=True,
              help="Also write the HTML viewer of the cube beside it (CUBE_view.html, as gmsr view).")
@overwrite_option
@quiet_option
def command(photo: Path, output: Path | None, format: str | None, dtype: str, weights: str, device: str,
            backend: str, tile_px: int, overlap_px: int, batch_tiles: int | None, tta: bool,
            exact_colour: bool, view: bool, overwrite: bool, quiet: bool) -> None:
    """Reconstruct a 31-band cube (400-700 nm, 10 nm steps) from an RGB photo.

    PHOTO is a PNG, JPEG, TIFF, BMP or WebP file, 8 or 16 bit, of any size: it is processed in
    overlapping tiles and the cube is streamed to its file, which appears only when complete.

    \b
    Examples:
      gmsr reconstruct photo.png -o cube.h5
      gmsr reconstruct photo.jpg -o cube.hdr --tile 512 --overlap 64 --device cuda
      gmsr reconstruct photo.tif -o cube.mat --tta --overwrite --mat-version 7.3
      gmsr reconstruct photo.png -o cube.tif --compression zstd
      gmsr reconstruct photo.png -o cube.h5 --view    # and cube_view.html
    """
    from gmsr_cli import api
    from gmsr_cli.io.registry import default_extension

    if output is None:
        output = photo.with_suffix(default_extension(format))
    if view:  # an existing page must stop us before the slow part, not after it
        from gmsr_cli.viewer import check_viewer_path, default_viewer_path

        check_viewer_path(default_viewer_path(output), overwrite)
    with tile_progress(quiet, f"{photo.name}") as progress:
        result = api.reconstruct_file(photo, output, weights=weights, device=device, backend=backend,
                                      tile_px=tile_px, overlap_px=overlap_px, batch_tiles=batch_tiles, tta=tta,
                                      exact_colour=exact_colour, format=format, dtype=dtype, overwrite=overwrite,
                                      progress=progress, on_warning=warn)
    files = ", ".join(str(p) for p in result.output_paths)
    click.echo(f"Wrote {files} ({result.height} x {result.width} x 31, {result.seconds:.1f} s)")
    if view:
        from gmsr_cli.cli.view import describe
        from gmsr_cli.viewer import write_viewer

        click.echo(describe(write_viewer(output, overwrite=overwrite)))
