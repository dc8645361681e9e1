"""ENVI cubes: a raw band-interleaved-by-pixel .img file plus a text .hdr header (written and read with spectral)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gmsr_cli.errors import CubeError, FormatError
from gmsr_cli.io.codecs import VALUES_LABEL
from gmsr_cli.io.cube import AxesView, Cube, MappedArray
from gmsr_cli.io.formats._base import CubeWriter, clean_attrs, default_integer_scale, wavelengths_to_nm

DATA_SUFFIXES = (".img", ".dat", ".raw", ".bin", ".bip", ".bil", ".bsq", ".hyspex", ".sli")
# True-colour bands for viewers, nm.
TRUE_COLOUR_NM = (640.0, 550.0, 460.0)
# Header fields that describe the layout rather than provenance: not copied into Cube.attrs,
# and attribute names that would clash with them are prefixed on writing.
STRUCTURAL_KEYS = frozenset({
    "samples", "lines", "bands", "header offset", "file type", "data type", "interleave",
    "byte order", "wavelength", "wavelength units", "band names", "default bands", "fwhm", "bbl",
    "reflectance scale factor", "map info", "projection info", "coordinate system string",
    "data ignore value", "data gain values", "data offset values", "description", "sensor type",
    "x start", "y start", "spectra names", "classes", "class names", "class lookup",
})


def output_paths(path: Path) -> list[Path]:
    """[data file, header]: `x.hdr` or `x.img` both mean the pair x.img + x.hdr; any other name
    is the data file and its header is the name with .hdr. The header goes last: it marks a
    complete output."""
    path = Path(path)
    if path.suffix.lower() == ".hdr":
        return [path.with_suffix(".img"), path]
    return [path, path.with_suffix(".hdr")]


def _header_text(value: Any) -> str:
    # Braces delimit ENVI values and a newline ends a key: keep values on one line, brace-free.
    return str(value).replace("{", "(").replace("}", ")").replace("\r", " ").replace("\n", " ").strip()


def _header_key(key: str) -> str:
    key = _header_text(key).lower().replace("=", "_")
    return f"attr {key}" if key in STRUCTURAL_KEYS else key


def true_colour_bands(wavelengths_nm: np.ndarray) -> list[int]:
    """ENVI `default bands`: 1-based indices of the bands nearest 640, 550, 460 nm."""
    return [int(np.argmin(np.abs(wavelengths_nm - nm))) + 1 for nm in TRUE_COLOUR_NM]


def band_widths(wavelengths_nm: np.ndarray) -> np.ndarray:
    """ENVI `fwhm`, nm: each band's spacing to its neighbours (10 nm on the 400-700 nm grid);
    10 nm for a single band."""
    wl = np.asarray(wavelengths_nm, dtype=np.float64)
    if wl.size < 2:
        return np.full(wl.size, 10.0)
    return np.abs(np.gradient(wl))


class EnviWriter(CubeWriter):
    """Appends rows to a little-endian float32 BIP .img (BIP is our (H, W, B) row order, so
    each block is one sequential write) and writes the header when complete."""

    def __init__(self, img_path: Path, hdr_path: Path, height: int, width: int,
                 wavelengths_nm: Any, dtype: str, attrs: dict[str, Any]):
        super().__init__(height, width, wavelengths_nm, dtype)
        if self.dtype != np.float32:
            raise FormatError(
                f"ENVI has no {self.dtype.name} data type; write float32 (--dtype float32) or "
                "use HDF5/TIFF/NPY for float16"
            )
        self.hdr_path = Path(hdr_path)
        self.attrs = clean_attrs(attrs)
        self.fh = open(img_path, "wb")

    def _write_rows(self, y0: int, block: np.ndarray) -> None:
        self.fh.write(block.astype("<f4", copy=False).tobytes())

    def _finish(self) -> None:
        from spectral.io import envi

        self.fh.close()
        wl = self.wavelengths_nm
        lines = [
            f"Hyperspectral cube, {self.bands} bands {wl.min():g}-{wl.max():g} nm, written by gmsr-cli",
            f"values: {VALUES_LABEL}",
        ]
        lines += [f"{k}: {_header_text(v)}" for k, v in self.attrs.items()]
        header: dict[str, Any] = {
            "description": "\n".join(lines),
            "samples": self.width,
            "lines": self.height,
            "bands": self.bands,
            "header offset": 0,
            "file type": "ENVI Standard",
            "data type": 4,  # float32
            "interleave": "bip",
            "byte order": 0,  # little endian
            "reflectance scale factor": 1.0,
            "wavelength units": "nm",
            "wavelength": [f"{w:g}" for w in wl],
            "fwhm": [f"{f:g}" for f in band_widths(wl)],
            # Viewers (GDAL: "Band 1 (400 nm)") show the wavelength beside the name already.
            "band names": [f"Band {i + 1}" for i in range(self.bands)],
            "default bands": true_colour_bands(wl),
            "sensor type": "Unknown",
        }
        for key, value in self.attrs.items():
            header[_header_key(key)] = _header_text(value)
        envi.write_envi_header(str(self.hdr_path), header)

    def _release(self) -> None:
        self.fh.close()


def open_writer(paths: list[Path], *, height: int, width: int, wavelengths_nm: Any,
                dtype: str = "float32", attrs: dict[str, Any] | None = None,
                scratch: Callable[[str], Path] | None = None) -> EnviWriter:
    """Writer for an ENVI pair: paths = [data .img, header .hdr]. float32 only: ENVI has no
    float16 type, so float16 raises FormatError rather than silently doubling the size."""
    return EnviWriter(paths[0], paths[1], height, width, wavelengths_nm, dtype, attrs or {})


def _find_pair(path: Path) -> tuple[Path, Path]:
    """(header, data file) for a path naming either of them."""
    if path.suffix.lower() == ".hdr":
        hdr = path
        if not hdr.is_file():
            raise CubeError(f"{path}: file not found")
        base = path.with_suffix("")
        candidates = [base.with_name(base.name + s) for s in DATA_SUFFIXES]
        candidates += [base.with_name(base.name + s.upper()) for s in DATA_SUFFIXES] + [base]
        for img in candidates:
            if img.is_file():
                return hdr, img
        raise CubeError(
            f"{path}: no ENVI data file beside the header (looked for {base.name}.img/.dat/.raw/...)"
        )
    if not path.is_file():
        raise CubeError(f"{path}: file not found")
    for hdr in (path.with_suffix(".hdr"), path.with_suffix(".HDR"), path.with_name(path.name + ".hdr")):
        if hdr.is_file():
            return hdr, path
    raise CubeError(f"{path}: no ENVI header ({path.with_suffix('.hdr').name}) beside the data file")


_NAME_NM = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?)\s*(nm|nanometers?|um|µm|micrometers?|microns?)?\s*",
                      re.IGNORECASE)


def _band_name_wavelengths(meta: dict[str, Any], bands: int) -> tuple[list[float], str | None] | None:
    """Wavelengths from band names that are all wavelengths ("400 nm", "0.4 um", "400"), as GDAL
    writes them from a GeoTIFF's band descriptions."""
    names = meta.get("band names")
    if not isinstance(names, list) or len(names) != bands:
        return None
    matches = [_NAME_NM.fullmatch(str(n)) for n in names]
    if not all(matches):
        return None
    units = {(m.group(2) or "").lower() for m in matches}  # type: ignore[union-attr]
    if len(units) != 1:
        return None
    unit = units.pop()
    name = None if not unit else "nm" if unit.startswith("n") else "um"
    return [float(m.group(1)) for m in matches], name  # type: ignore[union-attr]


