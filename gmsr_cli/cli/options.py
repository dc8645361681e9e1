"""The options that several commands share, as reusable click decorators with validating callbacks."""

from __future__ import annotations

import functools
import re
from typing import Any, Callable

import click

from gmsr_cli.colour import DEFAULT_EXACT_COLOUR
from gmsr_cli.io import FORMAT_NAMES
from gmsr_cli.defaults import DEFAULT_OVERLAP_PX, DEFAULT_TILE_PX, DEFAULT_WEIGHTS
from gmsr_cli.scan.registry import BACKEND_NAMES, backend_help

Decorator = Callable[[Callable], Callable]


def _non_negative(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value < 0:
        raise click.BadParameter(f"{value} is negative; give 0 or more pixels")
    return value


def _positive(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise click.BadParameter(f"{value}: give 1 or more")
    return value


def _device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    # Only the spelling here; whether that GPU exists is the library's answer (exit 1).
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value.strip().lower()):
        raise click.BadParameter(f"{value!r}: use auto, cpu, cuda or cuda:N")
    return value.strip().lower()


tile_option: Decorator = click.option(
    "--tile", "tile_px", type=int, default=DEFAULT_TILE_PX, show_default=True, metavar="PX",
    callback=_non_negative,
    help="Smallest tile side in pixels: tiles grow up to twice it, the fewest that keep the overlap, and "
         "an image up to twice it on a side runs in one pass; 0 always runs the whole image in one pass "
         "(needs memory for the whole cube).")
overlap_option: Decorator = click.option(
    "--overlap", "overlap_px", type=int, default=DEFAULT_OVERLAP_PX, show_default=True, metavar="PX",
    callback=_non_negative, help="Minimum overlap of neighbouring tiles, blended so that no seam shows.")
batch_tiles_option: Decorator = click.option(
    "--batch-tiles", type=int, default=None, metavar="N", callback=_positive,
    help="Tiles per forward pass  [default: 1 on the CPU, 8 on a GPU].")
tta_option: Decorator = click.option(
    "--tta", is_flag=True, help="Average over flipped copies (4 passes: a little better, 4x slower).")
device_option: Decorator = click.option(
    "--device", default="auto", show_default=True, callback=_device, metavar="auto|cpu|cuda[:N]",
    help="Where the network runs; auto takes a CUDA GPU when there is one.")
backend_option: Decorator = click.option(
    "--backend", type=click.Choice(BACKEND_NAMES), default="auto", show_default=True,
    help=backend_help())
weights_option: Decorator = click.option(
    "--weights", default=DEFAULT_WEIGHTS, show_default=True, metavar="NAME|PATH",
    help="Shipped weights name, or a .safetensors / PyTorch checkpoint file.")
exact_colour_option: Decorator = click.option(
    "--exact-colour/--no-exact-colour", "exact_colour", default=DEFAULT_EXACT_COLOUR,
    help="Correct each pixel's spectrum (least change) so that the weights' camera model renders it back to "
         "the photo's colour exactly; pixels with a clipped channel are left as they are  [default: as the "
         "weights' card says, else on for sRGB-camera weights: on for gmsr-cave-srgb, off for gmsr-cave-cie1964].")
format_option: Decorator = click.option(
    "--format", "format", type=click.Choice(FORMAT_NAMES), default=None,
    help="Cube file format  [default: from the output's extension].")
dtype_option: Decorator = click.option(
    "--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True,
    help="Stored value type (float16 halves the file; HDF5, TIFF and NPY only).")
def _max_pixels(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    from gmsr_cli.io.limits import set_max_pixels

    if value is not None:
        if value < 0:
            raise click.BadParameter(f"{value} is negative; give 0 (no limit) or a number of pixels")
        set_max_pixels(value)
    return value


max_pixels_option: Decorator = click.option(
    "--max-pixels", type=int, default=None, metavar="N", callback=_max_pixels, expose_value=False,
    help="Refuse photos of more pixels (a guard against decompression bombs; 0: no limit)  "
         "[default: $GMSR_MAX_PIXELS, else 89478485 as Pillow].")
overwrite_option: Decorator = click.option(
    "--overwrite", is_flag=True, help="Replace existing outputs (otherwise they are kept and it is an error).")
quiet_option: Decorator = click.option(
    "-q", "--quiet", is_flag=True, help="No progress bars.")


def _in_default_options(kind: str, names: tuple[str, ...]) -> Decorator:
    """Run the command inside gmsr_cli.io.registry.default_options(kind={...}) built from (and
    without) its parameters `names`: the API functions the command calls open readers and
    writers with them."""
    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from gmsr_cli.io.registry import default_options

            chosen = {name: kwargs.pop(name) for name in names}
            with default_options(**{kind: chosen}):
                return func(*args, **kwargs)
        return wrapper
    return decorate


def _keep_bits(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and not 1 <= value <= 23:
        raise click.BadParameter(f"{value}: give 1 to 23 mantissa bits (float32 has 23)")
    return value


def compose(*decorators: Decorator) -> Decorator:
    """One decorator applying several, in the order listed (as they would read stacked)."""
    def apply(func: Callable) -> Callable:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func
    return apply


model_options = compose(weights_option, device_option, backend_option)
# Format options of the cube writers (gmsr_cli.io.registry.FORMATS lists which format has which).
writer_options = compose(
    click.option("--compression", type=click.Choice(["gzip", "lzf", "none", "deflate", "zstd", "lzw"]),
                 default=None,
                 help="HDF5: gzip (default, any reader), lzf or none; TIFF: none (default), deflate, zstd or "
                      "lzw (lossless, floating-point predictor)."),
    click.option("--keep-bits", "keep_bits", type=int, default=None, callback=_keep_bits, metavar="N",
                 help="HDF5: round values to N mantissa bits for a smaller file; relative error at most "
                      "2^-(N+1) (12: 1.2e-4)  [default: exact float32]."),
    click.option("--mat-version", "mat_version", type=click.Choice(["auto", "5", "7.3"]), default=None,
                 help="MAT files: v5, or v7.3 (HDF5)  [default: auto, v7.3 only above 2 GB]."),
    _in_default_options("write", ("compression", "keep_bits", "mat_version")),
)
# Which variables of an HDF5 or MAT file hold the cube and the wavelengths.
variable_options = compose(
    click.option("--var", "variable", default=None, metavar="NAME",
                 help="HDF5/MAT: the variable holding the cube  [default: cube/rad/data, or the only 3-D one]."),
    click.option("--wavelength-var", "wavelength_variable", default=None, metavar="NAME",
                 help="HDF5/MAT: the variable holding the wavelengths  [default: bands/wavelengths/wl, or "
                      "the only vector of band-count increasing values]."),
    _in_default_options("read", ("variable", "wavelength_variable")),
)
tiling_options = compose(tile_option, overlap_option, batch_tiles_option, tta_option, max_pixels_option)


def parse_pair(text: str, what: str) -> tuple[float, float]:
    """"LO,HI" -> (lo, hi) floats, or click.BadParameter naming ``what``."""
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise click.BadParameter(f"{text!r}: give two numbers as LO,HI (e.g. 1,99) for {what}") from None
