"""Loading GMSR-Net for inference: weights found and checked, the scan backend bound for the device, once."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .weights import DEFAULT_WEIGHTS, WeightsInfo

PathLike = str | os.PathLike


@dataclass
class LoadedModel:
    """GMSR-Net ready for inference: what runs it (``runner``), its weights' info, its device.

    On the CPU with the numba backend and weights numpy can read (every shipped and saved file),
    the runner is a CpuEngine built from the file's arrays, and torch is not imported;
    ``module`` then builds the torch GMSRNet from the same arrays the first time it is asked for.
    Elsewhere the runner is the torch module (eval mode, on ``device``)."""

    weights: WeightsInfo | None
    device: Any  # a torch.device, or "cpu" for the CPU engine
    backend: str
    engine: Any = None  # CpuEngine, when the runner is one
    _module: Any = field(default=None, repr=False)
    _state: Any = field(default=None, repr=False)  # the engine's numpy arrays, for ``module``

    @property
    def camera(self) -> str:
        """The camera model the weights expect photos from."""
        return self.weights.camera if self.weights is not None else "srgb"

    @property
    def runner(self) -> Any:
        """What the tiler runs: the CpuEngine, or the torch module."""
        return self.engine if self.engine is not None else self.module

    @property
    def module(self) -> Any:
        """The torch GMSRNet (eval mode, on ``device``); built on first use for the CPU engine."""
        if self._module is None:
            import torch

            from .gmsr import GMSRNet

            with torch.inference_mode(False):  # ordinary parameters, even when first asked inside one
                module = GMSRNet(backend=self.backend, device=torch.device("cpu"))
                module.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float32))
                                        for k, v in self._state.items()}, strict=True)
            self._module = module.eval()
        return self._module


def load_model(weights: PathLike | None = DEFAULT_WEIGHTS, device: str = "auto", backend: str = "auto") -> LoadedModel:
    """GMSR-Net with ``weights`` (a shipped name or a file; None: random initialisation, for tests)
    built on ``device`` (auto, cpu, cuda[:N]) with the scan ``backend`` (or auto) resolved and bound
    for that device, in eval mode. Raises WeightsError / BackendError with what to do.
    On the CPU with the numba backend it does not import torch (see LoadedModel)."""
    from ..device import cpu_only, resolve_device

    if weights is not None and cpu_only(str(device)) and backend in ("auto", "numba"):
        from ..scan import resolve_backend
        from .weights import read_weights_numpy

        if resolve_backend(backend, "cpu") == "numba":
            found = read_weights_numpy(weights)
            if found is not None:
                from .cpu_engine import CpuEngine

                state, info = found
                return LoadedModel(weights=info, device="cpu", backend="numba", engine=CpuEngine(state),
                                   _state=state)
    from .gmsr import GMSRNet
    from .weights import load_weights

    dev = resolve_device(device)
    module = GMSRNet(backend=backend, device=dev)
    info = load_weights(module, weights) if weights is not None else None
    return LoadedModel(weights=info, device=dev, backend=module.backend, _module=module.eval())