def _aux_xml_wavelengths(img: Path, bands: int) -> tuple[list[float], str | None] | None:
    """Per-band `wavelength` items (with `wavelength_units`) of the GDAL .aux.xml beside the
    data file, where GDAL keeps what the ENVI header it wrote has no field for."""
    aux = img.with_name(img.name + ".aux.xml")
    if not aux.is_file():
        return None
    try:
        root = ET.parse(aux).getroot()
    except (ET.ParseError, OSError):
        return None
    values: dict[int, float] = {}
    units = None
    for band in root.iter("PAMRasterBand"):
        for item in band.iter("MDI"):
            key = (item.get("key") or "").lower()
            try:
                if key in ("wavelength", "central_wavelength") or re.fullmatch(r"dim_wavelengths?_value", key):
                    values[int(band.get("band", "0"))] = float(item.text or "nan")
                elif key == "wavelength_units" or re.fullmatch(r"dim_wavelengths?_unit", key):
                    units = item.text
            except ValueError:
                return None
    if sorted(values) != list(range(1, bands + 1)):
        return None
    return [values[i] for i in range(1, bands + 1)], units


def read(path: Path) -> Cube:
    """Open an ENVI cube (path to its .hdr or its data file) lazily as (H, W, B), any interleave.

    Wavelengths come from the header's `wavelength` field (units from `wavelength units`), else
    from a GDAL .aux.xml beside the data file, else from band names that are wavelengths
    ("400 nm", as GDAL writes them); without any of these CubeError. Integer data is scaled by 1 / `reflectance scale
    factor` when given.
    """
    from spectral.io import envi

    path = Path(path)
    hdr, img = _find_pair(path)
    try:
        spy = envi.open(str(hdr), str(img))
    except (envi.FileNotAnEnviHeader, envi.EnviHeaderParsingError, envi.EnviException,
            KeyError, ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
        detail = str(exc) or type(exc).__name__
        raise CubeError(f"{hdr}: not a readable ENVI header ({detail})") from None
    meta = spy.metadata
    itemsize = np.dtype(spy.dtype).itemsize
    expected = spy.offset + spy.nrows * spy.ncols * spy.nbands * itemsize
    actual = img.stat().st_size
    if actual < expected:
        raise CubeError(
            f"{img}: data file is truncated ({actual} bytes, the header describes {expected})"
        )
    if "wavelength" in meta:
        wl = wavelengths_to_nm(meta["wavelength"], meta.get("wavelength units"), hdr)
    else:
        found = _aux_xml_wavelengths(img, spy.nbands) or _band_name_wavelengths(meta, spy.nbands)
        if found is None:
            raise CubeError(
                f"{hdr}: ENVI header has no 'wavelength' field (nor wavelengths in its band names or "
                f"a GDAL {img.name}.aux.xml), so the bands cannot be placed; add "
                "'wavelength = {...}' and 'wavelength units = nm' to the header"
            )
        wl = wavelengths_to_nm(found[0], found[1], hdr)
    if wl.size != spy.nbands:
        raise CubeError(f"{hdr}: {wl.size} wavelengths for {spy.nbands} bands")
    interleave = str(meta.get("interleave", "bsq")).strip().lower()
    rows, cols, bands = spy.nrows, spy.ncols, spy.nbands
    # stored shape and, for each view axis (H, W, B), the stored axis it comes from
    stored, perm = {
        "bip": ((rows, cols, bands), None),
        "bil": ((rows, bands, cols), (0, 2, 1)),
        "bsq": ((bands, rows, cols), (1, 2, 0)),
    }.get(interleave, (None, None))
    if stored is None:
        raise CubeError(f"{hdr}: unknown interleave {interleave!r} (expected bip, bil or bsq)")
    data: Any = MappedArray(img, spy.dtype, spy.offset, stored)
    if perm is not None:
        data = AxesView(data, perm)
    attrs: dict[str, Any] = {}
    for key, value in meta.items():
        if key not in STRUCTURAL_KEYS or key == "description":
            attrs[key[5:] if key.startswith("attr ") else key] = (
                value if isinstance(value, str) else ", ".join(map(str, value))
            )
    scale = None
    factor = float(meta.get("reflectance scale factor", 1.0) or 1.0)
    if factor not in (0.0, 1.0):
        scale = 1.0 / factor
    elif data.dtype.kind in "iu":
        scale = default_integer_scale(data.dtype, attrs)
    return Cube(data=data, wavelengths_nm=wl, attrs=attrs, scale=scale, path=path)
