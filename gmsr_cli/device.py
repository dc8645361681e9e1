"""Turning --device into a torch.device, with errors that say what to do."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

from .errors import BackendError


def torch_build_has_gpu() -> bool:
    """Whether the installed PyTorch is a build that can see a GPU (CUDA or ROCm), told from its
    ``torch/version.py`` without importing torch (about 1 s); True when that cannot be told."""
    if "torch" in sys.modules:
        return True  # loaded already: asking it costs nothing
    try:
        spec = importlib.util.find_spec("torch")
        text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text()
    except (ImportError, AttributeError, StopIteration, TypeError, OSError):
        return True
    builds = [re.search(rf"^{key}\s*(?::[^=]*)?=\s*(.+)$", text, re.MULTILINE) for key in ("cuda", "hip")]
    if any(found is None for found in builds):
        return True
    return any(found.group(1).strip() != "None" for found in builds)


def cpu_only(name: str = "auto") -> bool:
    """Whether ``--device name`` resolves to the CPU without asking torch: ``cpu``, or ``auto``
    with a PyTorch build that has no GPU support (the CPU wheels)."""
    name = str(name).strip().lower()
    return name == "cpu" or (name == "auto" and not torch_build_has_gpu())


def resolve_device(name="auto"):
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N`` -> torch.device."""
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise BackendError(f"--device {name}: this PyTorch sees no CUDA GPU "
                               f"(torch {torch.__version__}); use --device cpu or install a CUDA build of PyTorch")
        try:
            device = torch.device(name)
        except RuntimeError:
            raise BackendError(f"--device {name}: not a device name; use auto, cpu, cuda or cuda:N") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BackendError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here "
                               f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
        return device
    raise BackendError(f"--device {name}: not a device name; use auto, cpu, cuda or cuda:N")
