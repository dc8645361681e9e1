"""Multi-band TIFF cubes (.tif/.tiff): one pixel-interleaved (H, W, B) page, uncompressed or deflate/zstd/lzw, via tifffile."""

from __future__ import annotations

import json
import logging
import queue
import re
import struct
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from gmsr_cli.errors import CubeError, FormatError
from gmsr_cli.io.codecs import VALUES_LABEL, default_threads, deflate, worker_pool
from gmsr_cli.io.cube import AxesView, Cube, MappedArray
from gmsr_cli.io.formats._base import (CubeWriter, RawRowsWriter, RowBuffer, clean_attrs, default_integer_scale,
                                       wavelengths_to_nm)

GDAL_METADATA_TAG = 42112
# Classic TIFF offsets are 32-bit; leave room for the header and tags.
BIGTIFF_ABOVE_BYTES = 2**32 - 2**25
STRIP_BYTES = 2**20
# Compressed strips are smaller: each is held a few times over (rows, predicted, compressed)
# while it waits in the queue.
COMPRESSED_STRIP_BYTES = 2**18
# Compressions the writer offers (all lossless; GDAL, libtiff and tifffile + imagecodecs read
# them). Compressed strips use the floating-point predictor (3), as GDAL's PREDICTOR=3.
COMPRESSIONS = ("none", "deflate", "zstd", "lzw")
_TIFF_COMPRESSION = {"deflate": "adobe_deflate", "zstd": "zstd", "lzw": "lzw"}
DEFLATE_LEVEL = 1
ZSTD_LEVEL = 1


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


def description_json(wavelengths_nm: np.ndarray, attrs: dict[str, Any]) -> str:
    """Our ImageDescription: wavelengths, what the values are, provenance. No "shape": GDAL copies
    the description into files it derives (crops, band subsets), where a shape would be wrong."""
    return json.dumps({
        "wavelengths_nm": [float(w) for w in wavelengths_nm],
        "wavelength_units": "nm",
        "values": VALUES_LABEL,
        "attrs": attrs,
    })


def _page_args(writer: CubeWriter, attrs: dict[str, Any], rows_per_strip: int) -> dict[str, Any]:
    from gmsr_cli import __version__

    return dict(
        shape=(writer.height, writer.width, writer.bands), dtype=writer.dtype,
        photometric="minisblack", planarconfig="contig", rowsperstrip=rows_per_strip,
        description=description_json(writer.wavelengths_nm, attrs), metadata=None,
        software=f"gmsr-cli {__version__}",
        extratags=[(GDAL_METADATA_TAG, "s", 0, gdal_metadata_xml(writer.wavelengths_nm, attrs), True)],
    )


