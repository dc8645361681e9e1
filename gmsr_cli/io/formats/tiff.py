"""Multi-band TIFF cubes (.tif/.tiff): one uncompressed pixel-interleaved (H, W, B) page, written and read with tifffile."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from gmsr_cli.errors import CubeError
from gmsr_cli.io.cube import AxesView, Cube, MappedArray
from gmsr_cli.io.formats._base import RawRowsWriter, clean_attrs, default_integer_scale, wavelengths_to_nm

GDAL_METADATA_TAG = 42112
# Classic TIFF offsets are 32-bit; leave room for the header and tags.
BIGTIFF_ABOVE_BYTES = 2**32 - 2**25
STRIP_BYTES = 2**20


def output_paths(path: Path) -> list[Path]:
    return [Path(path)]


def gdal_metadata_xml(wavelengths_nm: np.ndarray, attrs: dict[str, Any]) -> str:
    """The GDAL_METADATA tag: per-band description ("400 nm") and `wavelength` items, which
    GDAL/QGIS show as band names and band metadata, plus the provenance attributes."""
    items = [f"<Item name={quoteattr(str(k))}>{escape(str(v))}</Item>" for k, v in attrs.items()]
    for i, w in enumerate(wavelengths_nm):
        items.append(f'<Item name="DESCRIPTION" sample="{i}" role="description">{w:g} nm</Item>')
        items.append(f'<Item name="wavelength" sample="{i}">{w:g}</Item>')
        items.append(f'<Item name="wavelength_units" sample="{i}">nm</Item>')
    return "<GDALMetadata>\n" + "\n".join(items) + "\n</GDALMetadata>\n"


class TiffWriter(RawRowsWriter):
    """tifffile lays out the tags and an empty contiguous data region; rows are then written
    into that region in order (no compression, so the file can be mapped lazily on reading)."""

    def __init__(self, path: Path, height: int, width: int, wavelengths_nm: Any, dtype: str,
                 attrs: dict[str, Any]):
        import tifffile

        from gmsr_cli import __version__

        super().__init__(height, width, wavelengths_nm, dtype)
        self.dtype = self.dtype.newbyteorder("<")
        attrs = clean_attrs(attrs)
        row_bytes = self.width * self.bands * self.dtype.itemsize
        total = row_bytes * self.height
        metadata = {
            "wavelengths_nm": [float(w) for w in self.wavelengths_nm],
            "wavelength_units": "nm",
            "values": "reflectance in [0, 1]",
            "attrs": attrs,
        }
        with tifffile.TiffWriter(path, bigtiff=total > BIGTIFF_ABOVE_BYTES, byteorder="<") as tw:
            offset, nbytes = tw.write(
                None, shape=(self.height, self.width, self.bands), dtype=self.dtype,
                photometric="minisblack", planarconfig="contig",
                rowsperstrip=max(1, STRIP_BYTES // row_bytes),
                metadata=metadata, software=f"gmsr-cli {__version__}",
                extratags=[(GDAL_METADATA_TAG, "s", 0, gdal_metadata_xml(self.wavelengths_nm, attrs), True)],
                returnoffset=True,
            )
        if nbytes != total:
            raise RuntimeError(f"tifffile laid out {nbytes} data bytes, expected {total}")
        self.fh = open(path, "r+b")
        self.fh.seek(offset)  # tifffile laid out the strips contiguously from here: rows append


def open_writer(paths: list[Path], *, height: int, width: int, wavelengths_nm: Any,
                dtype: str = "float32", attrs: dict[str, Any] | None = None,
                scratch: Callable[[str], Path] | None = None) -> TiffWriter:
    """Writer for a TIFF cube: one page (H, W, B) float32/float16, MINISBLACK with B samples per
    pixel, contiguous; wavelengths and attrs in the ImageDescription JSON (tifffile "shaped"
    metadata) and in the GDAL_METADATA tag; BigTIFF above ~4 GB."""
    return TiffWriter(paths[0], height, width, wavelengths_nm, dtype, attrs or {})


def _gdal_wavelengths(xml: str) -> tuple[list[float] | None, str | None, dict[str, str]]:
    root = ET.fromstring(xml)
    per_band: dict[int, float] = {}
    units = None
    attrs: dict[str, str] = {}
    for item in root.iter("Item"):
        name = (item.get("name") or "").lower()
        sample = item.get("sample")
        if sample is None:
            attrs[item.get("name") or ""] = item.text or ""
        elif name == "wavelength":
            per_band[int(sample)] = float(item.text or "nan")
        elif name == "wavelength_units":
            units = item.text
    wl = [per_band[i] for i in sorted(per_band)] if per_band else None
    return wl, units, attrs


def read(path: Path) -> Cube:
    """Open a TIFF cube: (H, W, B) pixel-interleaved or band-first pages. Uncompressed
    contiguous data is mapped lazily. Wavelengths come from our ImageDescription JSON or from
    GDAL_METADATA `wavelength` items; without them CubeError."""
    import tifffile

    path = Path(path)
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, axes = tuple(series.shape), series.axes
            dtype = np.dtype(series.dtype).newbyteorder(tif.byteorder)
            offset = series.dataoffset
            meta = (tif.shaped_metadata or ({},))[0] or {}
            gdal_tag = tif.pages.first.tags.get(GDAL_METADATA_TAG)
            gdal_xml = gdal_tag.value if gdal_tag is not None else None
            data: Any = None
            if len(shape) == 3 and offset is None:
                data = series.asarray()
    except CubeError:
        raise
    except (tifffile.TiffFileError, OSError, ValueError, IndexError, KeyError, struct.error) as exc:
        raise CubeError(f"{path}: not a readable TIFF file ({exc})") from None
    if len(shape) != 3:
        raise CubeError(f"{path}: TIFF holds a {len(shape)}-D image {shape}, not a (H, W, bands) cube")
    wl_values, units = meta.get("wavelengths_nm"), "nm"
    attrs: dict[str, Any] = dict(meta.get("attrs") or {})
    if wl_values is None and gdal_xml:
        try:
            wl_values, units, gdal_attrs = _gdal_wavelengths(gdal_xml)
        except (ET.ParseError, ValueError):
            wl_values = None
        else:
            attrs.update(gdal_attrs)
    if wl_values is None:
        raise CubeError(
            f"{path}: TIFF has no wavelengths (neither gmsr-cli's ImageDescription JSON nor "
            "GDAL_METADATA 'wavelength' items); write the cube as HDF5 or ENVI with wavelengths"
        )
    wl = wavelengths_to_nm(wl_values, units, path)
    if data is None:
        end = offset + int(np.prod(shape)) * dtype.itemsize
        size = path.stat().st_size
        if size < end:
            raise CubeError(f"{path}: TIFF is truncated ({size} bytes, image data ends at {end})")
        data = MappedArray(path, dtype, offset, shape)
    n = wl.size
    if axes.endswith("S") or shape[2] == n:
        pass
    elif shape[0] == n:
        data = AxesView(data, (1, 2, 0))
    if tuple(data.shape)[2] != n:
        raise CubeError(f"{path}: TIFF image {shape} ({axes}) does not match {n} wavelengths")
    scale = default_integer_scale(data.dtype, attrs) if np.dtype(data.dtype).kind in "iu" else None
    return Cube(data=data, wavelengths_nm=wl, attrs=attrs, scale=scale, path=path)
