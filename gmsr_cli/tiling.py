"""Tiled inference: the tile plan, the blending window, and a forward pass that streams row blocks."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .defaults import DEFAULT_OVERLAP_PX, DEFAULT_TILE_PX  # noqa: F401  (re-exported)
from .errors import DeviceError, GmsrError
from .model.matmul import TORCH_PRODUCTS_MIN_PIXELS, prefer_torch_products
from .scan.registry import device_type

# A side up to this many times --tile goes through in one pass (one pass is the quality reference,
# and a 512 x 512 photo costs 2.25x fewer network pixels than 3 x 3 tiles of 256); see docs/tiling.md.
SINGLE_PASS_FACTOR = 2
# Longer sides take the fewest tiles of at most this many times --tile at the requested overlap,
# all of one size between --tile and this (the band plan): a 4000 x 3000 photo in 9 x 7 tiles of
# 473 x 456 px, 1.13x its pixels, instead of 18 x 14 tiles of 256 px, 1.38x. The network's cost per
# pixel does not grow with the tile (in one process on a quiet 2-core machine: 3.55-3.61 us a pixel
# at both sizes), and larger tiles are closer to the one-pass cube (docs/tiling.md).
MAX_TILE_FACTOR = 2
# Tiles per forward pass when not given. On the CPU a batch is no faster than its tiles one by one
# and each 256 px tile costs about 350 MB, so 1; on a GPU batches keep the device busy.
DEFAULT_BATCH_TILES = {"cpu": 1, "cuda": 8}
N_BANDS = 31

RowsCallback = Callable[[int, np.ndarray], None]
ProgressCallback = Callable[[int, int], None]

# The flips of the self-ensemble (--tta), as axes of a (B, H, W, c) batch: none, horizontal,
# vertical, both; each is its own inverse.
_TTA_FLIPS: tuple[tuple[int, ...], ...] = ((), (2,), (1,), (1, 2))


@dataclass(frozen=True)
class Tile:
    """A tile's box in image pixels, [y0, y1) x [x0, x1), and the widths (px) of its blending ramps
    on each side: the overlap with the neighbouring tile there, 0 at the image border."""

    y0: int
    y1: int
    x0: int
    x1: int
    ramp_top: int = 0
    ramp_bottom: int = 0
    ramp_left: int = 0
    ramp_right: int = 0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0


def check_tile_options(tile_px: int, overlap_px: int, batch_tiles: int = 1) -> None:
    """Raise GmsrError naming the option when tile/overlap/batch values cannot work together."""
    if tile_px < 0:
        raise GmsrError(f"--tile {tile_px}: must be 0 (whole image) or a positive number of pixels")
    if 0 < tile_px < 8:
        raise GmsrError(f"--tile {tile_px}: tiles below 8 px give the network no context; use 64 or more")
    if overlap_px < 0:
        raise GmsrError(f"--overlap {overlap_px}: must be 0 or a positive number of pixels")
    if tile_px and overlap_px > tile_px // 2:
        raise GmsrError(f"--overlap {overlap_px}: must be at most half the tile ({tile_px // 2} px for "
                        f"--tile {tile_px})")
    if batch_tiles < 1:
        raise GmsrError(f"--batch-tiles {batch_tiles}: must be 1 or more")


def _axis_spans(length: int, tile_px: int, overlap_px: int, max_tile_px: int,
                single_pass_px: int) -> list[tuple[int, int]]:
    """[start, end) spans covering 0..length, all of one size between tile_px and max_tile_px, with
    consecutive spans overlapping by at least overlap_px; the whole axis when it is at most
    single_pass_px. The count is the least that covers the axis with spans of at most max_tile_px, and
    the size the least that covers it with that count: the overlap stays close to overlap_px
    instead of growing to fill the axis. The starts are spread evenly so that the last span ends at
    the border instead of being clipped: every tile has the same shape, so a batch needs no padding
    (padding would change the network's per-tile normalisation)."""
    if tile_px <= 0 or length <= max(tile_px, max_tile_px, single_pass_px):
        return [(0, length)]
    count = math.ceil((length - overlap_px) / (max_tile_px - overlap_px))  # >= 2: length > max_tile_px
    size = max(tile_px, math.ceil((length + (count - 1) * overlap_px) / count))
    starts = [round(i * (length - size) / (count - 1)) for i in range(count)]
    return [(s, s + size) for s in starts]


def max_tile_for(tile_px: int) -> int:
    """The largest tile side (px) the default plan uses for ``--tile tile_px`` on a side longer than
    one pass takes: MAX_TILE_FACTOR times it."""
    return MAX_TILE_FACTOR * tile_px


def plan_tiles(height: int, width: int, tile_px: int, overlap_px: int,
               max_tile_px: int | None = None) -> list[list[Tile]]:
    """The tiles of an image, as tile rows top to bottom, each row left to right.

    Along each axis the side is covered by one tile when it is at most SINGLE_PASS_FACTOR x tile_px
    (with ``max_tile_px`` given: at most ``max_tile_px``), else by the fewest tiles of at most
    ``max_tile_px`` (default max_tile_for(tile_px))
    that overlap by at least ``overlap_px``, all of one size between ``tile_px`` and
    ``max_tile_px`` (the least that covers the side with that count). ``tile_px`` 0 gives one
    tile: the whole image; ``max_tile_px`` = ``tile_px`` gives tiles of exactly ``tile_px``. Every
    tile has the same shape and carries its ramp widths (the actual overlap with each neighbour).
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height} x {width}")
    check_tile_options(tile_px, overlap_px)
    if max_tile_px is None:
        max_tile_px, single_pass_px = max_tile_for(tile_px), SINGLE_PASS_FACTOR * tile_px
    else:
        single_pass_px = max_tile_px
    if tile_px and max_tile_px < tile_px:
        raise ValueError(f"max_tile_px {max_tile_px} is below tile_px {tile_px}")
    ys = _axis_spans(height, tile_px, overlap_px, max_tile_px, single_pass_px)
    xs = _axis_spans(width, tile_px, overlap_px, max_tile_px, single_pass_px)

    def ramps(spans: list[tuple[int, int]], i: int) -> tuple[int, int]:
        before = spans[i - 1][1] - spans[i][0] if i > 0 else 0
        after = spans[i][1] - spans[i + 1][0] if i + 1 < len(spans) else 0
        return max(before, 0), max(after, 0)

    rows = []
    for i, (y0, y1) in enumerate(ys):
        top, bottom = ramps(ys, i)
        row = []
        for j, (x0, x1) in enumerate(xs):
            left, right = ramps(xs, j)
            row.append(Tile(y0, y1, x0, x1, top, bottom, left, right))
        rows.append(row)
    return rows


def blend_ramp(length: int, ramp_start: int, ramp_end: int) -> np.ndarray:
    """(length,) float32 weights: a raised-cosine rise over the first ``ramp_start`` pixels, a fall
    over the last ``ramp_end`` pixels, 1 elsewhere. Every weight is > 0, and where two neighbouring
    tiles overlap by exactly the ramp width their weights sum to 1."""
    w = np.ones(length, dtype=np.float64)
    if ramp_start > 0:
        t = (np.arange(ramp_start) + 0.5) / ramp_start
        w[:ramp_start] *= 0.5 - 0.5 * np.cos(np.pi * t)
    if ramp_end > 0:
        t = (np.arange(ramp_end) + 0.5) / ramp_end
        w[length - ramp_end:] *= (0.5 + 0.5 * np.cos(np.pi * t))
    return w.astype(np.float32)


def blend_window(tile: Tile) -> np.ndarray:
    """(h, w) float32 blending weights of ``tile``: the outer product of its two ramps; 1 at the
    image border (no ramp there), so a single whole-image tile has weight 1 everywhere."""
    wy = blend_ramp(tile.height, tile.ramp_top, tile.ramp_bottom)
    wx = blend_ramp(tile.width, tile.ramp_left, tile.ramp_right)
    return np.outer(wy, wx)


def _ramped_spans(length: int, ramp_start: int, ramp_end: int) -> list[tuple[int, int]]:
    """The [start, end) spans of an axis where blend_ramp is not 1 (the two ramps, merged when
    they meet)."""
    start, end = min(ramp_start, length), max(length - ramp_end, 0)
    if start >= end:
        return [(0, length)] if length and (ramp_start or ramp_end) else []
    return [span for span in ((0, start), (end, length)) if span[1] > span[0]]


def weight_in_place(out: np.ndarray, tile: Tile) -> None:
    """out (h, w, bands) *= blend_window(tile)[:, :, None], touching only the ramps: the window is
    an outer product, so the rows are scaled by one ramp and the columns by the other. An interior
    tile's window is 1 on most of it, so this skips a multiplication of the whole tile and its
    temporary (6.9 M values a tile at 4000 x 3000)."""
    wy = blend_ramp(tile.height, tile.ramp_top, tile.ramp_bottom)
    wx = blend_ramp(tile.width, tile.ramp_left, tile.ramp_right)
    for a, b in _ramped_spans(tile.height, tile.ramp_top, tile.ramp_bottom):
        out[a:b] *= wy[a:b, None, None]
    for a, b in _ramped_spans(tile.width, tile.ramp_left, tile.ramp_right):
        out[:, a:b] *= wx[None, a:b, None]


def default_batch_tiles(device) -> int:
    """Tiles per forward pass for ``device`` (a torch.device or a name) when --batch-tiles is not given."""
    return DEFAULT_BATCH_TILES.get(device_type(device), 1)


def _to_unit_float(pixels: np.ndarray) -> np.ndarray:
    """Image pixels (h, w, 3) of any supported dtype -> float32 in [0, 1]."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / np.float32(255)
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / np.float32(65535)
    return pixels.astype(np.float32, copy=False)


def _is_engine(model) -> bool:
    from .model.cpu_engine import CpuEngine

    return isinstance(model, CpuEngine)


def _forward_batch(model, batch: np.ndarray, device, tta: bool) -> np.ndarray:
    """(B, h, w, 3) float32 -> (B, h, w, 31) float32 through the model, a CpuEngine (numpy) or a
    torch GMSRNet on ``device`` (there the flips and their mean stay on the device), the mean over
    the flips with tta."""
    h, w = batch.shape[1:3]
    small = h < 2 or w < 2
    if small:  # the network needs 2 px per side; repeat the pixel and crop it off again
        batch = np.pad(batch, ((0, 0), (0, max(0, 2 - h)), (0, max(0, 2 - w)), (0, 0)), mode="edge")
    ops = _EngineOps(model) if _is_engine(model) else _TorchOps(model, device)
    flips = _TTA_FLIPS if tta else ((),)
    with ops:
        x = ops.put(batch)
        out = None
        for axes in flips:
            y = ops.flip(ops.run(ops.flip(x, axes)), axes)
            out = y if out is None else out + y
            del y
        if len(flips) > 1:
            out = out / len(flips)
        out = ops.get(out)
    return np.ascontiguousarray(out[:, :h, :w]) if small else out


class _EngineOps:
    """The batch as numpy arrays (B, H, W, c) through a CpuEngine."""

    def __init__(self, engine) -> None:
        self.run = lambda x: engine(np.ascontiguousarray(x))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    put = get = staticmethod(lambda a: a)
    flip = staticmethod(lambda a, axes: np.flip(a, axes) if axes else a)


class _TorchOps:
    """The batch as a torch tensor (B, c, H, W) on ``device`` through a GMSRNet, in inference mode."""

    def __init__(self, model, device) -> None:
        import torch

        self.torch, self.run, self.device = torch, model, device
        self._mode = torch.inference_mode()

    def __enter__(self):
        self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._mode.__exit__(*exc)

    def put(self, a: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))).to(self.device)

    def get(self, t) -> np.ndarray:
        return t.permute(0, 2, 3, 1).float().cpu().numpy()  # (B, h, w, 31)

    @staticmethod
    def flip(t, axes):  # axes of (B, H, W, c) -> dims of (B, c, H, W)
        return t.flip([a + 1 for a in axes]) if axes else t


