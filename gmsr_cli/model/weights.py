"""Weights: find them by name or path, load the three kinds safely, check them, save with a card.

Kinds of file accepted:
  (a) checkpoints of the published training code: a torch pickle {"epoch", "iter",
      "state_dict", "optimizer"} saved from nn.DataParallel (keys start with "module.");
  (b) plain state dicts (torch pickle, or safetensors without a card);
  (c) the project's own format: safetensors whose metadata carries a model card.
Pickles are opened with ``weights_only=True``: code inside a pickle is never executed.
Importing this module does not import torch: safetensors files of float32, float16 or float64 are
read as numpy arrays (``read_weights_numpy``, what ``gmsr`` on a CPU runs from); pickles, bfloat16
files and loading into a module import it when they are used.
"""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..defaults import DEFAULT_WEIGHTS  # noqa: F401  (re-exported: the name's home for the library)
from ..errors import WeightsError

CARD_KEY = "gmsr_card"
_SAFETENSORS_MAGIC_MAX_HEADER = 100 * 1024 * 1024
_WRAPPER_KEYS = ("state_dict", "model", "params", "net")


@dataclass
class WeightsInfo:
    """Where weights came from and what their card says."""

    path: Path
    name: str
    sha256: str
    kind: str  # "gmsr-cli", "published-checkpoint", "state-dict"
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def camera(self) -> str:
        """The camera model the weights were trained for (``srgb`` when a card does not say)."""
        return str(self.card.get("camera", "srgb"))


def shipped_weights_dir() -> Path:
    """The folder of the weights that ship with the package.

    An installed package has them in ``gmsr_cli/weights`` (pyproject maps the repository's
    ``weights/`` there); a source checkout has them in ``weights/`` beside the package. (Not
    ``importlib.resources.files("gmsr_cli.weights")``: that folder has no ``__init__.py``, and for
    such a namespace package Python 3.11 returns a MultiplexedPath whose str() is no path.)
    """
    package = Path(__file__).resolve().parents[1]
    installed = package / "weights"
    return installed if installed.is_dir() else package.parent / "weights"


def shipped_weight_names() -> list[str]:
    folder = shipped_weights_dir()
    return sorted(p.stem for p in folder.glob("*.safetensors")) if folder.is_dir() else []


def resolve_weights_path(name_or_path: str | Path) -> Path:
    """A shipped weights name (``gmsr-cave-srgb``) or a path to a file."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    shipped = shipped_weights_dir() / f"{text}.safetensors"
    if shipped.is_file():
        return shipped
    names = ", ".join(shipped_weight_names()) or "none installed"
    if path.suffix or "/" in text or "\\" in text:
        raise WeightsError(f"weights file not found: {text} (shipped names: {names})")
    raise WeightsError(f"unknown weights name {text!r}; shipped names: {names}; or give a path to a file")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    size = int.from_bytes(head[:8], "little")
    return 0 < size < _SAFETENSORS_MAGIC_MAX_HEADER and head[8:9] == b"{"


def _safetensors_dtypes(path: Path) -> set[str]:
    """The dtypes ("F32", "BF16", ...) named in a safetensors file's header (read, not loaded)."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        try:
            header = json.loads(f.read(size))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return set()  # the loader says what is wrong with it
    return {entry["dtype"] for key, entry in header.items() if key != "__metadata__" and isinstance(entry, dict)
            and "dtype" in entry}


# safetensors dtypes that numpy holds as they are; others (BF16, integers) go through torch.
_NUMPY_DTYPES = {"F32", "F16", "F64"}


