"""Describing files: what a cube, a photo or a weights file is (gmsr info)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CubeError, GmsrError, WeightsError
from .io.registry import PHOTO_EXTENSIONS
from .pictures import block_rows

PathLike = str | os.PathLike
WEIGHTS_EXTENSIONS = (".safetensors", ".pt", ".pth", ".ckpt", ".bin")


def describe_weights(name_or_path: PathLike) -> dict[str, Any]:
    """Weights (a shipped name or a file) as a dict: name, sha256, card, parameters, whether they fit GMSR-Net."""
    from .model.weights import check_state_dict, expected_shapes, read_weights

    state, info = read_weights(name_or_path)
    description: dict[str, Any] = {
        "kind": "weights",
        "path": str(info.path),
        "name": info.name,
        "sha256": info.sha256,
        "file_kind": info.kind,
        "tensors": len(state),
        "parameters": int(sum(t.numel() for t in state.values())),
        "camera": info.camera,
        "card": info.card,
    }
    try:
        check_state_dict(state, expected_shapes(), info.path)
        description["fits_gmsr_net"] = True
    except WeightsError as exc:
        description["fits_gmsr_net"] = False
        description["problem"] = str(exc)
    return description


def _describe_cube(path: Path) -> dict[str, Any]:
    from .io import format_for, read_cube

    fmt = format_for(path)
    with read_cube(path) as cube:
        lo, hi, total, count, non_finite = np.inf, -np.inf, 0.0, 0, 0
        for _, block in cube.iter_rows(block_rows(cube)):
            finite = np.isfinite(block)
            non_finite += int(block.size - np.count_nonzero(finite))
            values = block[finite] if not finite.all() else block
            if values.size:
                lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
                total += float(values.sum(dtype=np.float64))
                count += values.size
        wl = cube.wavelengths_nm
        return {
            "kind": "cube",
            "path": str(path),
            "format": fmt.name,
            "shape": list(cube.shape),
            "dtype": str(np.dtype(cube.data.dtype)),
            "scale": cube.scale,
            "bands": cube.bands,
            "wavelengths_nm": [float(w) for w in wl],
            "value_min": lo if count else None,
            "value_max": hi if count else None,
            "value_mean": total / count if count else None,
            "non_finite_values": non_finite,
            "attrs": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in cube.attrs.items()},
        }


def _describe_photo(path: Path) -> dict[str, Any]:
    from .io import image_size

    height, width = image_size(path)
    return {"kind": "photo", "path": str(path), "height": height, "width": width}


def describe_file(path: PathLike) -> dict[str, Any]:
    """What a file is, as a dict with "kind": "cube" (shape, dtype, wavelengths, value range,
    provenance attrs), "weights" (name, sha256, card, parameter count, whether it fits
    GMSR-Net) or "photo" (size). ``path`` may also be the name of shipped weights."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in WEIGHTS_EXTENSIONS or (not path.exists() and not suffix):
        return describe_weights(path)
    if not path.exists():
        raise GmsrError(f"{path}: file not found")
    if suffix in (".tif", ".tiff"):  # a TIFF is a cube or a photo: try the cube first
        try:
            return _describe_cube(path)
        except CubeError:
            from .io.formats.tiff import looks_like_cube

            if looks_like_cube(path):  # a broken cube stays a cube error, not a "photo"
                raise
            return _describe_photo(path)
    if suffix in PHOTO_EXTENSIONS:
        return _describe_photo(path)
    return _describe_cube(path)


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def describe_system() -> dict[str, Any]:
    """This machine as gmsr sees it: versions (torch, its CUDA, Triton, numba, mamba-ssm), the
    devices, and per device type which scan backends run, which ``auto`` picks, and why the others
    do not. For bug reports and for checking an install (``gmsr info --system``)."""
    import platform

    import torch

    from . import __version__
    from .scan.registry import BACKENDS, resolve_backend, triton_interpreter_on, unavailable_reason

    devices = [{"name": "cpu", "description": f"{platform.processor() or platform.machine()}, "
                                              f"{torch.get_num_threads()} threads"}]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            devices.append({"name": f"cuda:{i}", "description": f"{props.name}, compute capability "
                            f"{props.major}.{props.minor}, {props.total_memory / 2**30:.1f} GiB"})
    backends = {}
    for kind in ("cpu", "cuda"):
        rows = {}
        for row in BACKENDS:
            reason = unavailable_reason(row, kind)
            rows[row.name] = {"usable": reason is None, "why_not": reason}
        try:
            auto = resolve_backend("auto", kind)
        except GmsrError as exc:
            auto = None
            rows["auto_error"] = str(exc)
        if kind == "cuda" and not torch.cuda.is_available():
            note = "no CUDA device here: these are what would run with one"
        else:
            note = None
        backends[kind] = {"auto": auto, "backends": rows, "note": note}
    return {
        "kind": "system",
        "gmsr_cli": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "triton": _version("triton"),
        "triton_interpreter": triton_interpreter_on(),
        "numba": _version("numba"),
        "mamba_ssm": _version("mamba-ssm") or _version("mamba_ssm"),
        "devices": devices,
        "scan_backends": backends,
    }
