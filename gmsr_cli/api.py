"""The Python API behind every command: its stable public face.

Each job lives in a module of its own (model loading: ``model/loading.py``; reconstruction:
``reconstruct.py``; batches: ``batch.py``; pictures of cubes: ``pictures.py``; describing files:
``describe.py``); this module re-exports their public names, so ``from gmsr_cli.api import ...``
keeps working whatever moves behind it.
"""

from __future__ import annotations

from .batch import BatchItem, BatchResult, batch_plan, parse_shard, run_batch
from .describe import WEIGHTS_EXTENSIONS, describe_file, describe_system, describe_weights
from .io.registry import DEFAULT_FORMAT, PHOTO_EXTENSIONS
from .model.loading import LoadedModel, load_model
from .model.weights import DEFAULT_WEIGHTS, WeightsInfo
from .pictures import (CMAP_NAMES, DEFAULT_STRETCH, PICTURE_EXTENSIONS, colormap, default_preview_path, preview_file,
                       preview_image, render_file, resolve_band)
from .reconstruct import (ReconstructResult, check_outputs, output_paths, provenance_attrs, reconstruct_file,
                          reconstruct_image)

IMAGE_EXTENSIONS = PHOTO_EXTENSIONS  # the name this table had before it moved to the io registry

__all__ = [
    "BatchItem", "BatchResult", "CMAP_NAMES", "DEFAULT_FORMAT", "DEFAULT_STRETCH", "DEFAULT_WEIGHTS", "IMAGE_EXTENSIONS",
    "LoadedModel", "PHOTO_EXTENSIONS", "PICTURE_EXTENSIONS", "ReconstructResult", "WEIGHTS_EXTENSIONS", "WeightsInfo",
    "batch_plan", "check_outputs", "colormap", "default_preview_path", "describe_file", "describe_system",
    "describe_weights",
    "load_model", "output_paths", "parse_shard", "preview_file", "preview_image", "provenance_attrs",
    "reconstruct_file", "reconstruct_image", "render_file", "resolve_band", "run_batch",
]
