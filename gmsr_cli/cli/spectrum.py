"""`gmsr spectrum`: the spectra at pixels, or mean and spread over boxes, as a plot or as numbers."""

from __future__ import annotations

from pathlib import Path

import click

from gmsr_cli.cli.options import overwrite_option


@click.command(short_help="Plot (or print) the spectra at pixels and over boxes of a cube.")
@click.argument("cube", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--at", "points", multiple=True, metavar="X,Y",
              help="A pixel: X is the column, Y the row, both counted from 0 (top left is 0,0). Repeat for more.")
@click.option("--box", "boxes", multiple=True, metavar="X0,Y0,X1,Y1",
              help="Mean and standard deviation over columns X0..X1-1 and rows Y0..Y1-1 (the end is excluded, "
                   "as in Python slices). Repeat for more.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A plot (.png, .svg, .pdf) or the numbers (.csv, .json)  [default: CUBE_spectrum.png beside "
                   "the cube; with --json/--csv: standard output].")
@click.option("--json", "as_json", is_flag=True, help="The numbers as JSON instead of a plot.")
@click.option("--csv", "as_csv", is_flag=True, help="The numbers as CSV (one row per wavelength) instead of a plot.")
@click.option("--thumbnail/--no-thumbnail", default=True, show_default=True,
              help="Draw the image beside the plot (reads a strided copy of the whole cube: seconds for a "
                   "compressed HDF5 cube of gigabytes).")
@overwrite_option
def command(cube: Path, points: tuple[str, ...], boxes: tuple[str, ...], output: Path | None, as_json: bool,
            as_csv: bool, thumbnail: bool, overwrite: bool) -> None:
    """Show the spectra of CUBE at pixels (--at) and over boxes (--box).

    The plot draws each pixel's spectrum in that pixel's own colour and each box's mean with a
    band of +/- one standard deviation, beside a thumbnail of the image marking them. Only the
    pixels asked for are read from the file (and a strided copy for the thumbnail of a plot), so
    a cube of any size answers quickly. Reflectance against wavelength in nm.

    \b
    Examples:
      gmsr spectrum cube.h5 --at 120,45 --at 300,200 -o spectra.png
      gmsr spectrum cube.hdr --box 10,10,50,40 --at 5,5 --csv > spectra.csv
      gmsr spectrum cube.mat --at 0,0 --json
    """
    from gmsr_cli import spectrum
    from gmsr_cli.errors import GmsrError

    if as_json and as_csv:
        raise GmsrError("choose either --json or --csv, not both")
    numbers = "json" if as_json else "csv" if as_csv else None
    parsed_points = [spectrum.parse_point(p) for p in points]
    parsed_boxes = [spectrum.parse_box(b) for b in boxes]
    if not parsed_points and not parsed_boxes:
        raise GmsrError("give at least one pixel (--at X,Y) or box (--box X0,Y0,X1,Y1)")
    if numbers is not None and output is None:
        found = spectrum.read_spectra(cube, parsed_points, parsed_boxes)
        click.echo(found.to_json() if numbers == "json" else found.to_csv(), nl=False)
        return
    if output is None:
        output = spectrum.default_spectrum_path(cube)
    if numbers is not None and spectrum.output_kind(output) != numbers:
        raise GmsrError(f"--{numbers} writes {numbers.upper()}, but {output} is not a .{numbers} file; "
                        f"name the output .{numbers} or leave out -o to print the numbers")
    path = spectrum.write_spectra(cube, output, parsed_points, parsed_boxes, thumbnail=thumbnail,
                                  overwrite=overwrite)
    click.echo(f"Wrote {path}")