def _is_cuda_oom(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")  # no torch loaded: no CUDA memory to run out of
    return torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)


def _oom_error(device, tile_px: int, batch_tiles: int) -> DeviceError:
    if tile_px == 0:
        advice = "use tiles (--tile 256)"
    elif batch_tiles > 1:
        advice = f"lower --batch-tiles (now {batch_tiles}) or --tile (now {tile_px})"
    else:
        advice = f"lower --tile (now {tile_px})"
    return DeviceError(f"out of memory on {device} during reconstruction; {advice}, or use --device cpu")


def tiled_forward(model, image: np.ndarray, *, tile_px: int = DEFAULT_TILE_PX,
                  overlap_px: int = DEFAULT_OVERLAP_PX, batch_tiles: int | None = None,
                  device=None, tta: bool = False,
                  on_rows: RowsCallback, progress: ProgressCallback | None = None,
                  max_tile_px: int | None = None) -> None:
    """Reconstruct ``image`` tile by tile and hand finished rows to ``on_rows`` top to bottom.

    image: (H, W, 3) RGB, float32 in [0, 1] (uint8 and uint16 are scaled per tile, which keeps the
    input at 1-2 bytes per value). model: a CpuEngine, or a torch GMSR-Net in eval mode on ``device``
    (default: its parameters' device; a CpuEngine runs on the CPU). Tiles of one tile row go
    through the network ``batch_tiles`` at a time (None: default_batch_tiles(device)); the tiles
    are plan_tiles(H, W, tile_px, overlap_px, max_tile_px), between tile_px and 2 x tile_px on a
    side; overlapping outputs are blended with ``blend_window``. on_rows(y0, block) receives
    (h, W, 31) float32 reflectance blocks, each row once, in order, as soon as no later tile
    touches them; a block is a view into a reused buffer, valid only during the call (copy it to
    keep it); the tiler does not read it again, so on_rows may change it in place (the exact
    colour correction does). Memory is about one tile row of the cube (tile height x W x 31
    float32), never the whole cube, except when one tile is the whole image. progress(done, total)
    counts tiles.
    tta averages the outputs of the four flips (none, horizontal, vertical, both).
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got shape {image.shape}")
    if device is None:
        device = "cpu" if _is_engine(model) else next(model.parameters()).device
    if batch_tiles is None:
        batch_tiles = default_batch_tiles(device)
    check_tile_options(tile_px, overlap_px, batch_tiles)
    height, width = image.shape[:2]
    if _is_engine(model) and height * width >= TORCH_PRODUCTS_MIN_PIXELS:
        prefer_torch_products()  # faster products; they repay torch's import from about 2 MP on
    rows = plan_tiles(height, width, tile_px, overlap_px, max_tile_px)
    total = sum(len(r) for r in rows)
    done = 0
    # Weighted sums and weight sums over the rows of the current tile row, [y0, y0 + tile height):
    # every tile row has the same height, and the rows it shares with the next one are carried over.
    tile_h = rows[0][0].height
    acc = np.zeros((tile_h, width, N_BANDS), dtype=np.float32)
    weight = np.zeros((tile_h, width), dtype=np.float32)
    for i, row in enumerate(rows):
        y0 = row[0].y0
        for b0 in range(0, len(row), batch_tiles):
            group = row[b0:b0 + batch_tiles]
            batch = np.stack([_to_unit_float(image[t.y0:t.y1, t.x0:t.x1]) for t in group])
            try:
                out = _forward_batch(model, batch, device, tta)
            except MemoryError:
                raise _oom_error(device, tile_px, batch_tiles) from None
            except Exception as exc:
                if not _is_cuda_oom(exc):
                    raise
                sys.modules["torch"].cuda.empty_cache()
                raise _oom_error(device, tile_px, batch_tiles) from None
            del batch
            for t, tile_out in zip(group, out):
                weight_in_place(tile_out, t)
                acc[:, t.x0:t.x1] += tile_out
                weight[:, t.x0:t.x1] += blend_window(t)
            del out
            done += len(group)
            if progress is not None:
                progress(done, total)
        # Rows above the next tile row's top are final; the rest move up for the next tile row.
        next_y0 = rows[i + 1][0].y0 if i + 1 < len(rows) else height
        n_final = next_y0 - y0
        block = acc[:n_final]
        block /= weight[:n_final, :, None]
        on_rows(y0, block)
        carried = tile_h - n_final
        if carried > 0:
            acc[:carried] = acc[n_final:].copy()
            weight[:carried] = weight[n_final:].copy()
        acc[carried:] = 0
        weight[carried:] = 0


def reconstruct_array(model, image: np.ndarray, *, tile_px: int = DEFAULT_TILE_PX,
                      overlap_px: int = DEFAULT_OVERLAP_PX, batch_tiles: int | None = None,
                      device=None, tta: bool = False,
                      progress: ProgressCallback | None = None, max_tile_px: int | None = None) -> np.ndarray:
    """The whole (H, W, 31) float32 cube of ``image`` in memory (tiled_forward's rows collected);
    for small images, notebooks, tests and evaluation."""
    height, width = image.shape[:2]
    cube = np.empty((height, width, N_BANDS), dtype=np.float32)

    def keep(y0: int, block: np.ndarray) -> None:
        cube[y0:y0 + block.shape[0]] = block

    tiled_forward(model, image, tile_px=tile_px, overlap_px=overlap_px, batch_tiles=batch_tiles,
                  device=device, tta=tta, on_rows=keep, progress=progress, max_tile_px=max_tile_px)
    return cube
