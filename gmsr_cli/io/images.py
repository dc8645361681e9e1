"""Reading RGB photos (PNG, JPEG, TIFF, BMP, WebP; 8 and 16 bit) into float arrays, and writing 8-bit RGB previews."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gmsr_cli.errors import FormatError, InputImageError
from gmsr_cli.io import _png
from gmsr_cli.io.atomic import atomic_output
from gmsr_cli.io.limits import check_pixels

READABLE = "PNG, JPEG, TIFF, BMP, WebP"
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}
EXIF_ORIENTATION = 0x0112
GREY_MODES = {"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
NEEDS_COLOUR = (
    "spectral reconstruction needs the three colour channels of an RGB photo; "
    "use the original colour image (a greyscale copy cannot be turned back into colour)"
)


@dataclass
class RgbImage:
    """A decoded photo: `data` float32 (H, W, 3) in [0, 1] (sRGB-encoded values as stored, EXIF
    orientation applied), `bit_depth` 8 or 16 (precision of the file), `path`, and `warnings`
    about conversions made on the way (alpha dropped, palette/CMYK converted)."""

    data: np.ndarray
    bit_depth: int
    path: Path
    warnings: list[str] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.data.shape[0])

    @property
    def width(self) -> int:
        return int(self.data.shape[1])


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels (H, W, ...) upright according to an EXIF orientation value 1-8, as
    PIL.ImageOps.exif_transpose does."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(int(orientation or 1))
    return np.ascontiguousarray(op(pixels)) if op else pixels


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputImageError(f"{path}: file not found")
    if path.is_dir():
        raise InputImageError(f"{path}: is a folder, not an image file")


def _magic(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(8)


def _pil_orientation(im: Any) -> int:
    try:
        return int(im.getexif().get(EXIF_ORIENTATION, 1) or 1)
    except Exception:  # a damaged EXIF block should not stop the photo being read
        return 1


def _drop_alpha(pixels: np.ndarray, warnings: list[str]) -> np.ndarray:
    if pixels.shape[2] > 3:
        warnings.append("alpha channel dropped (transparent pixels keep their stored colour)")
        return pixels[:, :, :3]
    return pixels


def _read_with_pil(path: Path, warnings: list[str]) -> np.ndarray:
    """(H, W, 3) uint8, orientation applied."""
    from PIL import Image, UnidentifiedImageError

    # Ours is the one limit (check_pixels below): Pillow's own would refuse or warn at other sizes.
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as im:
            check_pixels(path, im.size[1], im.size[0])  # from the header, before any pixel
            im.load()
            # After load: Pillow turns TIFFs upright itself and then drops their orientation tag.
            orientation = _pil_orientation(im)
            mode = im.mode
            if mode in GREY_MODES:
                raise InputImageError(f"{path}: is a greyscale image (mode {mode}); {NEEDS_COLOUR}")
            if mode in ("RGBA", "RGBa"):
                pixels = _drop_alpha(np.asarray(im.convert("RGBA")), warnings)
            elif mode in ("P", "PA"):
                has_alpha = mode == "PA" or "transparency" in im.info
                warnings.append("palette image converted to RGB")
                pixels = _drop_alpha(np.asarray(im.convert("RGBA" if has_alpha else "RGB")), warnings)
            elif mode == "CMYK":
                warnings.append(
                    "CMYK image converted to RGB without a colour profile; colours are approximate"
                )
                pixels = np.asarray(im.convert("RGB"))
            elif mode == "RGB":
                pixels = np.asarray(im)
            else:  # RGBX, YCbCr, LAB, HSV ...
                if mode != "RGBX":
                    warnings.append(f"{mode} image converted to RGB")
                pixels = np.asarray(im.convert("RGB"))
    except InputImageError:
        raise
    except UnidentifiedImageError:
        raise InputImageError(f"{path}: not an image file, or not one of {READABLE}") from None
    except Image.DecompressionBombError as exc:
        raise InputImageError(f"{path}: {exc}") from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        raise InputImageError(f"{path}: cannot decode the image; it is truncated or corrupt ({exc})") from None
    return apply_orientation(pixels, orientation)


def _png_orientation(path: Path) -> int:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return _pil_orientation(im)
    except Exception:
        return 1


def _read_png16(path: Path, header: _png.PngHeader, warnings: list[str]) -> np.ndarray | None:
    """(H, W, 3) uint16 for a 16-bit colour PNG; None when Pillow should read it instead."""
    if header.colour_type in (0, 4):
        raise InputImageError(f"{path}: is a 16-bit greyscale PNG; {NEEDS_COLOUR}")
    if header.interlace:
        warnings.append("interlaced 16-bit PNG read at 8-bit precision (Pillow reduces it)")
        return None
    try:
        pixels, notes = _png.decode(path)
    except _png.PngError as exc:
        raise InputImageError(f"{path}: cannot decode the PNG; it is truncated or corrupt ({exc})") from None
    warnings.extend(notes)
    pixels = _drop_alpha(pixels, warnings)
    return apply_orientation(pixels, _png_orientation(path))


def _read_tiff16(path: Path, warnings: list[str]) -> np.ndarray | None:
    """(H, W, 3) uint16 for a 16-bit TIFF (Pillow reduces 16-bit RGB to 8 bits); None when the
    TIFF is not 16-bit and Pillow should read it."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            if page.bitspersample != 16:
                return None
            check_pixels(path, int(page.imagelength), int(page.imagewidth))
            photometric = int(page.photometric)
            samples = int(page.samplesperpixel)
            orientation_tag = page.tags.get(274)
            orientation = int(orientation_tag.value) if orientation_tag is not None else 1
            if np.dtype(page.dtype) != np.uint16:
                raise InputImageError(
                    f"{path}: TIFF samples are {page.dtype}; export the photo as 8- or 16-bit unsigned RGB"
                )
            if photometric in (0, 1) and samples <= 2:
                raise InputImageError(f"{path}: is a 16-bit greyscale TIFF; {NEEDS_COLOUR}")
            if photometric not in (2, 5):
                raise InputImageError(
                    f"{path}: TIFF has {samples} channels (photometric {photometric}), not an RGB photo"
                )
            pixels = page.asarray()
            if int(page.planarconfig) == 2:  # separate planes: (S, H, W)
                pixels = np.moveaxis(pixels, 0, -1)
    except InputImageError:
        raise
    except (tifffile.TiffFileError, OSError, ValueError, IndexError, KeyError, struct.error) as exc:
        hint = " (pip install imagecodecs to read this compression)" if "imagecodecs" in str(exc) else ""
        raise InputImageError(
            f"{path}: cannot decode the TIFF; it is truncated, corrupt or unsupported ({exc}){hint}"
        ) from None
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if photometric == 5:
        if pixels.shape[2] < 4:
            raise InputImageError(f"{path}: separated (CMYK) TIFF with {pixels.shape[2]} inks is not supported")
        warnings.append("CMYK image converted to RGB without a colour profile; colours are approximate")
        cmyk = pixels[:, :, :4].astype(np.float64) / 65535.0
        rgb = (1.0 - cmyk[:, :, :3]) * (1.0 - cmyk[:, :, 3:4])
        pixels = np.round(rgb * 65535.0).astype(np.uint16)
    else:
        pixels = _drop_alpha(pixels, warnings)
    return apply_orientation(pixels, orientation)


