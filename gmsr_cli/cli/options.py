"""The options that several commands share, as reusable click decorators with validating callbacks."""

from __future__ import annotations

import re
from typing import Callable

import click

from gmsr_cli.io import FORMAT_NAMES
from gmsr_cli.model.weights import DEFAULT_WEIGHTS
from gmsr_cli.scan.registry import BACKEND_NAMES, backend_help
from gmsr_cli.tiling import DEFAULT_OVERLAP_PX, DEFAULT_TILE_PX

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
    help="Tile size in pixels; 0 runs the whole image in one pass (needs memory for the whole cube).")
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


def compose(*decorators: Decorator) -> Decorator:
    """One decorator applying several, in the order listed (as they would read stacked)."""
    def apply(func: Callable) -> Callable:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func
    return apply


model_options = compose(weights_option, device_option, backend_option)
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
