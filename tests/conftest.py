"""Shared pytest fixtures: where the read-only shared data lives."""

import os
from pathlib import Path

import pytest
import torch

# Without a GPU, Triton kernels run on CPU tensors in Triton's interpreter, which Triton reads when a
# kernel is defined: set here, before any test imports one (on a CUDA machine they are compiled).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ../shared folder beside the checkout; skips the test when it is absent."""
    if not (SHARED_DIR / "spec").is_dir() or not (SHARED_DIR / "data").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DIR} (tests need ../shared beside the repo)")
    return SHARED_DIR