def read_rgb(path: str | Path) -> RgbImage:
    """Read a photo as float32 (H, W, 3) in [0, 1] (8-bit values / 255, 16-bit / 65535).

    PNG, JPEG, TIFF, BMP, WebP, 8- or 16-bit (16-bit PNG and TIFF keep full precision). The
    EXIF orientation is applied; alpha is dropped and palette/CMYK converted, each with a
    warning in `.warnings`. Greyscale photos and missing, corrupt, truncated or non-image files
    raise InputImageError naming the file.
    """
    path = Path(path)
    _check_file(path)
    warnings: list[str] = []
    magic = _magic(path)
    pixels: np.ndarray | None = None
    if magic.startswith(_png.SIGNATURE):
        header = _png.read_header(path)
        if header is not None:
            check_pixels(path, header.height, header.width)
        if header is not None and header.bit_depth == 16:
            pixels = _read_png16(path, header, warnings)
    elif magic[:4] in TIFF_MAGIC:
        pixels = _read_tiff16(path, warnings)
    if pixels is None:
        pixels = _read_with_pil(path, warnings)
    if pixels.dtype == np.uint16:
        data, depth = pixels.astype(np.float32) / np.float32(65535.0), 16
    else:
        data, depth = pixels.astype(np.float32) / np.float32(255.0), 8
    return RgbImage(data=np.ascontiguousarray(data), bit_depth=depth, path=path, warnings=warnings)


def image_size(path: str | Path) -> tuple[int, int]:
    """(H, W) of a photo as read_rgb will return it (EXIF orientation applied), from the file
    header only. Raises InputImageError for missing or unreadable files."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    _check_file(path)
    if _magic(path)[:4] in TIFF_MAGIC:
        # From the TIFF tags: Pillow reports TIFF sizes already turned by the orientation tag,
        # other formats not, so TIFFs are measured without it.
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages.first
                height, width = int(page.imagelength), int(page.imagewidth)
                tag = page.tags.get(274)
                orientation = int(tag.value) if tag is not None else 1
        except (tifffile.TiffFileError, OSError, ValueError, IndexError, struct.error) as exc:
            raise InputImageError(f"{path}: cannot read the TIFF header ({exc})") from None
    else:
        Image.MAX_IMAGE_PIXELS = None  # the caller applies our limit (check_pixels) to the size
        try:
            with Image.open(path) as im:
                width, height = im.size
                # PNG's getexif() decodes the whole image when no eXIf chunk came before the data.
                has_exif = im.format != "PNG" or "exif" in im.info
                orientation = _pil_orientation(im) if has_exif else 1
        except UnidentifiedImageError:
            raise InputImageError(f"{path}: not an image file, or not one of {READABLE}") from None
        except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
            raise InputImageError(f"{path}: cannot read the image header ({exc})") from None
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def write_rgb(path: str | Path, image: Any, *, overwrite: bool = False, quality: int = 95) -> Path:
    """Write an 8-bit image atomically: `image` uint8 (H, W, 3) RGB or (H, W) grey, to .png,
    .jpg/.jpeg (quality 1-95) or .tif/.tiff. Raises OutputExistsError if `path` exists and
    `overwrite` is False, FormatError for other extensions."""
    from PIL import Image

    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise FormatError(
            f"{path}: cannot write images with extension {path.suffix or '(none)'!r}; "
            f"use one of {', '.join(WRITE_FORMATS)}"
        )
    pixels = np.asarray(image)
    if pixels.dtype != np.uint8 or not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ValueError(f"write_rgb needs uint8 (H, W, 3) or (H, W), got {pixels.dtype} {pixels.shape}")
    # 4:4:4 chroma: previews of narrow bands are all about colour.
    options: dict[str, Any] = {"quality": int(quality), "subsampling": 0} if fmt == "JPEG" else {}
    if fmt == "TIFF":
        options["compression"] = "tiff_adobe_deflate"
    with atomic_output([path], overwrite=overwrite) as files:
        Image.fromarray(np.ascontiguousarray(pixels)).save(files.path, format=fmt, **options)
    return path