def _read_safetensors(path: Path, framework: str = "pt") -> tuple[dict[str, Any], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework=framework, device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for every malformed file
        raise WeightsError(f"{path}: not a valid safetensors file ({exc}); the file may be truncated, "
                           "download or copy it again") from None
    return tensors, metadata


def _pickle_globals(path: Path) -> list[str]:
    """The classes and functions a torch pickle names (``module.name``), read without unpickling:
    from the zip checkpoint's data.pkl, or the whole file for a legacy pickle. [] if unreadable."""
    import pickletools

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                member = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                data = archive.read(member) if member else b""
        else:
            data = path.read_bytes()
        found, strings = [], []
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name == "GLOBAL":
                found.append(str(arg).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
        return found
    except Exception:  # a truncated or garbled stream: no verdict on its contents
        return []


# What state dicts of tensors are pickled with (torch's tensor rebuilders, storages, OrderedDict).
_SAFE_GLOBAL_PREFIXES = ("torch.", "collections.OrderedDict", "_codecs.encode", "builtins.set")


def _read_pickle(path: Path) -> Any:
    import pickle

    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except zipfile.BadZipFile:
        raise WeightsError(f"{path}: truncated or corrupt PyTorch checkpoint; copy it again") from None
    except pickle.UnpicklingError:
        # weights_only refuses a checkpoint either for the objects it names or for a broken stream.
        unsafe = [g for g in _pickle_globals(path) if not g.startswith(_SAFE_GLOBAL_PREFIXES)]
        if unsafe:
            raise WeightsError(f"{path}: the checkpoint holds Python objects other than tensors ({unsafe[0]}), "
                               "which are not loaded because unpickling them could run code; save only its "
                               "state_dict (or convert it to safetensors) and try again") from None
        raise WeightsError(f"{path}: cannot be read as weights (not a PyTorch checkpoint, or truncated); "
                           "expected .safetensors or a PyTorch checkpoint") from None
    except Exception as exc:  # torch.load raises many types (and other libraries' errors) for a file it cannot read
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsError(f"{path}: cannot be read as weights ({message}); expected .safetensors or a "
                           "PyTorch checkpoint") from None


def _is_array(value: Any) -> bool:
    """A numpy array or a torch tensor (torch is not imported to tell)."""
    if isinstance(value, np.ndarray):
        return True
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _unwrap(obj: Any, path: Path) -> tuple[dict[str, Any], str]:
    kind = "state-dict"
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                kind = "published-checkpoint"
                break
    if not isinstance(obj, dict) or not obj:
        raise WeightsError(f"{path}: holds no state dict (found {type(obj).__name__})")
    state = {}
    for key, value in obj.items():
        if not _is_array(value):
            raise WeightsError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")
        name = key[len("module."):] if key.startswith("module.") else key
        state[name] = value
    return state, kind


def _floating_and_finite(value: Any) -> tuple[bool, bool]:
    if isinstance(value, np.ndarray):
        floating = np.issubdtype(value.dtype, np.floating)
        return floating, bool(floating and np.isfinite(value).all())
    import torch

    floating = value.is_floating_point()
    return floating, bool(floating and torch.isfinite(value).all())


def check_state_dict(state: dict[str, Any], expected: dict[str, tuple[int, ...]], path: Path) -> None:
    """Raise WeightsError naming the first missing, unexpected or mis-shaped key. ``state``:
    numpy arrays or torch tensors; ``expected``: the shape of every key (``expected_shapes()``)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        raise WeightsError(f"{path}: missing key {missing[0]!r} ({len(missing)} missing in all; "
                           f"found {len(state)} keys, expected {len(expected)}): not GMSR-Net weights?")
    if unexpected:
        raise WeightsError(f"{path}: unexpected key {unexpected[0]!r} ({len(unexpected)} in all): "
                           "not GMSR-Net weights?")
    for key, shape in expected.items():
        if tuple(state[key].shape) != tuple(shape):
            raise WeightsError(f"{path}: key {key!r} has shape {tuple(state[key].shape)}, "
                               f"GMSR-Net expects {tuple(shape)}")
        floating, finite = _floating_and_finite(state[key])
        if not floating:
            raise WeightsError(f"{path}: key {key!r} has dtype {state[key].dtype}, expected floating point")
        if not finite:
            raise WeightsError(f"{path}: key {key!r} holds NaN or infinite values")


def _checked_path(name_or_path: str | Path) -> Path:
    path = resolve_weights_path(name_or_path)
    if path.stat().st_size == 0:
        raise WeightsError(f"{path}: the file is empty")
    return path


def _card_of(path: Path, metadata: dict[str, str]) -> tuple[dict[str, Any], str]:
    if CARD_KEY not in metadata:
        return {}, "state-dict"
    try:
        return json.loads(metadata[CARD_KEY]), "gmsr-cli"
    except json.JSONDecodeError:
        raise WeightsError(f"{path}: its model card (metadata {CARD_KEY!r}) is not valid JSON") from None


def _info(path: Path, card: dict[str, Any], kind: str) -> WeightsInfo:
    return WeightsInfo(path=path, name=card.get("name", path.stem), sha256=sha256_of(path), kind=kind, card=card)


def read_weights(name_or_path: str | Path) -> tuple[dict[str, Any], WeightsInfo]:
    """Load weights of any accepted kind as torch tensors (not yet checked against the network)."""
    path = _checked_path(name_or_path)
    if _is_safetensors(path):
        state, metadata = _read_safetensors(path)
        card, kind = _card_of(path, metadata)
        state, _ = _unwrap(state, path)
    else:
        card = {}
        state, kind = _unwrap(_read_pickle(path), path)
    return state, _info(path, card, kind)


def read_weights_numpy(name_or_path: str | Path) -> tuple[dict[str, np.ndarray], WeightsInfo] | None:
    """Weights as numpy arrays, checked against the network, without importing torch: for
    safetensors files of float32/float16/float64 (every shipped and saved file). None for the
    kinds that need torch to read (pickles, bfloat16): ``read_weights`` reads those."""
    path = _checked_path(name_or_path)
    if not _is_safetensors(path) or not _safetensors_dtypes(path) <= _NUMPY_DTYPES:
        return None
    state, metadata = _read_safetensors(path, framework="numpy")
    card, kind = _card_of(path, metadata)
    state, _ = _unwrap(state, path)
    check_state_dict(state, expected_shapes(), path)
    return state, _info(path, card, kind)


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every key of GMSR-Net's state dict and its shape, without building the network."""
    from .cpu_engine import WIDTHS

    shapes: dict[str, tuple[int, ...]] = {}  # in the order of GMSRNet.state_dict()
    for i, (c_in, c) in enumerate(zip((3,) + WIDTHS[:-1], WIDTHS), 1):
        shapes[f"output{i}.weight"] = (c, c_in, 1, 1)
    for i, c in enumerate(WIDTHS, 1):
        d, n, rank = 2 * c, 16, -(-c // 16)  # SS2D: expand 2, 16 states, dt rank ceil(c / 16)
        block = {"skip_scale": (c,), "skip_scale2": (c,), "ln_1.weight": (c,), "ln_1.bias": (c,),
                 "self_attention.x_proj_weight": (4, rank + 2 * n, d), "self_attention.dt_projs_weight": (4, d, rank),
                 "self_attention.dt_projs_bias": (4, d), "self_attention.A_logs": (4 * d, n),
                 "self_attention.Ds": (4 * d,), "self_attention.in_proj.weight": (2 * d, c),
                 "self_attention.conv2d.weight": (d, 1, 3, 3), "self_attention.conv2d.bias": (d,),
                 "self_attention.out_norm.weight": (d,), "self_attention.out_norm.bias": (d,),
                 "self_attention.out_proj.weight": (c, d)}
        shapes.update({f"VSS{i}.{key}": shape for key, shape in block.items()})
    shapes["spatial_attention.conv1.weight"] = (1, 2, 7, 7)
    for i, c in enumerate(WIDTHS, 1):
        shapes[f"spectral_attention{i}.fc.0.weight"] = (c, c, 1, 1)
        shapes[f"spectral_attention{i}.fc.2.weight"] = (c, c, 1, 1)
    for i, c in enumerate(WIDTHS, 1):
        shapes[f"conv{i}.0.weight"] = (c, 3 * c, 1, 1)
        shapes[f"conv{i}.0.bias"] = (c,)
    return shapes


def load_weights(model, name_or_path: str | Path) -> WeightsInfo:
    """Check and load weights into ``model`` (a GMSRNet; strictly: every key, every shape)."""
    state, info = read_weights(name_or_path)
    expected = model.state_dict()
    check_state_dict(state, {key: tuple(value.shape) for key, value in expected.items()}, info.path)
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
    return info


def save_weights(model, path: str | Path, card: dict[str, Any]) -> Path:
    """Write the model's parameters as safetensors with ``card`` (JSON-serialisable) in the metadata."""
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".partial")
    save_file(state, str(tmp), metadata={CARD_KEY: json.dumps(card, sort_keys=True), "format": "gmsr-cli"})
    tmp.replace(path)
    return path
