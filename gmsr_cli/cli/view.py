"""`gmsr view`: write a self-contained HTML page to explore a cube's spectra in a browser."""

from __future__ import annotations

from pathlib import Path

import click

from gmsr_cli.cli.options import overwrite_option
from gmsr_cli.viewer import DEFAULT_MAX_PIXELS


def describe(result) -> str:
    """The line printed for a written page (shared with `gmsr reconstruct --view`)."""
    size = f"{result.bytes / 2**20:.1f} MB"
    if result.step == 1:
        return f"Wrote {result.path} ({size}, every pixel)"
    return (f"Wrote {result.path} ({size}, downsampled by {result.step}: the top-left pixel of every "
            f"{result.step} x {result.step} block, {result.grid_width} x {result.grid_height} of "
            f"{result.width} x {result.height})")


@click.command(short_help="Write an HTML page to explore a cube's spectra (hover, pin, bands, CSV).")
@click.argument("cube", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The page (.html)  [default: CUBE_view.html beside the cube].")
@click.option("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, show_default=True, metavar="N",
              help="Embed at most N pixels' spectra; larger cubes are downsampled by a whole step (every "
                   "2nd, 3rd... pixel in each direction, stated on the page). 31 bands take at most 83 bytes "
                   "of page per pixel, 30-50 after compression on the cubes tried.")
@overwrite_option
def command(cube: Path, output: Path | None, max_pixels: int, overwrite: bool) -> None:
    """Write one self-contained HTML page showing CUBE's true colours: hover over a pixel to see
    its spectrum, click to pin it (several, each in its pixel's colour), slide through single
    bands, and download the pinned spectra as CSV. No server and no network needed: open the
    file in a browser (Chrome/Edge, Firefox, Safari of 2023 or later). Coordinates are those of
    the cube: x = column, y = row, counted from 0.

    \b
    Examples:
      gmsr view cube.h5                       # writes cube_view.html
      gmsr view big.hdr -o big.html --max-pixels 1000000
    """
    from gmsr_cli.viewer import write_viewer

    result = write_viewer(cube, output, max_pixels=max_pixels, overwrite=overwrite)
    click.echo(describe(result))
