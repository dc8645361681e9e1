"""The pixel limit of every photo decoder: a guard against decompression bombs, checked from the header.

A few MB of PNG or a sparse TIFF can claim 20000 x 20000 pixels and take many GB once decoded.
Every reader checks the size stated in the file's header against one limit before it allocates
a pixel: Pillow's default (89,478,485 pixels, about 9500 x 9500), changed with --max-pixels or
the GMSR_MAX_PIXELS environment variable (0: no limit).
"""

from __future__ import annotations

import os
from pathlib import Path

from gmsr_cli.errors import GmsrError, InputImageError

# Pillow's PIL.Image.MAX_IMAGE_PIXELS: 1024 * 1024 * 1024 // 4 // 3, a 24-bit image of 1 GB.
DEFAULT_MAX_PIXELS = 89_478_485
ENV_VAR = "GMSR_MAX_PIXELS"

_override: int | None = None


def set_max_pixels(limit: int | None) -> None:
    """Set the limit for this process (None: back to GMSR_MAX_PIXELS or the default; 0: none)."""
    global _override
    if limit is not None and limit < 0:
        raise GmsrError(f"--max-pixels {limit}: give 0 (no limit) or a positive number of pixels")
    _override = limit


def max_pixels() -> int:
    """The pixel limit in force: set_max_pixels, else GMSR_MAX_PIXELS, else Pillow's default. 0: none."""
    if _override is not None:
        return _override
    text = os.environ.get(ENV_VAR, "").strip().replace("_", "")
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        raise GmsrError(f"{ENV_VAR}={os.environ[ENV_VAR]!r}: give a whole number of pixels (0: no limit)") from None
    if value < 0:
        raise GmsrError(f"{ENV_VAR}={value}: give 0 (no limit) or a positive number of pixels")
    return value


def check_pixels(path: str | Path, height: int, width: int) -> None:
    """Raise InputImageError if a photo of height x width pixels is above the limit."""
    limit = max_pixels()
    pixels = int(height) * int(width)
    if limit and pixels > limit:
        raise InputImageError(
            f"{path}: {width} x {height} pixels ({pixels / 1e6:.1f} megapixels) is above the limit of "
            f"{limit / 1e6:.1f} megapixels, a guard against decompression bombs; if the photo is "
            f"genuine, raise it with --max-pixels N or {ENV_VAR}=N (0: no limit)"
        )
