"""`gmsr preview`: a quick look at a cube as true colour, one band or a false-colour composite."""

from __future__ import annotations

from pathlib import Path

import click

from gmsr_cli.cli.options import overwrite_option, parse_pair, variable_options


def _stretch(ctx: click.Context, param: click.Parameter, value: str | None):
    return None if value is None else parse_pair(value, "--stretch")


def _rgb(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 3 or not all(parts):
        raise click.BadParameter(f"{value!r}: give three bands as R,G,B, e.g. 650,550,450")
    return parts


@click.command(short_help="Picture of a cube: true colour, one band, or false colour.")
@click.argument("cube", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Picture file (.png, .jpg, .tif)  [default: beside the cube, named after what it shows].")
@click.option("--band", default=None, metavar="WAVELENGTH|INDEX",
              help="One band: 560nm or 560 (nearest band), or an index 0-30.")
@click.option("--rgb", default=None, callback=_rgb, metavar="R,G,B",
              help="False colour from three bands, e.g. 650,550,450 (nm) or 25,15,5 (indices).")
@click.option("--cmap", type=click.Choice(["gray", "viridis", "magma", "inferno"]), default=None,
              help="Colour map for --band  [default: grey].")
@click.option("--stretch", default=None, callback=_stretch, metavar="LO,HI",
              help="Contrast stretch between these percentiles for --band/--rgb  [default: 1,99].")
@click.option("--exposure", default=None, metavar="auto|GAIN",
              help="True colour only: multiply reflectance by GAIN, or auto (99th percentile to white).")
@click.option("--label/--no-label", default=True, show_default=True,
              help="Write the wavelength(s) on --band/--rgb pictures.")
@overwrite_option
@variable_options
def command(cube: Path, output: Path | None, band: str | None, rgb: list[str] | None, cmap: str | None,
            stretch: tuple[float, float] | None, exposure: str | None, label: bool, overwrite: bool) -> None:
    """Write a picture of CUBE: by default its true colours as an sRGB photo.

    \b
    Examples:
      gmsr preview cube.h5 -o cube.png
      gmsr preview cube.h5 --band 560nm --cmap viridis -o band560.png
      gmsr preview cube.h5 --rgb 650,550,450 --stretch 2,98 -o false.png
    """
    from gmsr_cli import api

    if output is None:
        output = api.default_preview_path(cube, band, rgb)
    path = api.preview_file(cube, output, band=band, rgb=rgb, cmap=cmap, stretch=stretch, exposure=exposure,
                            label=label, overwrite=overwrite)
    click.echo(f"Wrote {path}")
