"""`gmsr render`: a cube to the RGB photo a camera would take of it."""

from __future__ import annotations

from pathlib import Path

import click

from gmsr_cli.cli.options import overwrite_option, variable_options


def _list_cameras(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from gmsr_cli.spectra import camera_names, measured_cameras_problem

    for name in camera_names():
        click.echo(name)
    problem = measured_cameras_problem()
    if problem is not None:  # say why the 28 measured cameras are missing from the list
        click.echo(f"Note: {problem}", err=True)
    ctx.exit()


@click.command(short_help="Render a cube to RGB as a camera would see it.")
@click.argument("cube", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Picture file (.png, .jpg, .tif)  [default: CUBE_<camera>.png beside the cube].")
@click.option("--camera", default="srgb", show_default=True, metavar="NAME",
              help="srgb, cie1964 or a measured camera (see --list-cameras).")
@click.option("--list-cameras", is_flag=True, is_eager=True, expose_value=False, callback=_list_cameras,
              help="Print the camera names and exit.")
@overwrite_option
@variable_options
def command(cube: Path, output: Path | None, camera: str, overwrite: bool) -> None:
    """Render CUBE (31 bands, 400-700 nm) to an 8-bit RGB picture through a camera model.

    srgb renders under illuminant E adapted to D65 with the sRGB curve (the look of an ordinary
    photo); cie1964 is the NTIRE 2020 camera response; the measured cameras are linear.

    \b
    Examples:
      gmsr render cube.h5 -o photo.png
      gmsr render cube.h5 --camera cie1964 -o ntire.png
      gmsr render --list-cameras
    """
    from gmsr_cli import api

    if output is None:
        output = cube.with_name(f"{cube.stem}_{camera.replace(' ', '_')}.png")
    path = api.render_file(cube, output, camera=camera, overwrite=overwrite)
    click.echo(f"Wrote {path}")