class TiffWriter(RawRowsWriter):
    """Uncompressed: tifffile lays out the tags and an empty contiguous data region; rows are
    then written into that region in order (so the file can be mapped lazily on reading)."""

    def __init__(self, path: Path, height: int, width: int, wavelengths_nm: Any, dtype: str,
                 attrs: dict[str, Any]):
        import tifffile

        super().__init__(height, width, wavelengths_nm, dtype)
        self.dtype = self.dtype.newbyteorder("<")
        attrs = clean_attrs(attrs)
        row_bytes = self.width * self.bands * self.dtype.itemsize
        total = row_bytes * self.height
        with tifffile.TiffWriter(path, bigtiff=total > BIGTIFF_ABOVE_BYTES, byteorder="<") as tw:
            offset, nbytes = tw.write(None, returnoffset=True,
                                      **_page_args(self, attrs, max(1, STRIP_BYTES // row_bytes)))
        if nbytes != total:
            raise RuntimeError(f"tifffile laid out {nbytes} data bytes, expected {total}")
        self.fh = open(path, "r+b")
        self.fh.seek(offset)  # tifffile laid out the strips contiguously from here: rows append


@contextmanager
def _quiet_tifffile() -> Iterator[None]:
    """tifffile logs what it skips in a damaged file; the CubeError we raise says it once."""
    log = logging.getLogger("tifffile")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


_END = object()


class _Aborted(Exception):
    pass


class CompressedTiffWriter(CubeWriter):
    """Compressed strips: each strip (about 256 KB of rows) is predicted and compressed by a pool
    of `threads` workers while the caller goes on; a writer thread hands the compressed strips,
    in order, to tifffile, which writes them and the tags. A worker's or tifffile's error is
    raised to the caller by the next write_rows or close. Memory: a few strips per thread."""

    def __init__(self, path: Path, height: int, width: int, wavelengths_nm: Any, dtype: str,
                 attrs: dict[str, Any], compression: str, threads: int | None):
        import tifffile

        super().__init__(height, width, wavelengths_nm, dtype)
        self.dtype = self.dtype.newbyteorder("<")
        self.compression = compression
        threads = default_threads() if threads is None else int(threads)
        if threads < 1:
            raise ValueError(f"threads must be 1 or more, got {threads}")
        row_bytes = self.width * self.bands * self.dtype.itemsize
        self.rows_per_strip = max(1, COMPRESSED_STRIP_BYTES // row_bytes)
        self.strips = RowBuffer(self.rows_per_strip, self.width, self.bands, self.dtype)
        self.pool = worker_pool(threads, "gmsr-tiff")
        self.queue: queue.Queue = queue.Queue(maxsize=threads + 2)
        self.error: BaseException | None = None
        total = row_bytes * self.height
        self.tiff = tifffile.TiffWriter(path, bigtiff=total > BIGTIFF_ABOVE_BYTES, byteorder="<")
        page = _page_args(self, clean_attrs(attrs), self.rows_per_strip)
        page.update(compression=_TIFF_COMPRESSION[compression], predictor=3)
        self.thread = threading.Thread(target=self._run, args=(page,), name="gmsr-tiff-writer", daemon=True)
        self.thread.start()

    def _encode(self, strip: np.ndarray) -> bytes:
        import imagecodecs

        predicted = imagecodecs.floatpred_encode(strip, axis=-2)
        if self.compression == "deflate":
            return deflate(predicted, DEFLATE_LEVEL)
        if self.compression == "zstd":
            return imagecodecs.zstd_encode(predicted, level=ZSTD_LEVEL)
        return imagecodecs.lzw_encode(predicted)

    def _strips(self) -> Iterator[bytes]:
        while True:
            item = self.queue.get()
            if item is _END:
                return
            if item is None:
                raise _Aborted()
            yield item.result()

    def _run(self, page: dict[str, Any]) -> None:
        try:
            self.tiff.write(self._strips(), **page)
        except BaseException as exc:  # handed to the caller's thread
            self.error = exc

    def _put(self, item: Any) -> None:
        while True:
            if self.error is not None:
                raise self.error
            if not self.thread.is_alive():
                raise RuntimeError("the TIFF writer thread stopped early")
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _submit_strip(self, strip: np.ndarray) -> None:
        self._put(self.pool.submit(self._encode, strip.copy()))  # the buffer is reused

    def _write_rows(self, y0: int, block: np.ndarray) -> None:
        for _, strip in self.strips.add(block):
            self._submit_strip(strip)

    def _finish(self) -> None:
        for _, strip in self.strips.rest():
            self._submit_strip(strip)
        self._put(_END)
        self.thread.join()
        if self.error is not None:
            raise self.error
        self.tiff.close()

    def _release(self) -> None:
        if self.thread.is_alive():
            while True:  # make room for the stop mark: only this thread puts
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, Future):
                    item.cancel()
            self.queue.put(None)
            self.thread.join()
        self.pool.shutdown(wait=True, cancel_futures=True)
        try:
            self.tiff.close()
        except Exception:  # closing a half-written file; the caller removes it
            pass


def open_writer(paths: list[Path], *, height: int, width: int, wavelengths_nm: Any,
                dtype: str = "float32", attrs: dict[str, Any] | None = None,
                scratch: Callable[[str], Path] | None = None, compression: str = "none",
                threads: int | None = None) -> CubeWriter:
    """Writer for a TIFF cube: one page (H, W, B) float32/float16, MINISBLACK with B samples per
    pixel, contiguous strips; wavelengths and attrs in the ImageDescription JSON and in the
    GDAL_METADATA tag; BigTIFF above ~4 GB. `compression`: none (default; read back lazily),
    deflate, zstd or lzw, all lossless with the floating-point predictor, compressed by
    `threads` workers (default: every CPU this process may use)."""
    if compression not in COMPRESSIONS:
        raise FormatError(f"TIFF compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
    if compression == "none":
        return TiffWriter(paths[0], height, width, wavelengths_nm, dtype, attrs or {})
    return CompressedTiffWriter(paths[0], height, width, wavelengths_nm, dtype, attrs or {}, compression, threads)


_WAVELENGTH_KEY = re.compile(r"wavelength|central_wavelength|dim_wavelengths?_value")
_UNITS_KEY = re.compile(r"wavelength_units|dim_wavelengths?_unit")


def _gdal_wavelengths(xml: str) -> tuple[list[float] | None, str | None, dict[str, str]]:
    """(per-band wavelengths or None, their units, dataset items) from GDAL_METADATA. Band items
    named `wavelength` (ours, GDAL's ENVI driver) or `DIM_wavelengths_VALUE` (what
    gdalmdimtranslate writes from our HDF5's dimension scale) count as wavelengths."""
    root = ET.fromstring(xml)
    per_band: dict[int, float] = {}
    units = None
    attrs: dict[str, str] = {}
    for item in root.iter("Item"):
        name = (item.get("name") or "").lower()
        sample = item.get("sample")
        if sample is None:
            attrs[item.get("name") or ""] = item.text or ""
        elif _WAVELENGTH_KEY.fullmatch(name):
            per_band[int(sample)] = float(item.text or "nan")
        elif _UNITS_KEY.fullmatch(name):
            units = item.text
    wl = [per_band[i] for i in sorted(per_band)] if per_band else None
    return wl, units, attrs


def _description_json(text: Any) -> dict[str, Any]:
    """Our ImageDescription JSON (also tifffile's "shaped" JSON of older gmsr files), or {}."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str) or not text.lstrip().startswith("{"):
        return {}
    try:
        meta = json.loads(text)
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def looks_like_cube(path: Path) -> bool:
    """Whether a TIFF is meant as a cube (more than 4 samples per pixel, or wavelengths in its
    tags) rather than a photo, judged from the first page's tags alone."""
    import tifffile

    try:
        with _quiet_tifffile(), tifffile.TiffFile(path, is_shaped=False) as tif:
            page = tif.pages.first
            tags = page.tags
            if int(getattr(page, "samplesperpixel", 1)) > 4 or len(tif.pages) > 4:
                return True
            if "wavelengths_nm" in _description_json(page.description):
                return True
            gdal = tags.get(GDAL_METADATA_TAG)
            return gdal is not None and "wavelength" in str(gdal.value).lower()
    except Exception:  # unreadable as TIFF: not recognisably a cube
        return False


def read(path: Path) -> Cube:
    """Open a TIFF cube: (H, W, B) pixel-interleaved or band-first pages, uncompressed or
    compressed (LZW, Deflate, ZSTD, predictors: decoded with imagecodecs). Uncompressed
    contiguous data is mapped lazily. Wavelengths come from GDAL_METADATA `wavelength` items or
    our ImageDescription JSON, whichever matches the number of bands; without them CubeError."""
    import tifffile

    path = Path(path)
    try:
        # is_shaped=False: a description copied by GDAL into a cropped file would not match.
        with _quiet_tifffile(), tifffile.TiffFile(path, is_shaped=False) as tif:
            series = tif.series[0]
            shape, axes = tuple(series.shape), series.axes
            dtype = np.dtype(series.dtype).newbyteorder(tif.byteorder)
            offset = series.dataoffset
            page = tif.pages.first
            meta = _description_json(page.description)
            gdal_tag = page.tags.get(GDAL_METADATA_TAG)
            gdal_xml = gdal_tag.value if gdal_tag is not None else None
            data: Any = None
            if len(shape) == 3 and offset is None:
                data = series.asarray()
    except CubeError:
        raise
    except ValueError as exc:
        if "imagecodecs" in str(exc):
            raise CubeError(f"{path}: TIFF compression needs the imagecodecs package ({exc}); "
                            "pip install imagecodecs") from None
        raise CubeError(f"{path}: not a readable TIFF file ({exc})") from None
    except (tifffile.TiffFileError, OSError, IndexError, KeyError, struct.error, RuntimeError,
            ImportError) as exc:
        raise CubeError(f"{path}: not a readable TIFF file ({type(exc).__name__}: {exc})") from None
    if len(shape) != 3:
        raise CubeError(f"{path}: TIFF holds a {len(shape)}-D image {shape}, not a (H, W, bands) cube")
    bands_candidates = {shape[2]} if axes.endswith("S") else {shape[0], shape[2]}
    attrs: dict[str, Any] = dict(meta.get("attrs") or {})
    choices: list[tuple[Any, str | None]] = []
    if gdal_xml:
        try:
            gdal_wl, gdal_units, gdal_attrs = _gdal_wavelengths(gdal_xml)
        except (ET.ParseError, ValueError):
            gdal_wl = None
        else:
            attrs.update({k: v for k, v in gdal_attrs.items() if k not in attrs})
            if gdal_wl is not None:
                choices.append((gdal_wl, gdal_units))
    if meta.get("wavelengths_nm") is not None:
        choices.append((meta["wavelengths_nm"], meta.get("wavelength_units", "nm")))
    if not choices:
        raise CubeError(
            f"{path}: TIFF has no wavelengths (neither gmsr-cli's ImageDescription JSON nor "
            "GDAL_METADATA 'wavelength' items); write the cube as HDF5 or ENVI with wavelengths"
        )
    wl_values, units = next((c for c in choices if len(c[0]) in bands_candidates), choices[0])
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
