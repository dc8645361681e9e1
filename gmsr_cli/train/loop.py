"""The training loop: patches in, validated checkpoints out, resumable after any interruption.

Files in the output folder:
  last.pt           resume checkpoint (model, optimiser, schedule, step, RNG, config); weights_only-safe
  best.safetensors  the best weights so far by mean validation MRAE, with a model card
  final.safetensors the weights at the end of the schedule (written when the last epoch is done), with a card
  log.jsonl         one JSON line per epoch: train loss, learning rate, per-scene and mean val metrics
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from .. import __version__, spectra
from ..errors import DataError
from ..model.gmsr import GMSRNet
from ..model.weights import load_weights, save_weights
from . import data as train_data
from .metrics import MetricAccumulator

CHECKPOINT = "last.pt"
BEST = "best.safetensors"
FINAL = "final.safetensors"
LOG = "log.jsonl"


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in checkpoints so a resume continues it."""

    camera: str = spectra.DEFAULT_CAMERA
    cameras: list[str] = field(default_factory=list)  # draw one per patch when given (camera-robust)
    train: list[str] = field(default_factory=list)  # cube files or crop packs; empty = CAVE train split
    val: list[str] = field(default_factory=list)  # whole cubes for validation; empty = CAVE val split
    epochs: int = 100
    samples_per_epoch: int = 2048
    patch_px: int = 128
    batch_size: int = 8
    lr: float = 4e-4
    lr_min: float = 1e-6
    warmup_steps: int = 50
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    relative_weight: float = 0.1  # weight of the relative (dark-pixel) term of the loss
    relative_eps: float = 0.01
    gain_range: tuple[float, float] = (0.5, 1.6)
    mix_prob: float = 0.0  # fraction of patches that blend two scenes' reflectances (data.PatchDataset)
    synthetic_prob: float = 0.0  # fraction of patches that are synthetic scenes of measured spectra (synthetic.py)
    relight_prob: float = 0.0  # fraction of samples relit by a measured illuminant and white balanced
    seed: int = 0
    init: str = ""  # weights to start from (fine-tuning), e.g. the srgb weights for a cie1964 model
    val_tile_px: int = 0  # 0: whole image, as `gmsr evaluate --tile 0`
    val_overlap_px: int = 32


def loss_fn(rec: torch.Tensor, gt: torch.Tensor, relative_weight: float, relative_eps: float) -> torch.Tensor:
    """L1 plus a relative error term that weighs dark pixels, since MRAE (our headline metric) is relative."""
    diff = (rec - gt).abs()
    return diff.mean() + relative_weight * (diff / (gt.abs() + relative_eps)).mean()


def _lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * progress))


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"


def validate(model: torch.nn.Module, pairs: Sequence[tuple[str, np.ndarray, np.ndarray]], device: torch.device,
             tile_px: int = 0, overlap_px: int = 32) -> dict:
    """Whole-image metrics on (name, rgb (H, W, 3), cube (H, W, 31)) pairs -> {'scenes': {...}, 'mean': {...}}."""
    model.eval()
    scenes = {}
    with torch.inference_mode():
        for name, rgb, cube in pairs:
            if tile_px:
                from ..tiling import reconstruct_array

                rec = reconstruct_array(model, rgb, tile_px=tile_px, overlap_px=overlap_px, device=device)
            else:  # the whole image in one pass, which is what tiling gives for a tile >= the image
                x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(device)
                rec = model(x)[0].permute(1, 2, 0).cpu().numpy()
            acc = MetricAccumulator()
            acc.update(rec, cube)
            scenes[name] = acc.result()
    mean = {k: float(np.mean([s[k] for s in scenes.values()])) for k in next(iter(scenes.values()))}
    return {"scenes": scenes, "mean": mean}


def _val_pairs(cfg: TrainConfig, data_dir: str | None):
    paths = [Path(p) for p in cfg.val] if cfg.val else train_data.scene_paths("val", data_dir)
    pairs = []
    for path in paths:
        rgb, cube = train_data.whole_scene_pair(path, cfg.camera)
        pairs.append((path.stem, rgb, cube))
    return pairs


def lineage(info) -> dict:
    """What a fine-tuned model's card records of the weights it started from (their own lineage too),
    so the card still says how it was made after that file is replaced."""
    keep = ("camera", "recipe", "epoch", "step", "training_seconds", "hardware", "started_from")
    return {"name": info.name, "file": info.path.name, "sha256": info.sha256,
            **{k: info.card[k] for k in keep if k in info.card}}


def lineage_seconds(started_from: dict | None) -> int:
    total = 0
    while started_from:
        total += int(started_from.get("training_seconds", 0))
        started_from = started_from.get("started_from")
    return total


def _save_checkpoint(path: Path, model, optimizer, state: dict) -> None:
    tmp = path.with_name(path.name + ".partial")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), **state}, tmp)
    tmp.replace(path)


def train(cfg: TrainConfig, out_dir: str | Path, *, device: torch.device | str = "cpu", backend: str = "auto",
          resume: bool = True, max_minutes: float | None = None, data_dir: str | None = None,
          on_step: Callable[[dict], None] | None = None, on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train GMSR-Net; returns the last epoch's log record. Resumes from out_dir/last.pt when present.

    ``max_minutes`` stops cleanly (checkpoint written) after that much wall time, so a long run
    can be spread over several sessions or machines.
    """
    from ..device import resolve_device

    device = resolve_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CHECKPOINT
    state = {"epoch": 0, "step": 0, "best_mrae": float("inf"), "seconds": 0.0, "hardware": [], "started_from": None}
    ckpt = None
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        saved = TrainConfig(**{**ckpt["config"], "gain_range": tuple(ckpt["config"]["gain_range"])})
        if saved.camera != cfg.camera:
            raise DataError(f"{ckpt_path} was trained for camera {saved.camera!r}, not {cfg.camera!r}; "
                            "use another --out folder or the same camera")
        # The schedule continues with the new epoch count; everything else comes from the checkpoint.
        cfg = TrainConfig(**{**asdict(saved), "epochs": cfg.epochs})
        state.update({k: ckpt.get(k, default) for k, default in state.items()})
    torch.manual_seed(cfg.seed + state["epoch"])
    model = GMSRNet(backend=backend, device=device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        del ckpt
    elif cfg.init:
        state["started_from"] = lineage(load_weights(model, cfg.init))
    sources = cfg.train or [str(p) for p in train_data.scene_paths("train", data_dir)]
    dataset_options = dict(camera=cfg.camera, cameras=cfg.cameras or None, gain_range=tuple(cfg.gain_range),
                           samples_per_epoch=cfg.samples_per_epoch, seed=cfg.seed, mix_prob=cfg.mix_prob)
    if cfg.synthetic_prob or cfg.relight_prob:
        from .synthetic import spectral_dataset

        dataset = spectral_dataset(sources, cfg.patch_px, cfg.synthetic_prob, cfg.relight_prob, **dataset_options)
    else:
        dataset = train_data.PatchDataset(sources, cfg.patch_px, **dataset_options)
    val_pairs = _val_pairs(cfg, data_dir)
    steps_per_epoch = math.ceil(cfg.samples_per_epoch / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    hardware = _hardware(device)
    if hardware not in state["hardware"]:
        state["hardware"].append(hardware)
    started = time.monotonic()
    record: dict = {}
    while state["epoch"] < cfg.epochs:
        epoch_start = time.monotonic()
        dataset.set_epoch(state["epoch"])
        loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=False, drop_last=False, num_workers=0)
        model.train()
        losses = []
        for rgb, cube in loader:
            lr = _lr_at(state["step"], total_steps, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            rgb, cube = rgb.to(device), cube.to(device)
            loss = loss_fn(model(rgb), cube, cfg.relative_weight, cfg.relative_eps)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            state["step"] += 1
            losses.append(loss.item())
            if on_step is not None:
                on_step({"epoch": state["epoch"], "step": state["step"], "loss": losses[-1], "lr": lr,
                         "steps_per_epoch": steps_per_epoch})
        val = validate(model, val_pairs, device, cfg.val_tile_px, cfg.val_overlap_px)
        state["epoch"] += 1
        state["seconds"] += time.monotonic() - epoch_start
        record = {"epoch": state["epoch"], "step": state["step"], "train_loss": float(np.mean(losses)),
                  "lr": lr, "val": val, "seconds": round(state["seconds"], 1), "hardware": hardware,
                  "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if val["mean"]["mrae"] < state["best_mrae"]:
            state["best_mrae"] = val["mean"]["mrae"]
            record["best"] = True
            save_weights(model, out / BEST, _card(out, cfg, state, val, "best validation MRAE"))
        with open(out / LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
        _save_checkpoint(ckpt_path, model, optimizer, {**state, "config": asdict(cfg)})
        if on_epoch is not None:
            on_epoch(record)
        if max_minutes is not None and (time.monotonic() - started) / 60 >= max_minutes:
            break
    if state["epoch"] >= cfg.epochs and (record or not (out / FINAL).exists()):
        # the schedule is complete: the final weights too (also for a run that finished before
        # final.safetensors existed, whose last log line holds the final validation)
        val = record.get("val") or _last_logged_val(out / LOG)
        if val is not None:
            save_weights(model, out / FINAL, _card(out, cfg, state, val, "final epoch of the schedule"))
    return record


def _last_logged_val(log_path: Path) -> dict | None:
    if not log_path.exists():
        return None
    lines = [line for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return json.loads(lines[-1]).get("val") if lines else None


def _card(out: Path, cfg: TrainConfig, state: dict, val: dict, selected: str) -> dict:
    """The model card of weights saved at the current state (val: that epoch's validation)."""
    return {
        "name": out.name, "camera": cfg.camera, "cameras": cfg.cameras,
        "training_data": "CAVE (Yasuma et al. 2010)" if not cfg.train else ", ".join(cfg.train),
        "train_scenes": list(train_data.TRAIN_SCENES) if not cfg.train else cfg.train,
        "val_scenes": list(val["scenes"]),
        "recipe": {k: v for k, v in asdict(cfg).items() if k not in ("train", "val")},
        "epoch": state["epoch"], "step": state["step"], "selected": selected,
        "training_seconds": round(state["seconds"]), "hardware": state["hardware"],
        "started_from": state["started_from"],
        "total_training_seconds": round(state["seconds"]) + lineage_seconds(state["started_from"]),
        "val_metrics": val["mean"], "val_tile_px": cfg.val_tile_px,
        "software_version": __version__, "torch_version": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
