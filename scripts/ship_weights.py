"""Package trained weights for shipping: evaluate them as `gmsr evaluate --baseline` does, then write
weights/<name>.safetensors (card in the metadata) and weights/<name>.md (the same card for people).

    python scripts/ship_weights.py runs/srgb/best.safetensors gmsr-cave-srgb
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gmsr_cli import __version__, spectra
from gmsr_cli.api import load_model
from gmsr_cli.colour import CARD_KEY
from gmsr_cli.model.gmsr import GMSRNet
from gmsr_cli.model.weights import load_weights, read_weights, save_weights, sha256_of
from gmsr_cli.tiling import DEFAULT_OVERLAP_PX, DEFAULT_TILE_PX, plan_tiles
from gmsr_cli.train import data as train_data
from gmsr_cli.train.charts import evaluate_charts
from gmsr_cli.train.evaluate import evaluate, fit_baseline
from gmsr_cli.train.loop import lineage, lineage_seconds

REPO = Path(__file__).resolve().parents[1]


def _plan_words(height: int, width: int) -> str:
    """How the default tile plan covers a scene: "one pass" or "N tiles"."""
    count = sum(len(row) for row in plan_tiles(height, width, DEFAULT_TILE_PX, DEFAULT_OVERLAP_PX))
    return "one pass" if count == 1 else f"{count} tiles"


def _row(name: str, m: dict) -> str:
    return f"| {name} | {m['mrae']:.4f} | {m['rmse']:.4f} | {m['psnr']:.2f} | {m['sam']:.2f} |"


def _weak_bands_line(camera: str, result: dict) -> str:
    """The bands where the camera's summed absolute response is under 15% of its peak, and their share of the error."""
    response = np.abs(spectra.camera_matrix(camera)).sum(axis=1)
    weak = response < 0.15 * response.max()
    nm = np.asarray(result["wavelengths_nm"])

    def share(rmse) -> float:
        sq = np.square(np.asarray(rmse))
        return 100 * sq[weak].sum() / sq.sum()

    bands = ", ".join(f"{w:.0f}" for w in nm[weak])
    return (f"- Bands the camera barely sees: at {bands} nm the camera model's summed absolute response is "
            f"under 15% of its peak, so the RGB says little about them; these {int(weak.sum())} of 31 bands hold "
            f"{share(result['band_rmse']):.0f}% of GMSR-Net's squared error on the validation scenes "
            f"({share(result['baseline_band_rmse']):.0f}% of the baseline's).")


def main(source: str, name: str) -> None:
    model = load_model(source, device="cpu")
    trained = dict(model.weights.card)
    init = trained.get("recipe", {}).get("init")
    if init and not trained.get("started_from"):  # runs from before cards recorded their lineage
        trained["started_from"] = lineage(read_weights(init)[1])  # read before weights/<name> is replaced
        trained["total_training_seconds"] = trained.get("training_seconds", 0) + lineage_seconds(trained["started_from"])
    # Exact colour (gmsr_cli.colour) is on by default for these weights only if, on the validation
    # scenes, it does not lower PSNR nor raise MRAE; the card records the decision and both results.
    kw = {"tile_px": DEFAULT_TILE_PX, "overlap_px": DEFAULT_OVERLAP_PX}
    with_exact = evaluate(model, train_data.scene_paths("val"), baseline=True, exact_colour=True, charts=True, **kw)
    without = evaluate(model, train_data.scene_paths("val"), exact_colour=False, **kw)
    exact_default = (with_exact["mean"]["psnr"] >= without["mean"]["psnr"]
                     and with_exact["mean"]["mrae"] <= without["mean"]["mrae"])
    trained[CARD_KEY] = exact_default
    model.weights.card[CARD_KEY] = exact_default  # the training-scene evaluation below uses the decision
    if not exact_default:  # the charts as users get them
        with_exact["charts"] = evaluate_charts(model, fit_baseline(model.camera), exact_colour=False)
    result = with_exact
    if not exact_default:  # the network's numbers without, beside the same baseline and charts
        result = {**without, **{k: v for k, v in with_exact.items() if "baseline" in k or k == "charts"},
                  "scenes": [{**w, "baseline": e["baseline"]} for w, e in zip(without["scenes"], with_exact["scenes"])]}
    # The same on the training scenes: how much of the fit carries over to scenes the model never saw.
    seen = evaluate(model, train_data.scene_paths("train"), baseline=True, **kw)
    card = {
        **trained,
        "name": name,
        "architecture": "GMSR-Net (Wang et al., arXiv 2405.07777), 44,980 parameters, with per-sample normalisation",
        "val_metrics": result["mean"],
        "val_metrics_per_scene": {r["scene"]: r["model"] for r in result["scenes"]},
        "baseline": result["baseline"],
        "baseline_val_metrics": result["baseline_mean"],
        "baseline_val_metrics_per_scene": {r["scene"]: r["baseline"] for r in result["scenes"]},
        "wavelengths_nm": result["wavelengths_nm"],
        "val_band_rmse": result["band_rmse"],
        "baseline_val_band_rmse": result["baseline_band_rmse"],
        "train_scene_metrics": seen["mean"],
        "baseline_train_scene_metrics": seen["baseline_mean"],
        "evaluation": {"command": f"gmsr evaluate --weights {name} --baseline",
                       "train_scenes_command": f"gmsr evaluate --weights {name} --split train --baseline",
                       "tile_px": DEFAULT_TILE_PX, "overlap_px": DEFAULT_OVERLAP_PX,
                       "rgb": result["rgb"], "scenes": "whole 512x512 images",
                       "exact_colour": exact_default},
        "check_charts": result["charts"],
        "check_charts_command": f"gmsr evaluate --weights {name} --charts",
        "exact_colour_check": {
            "rule": "on by default only if validation PSNR does not drop and MRAE does not rise",
            "with": with_exact["mean"], "without": without["mean"],
            "most_negative_with": with_exact["min_value"], "most_negative_without": without["min_value"],
            "commands": [f"gmsr evaluate --weights {name} --exact-colour",
                         f"gmsr evaluate --weights {name} --no-exact-colour"]},
        # whole-image validation as measured by the training loop (kept when a shipped file is re-packaged)
        "training_metrics_whole_image": trained.get("training_metrics_whole_image", trained.get("val_metrics")),
        "data_licence": "CAVE Multispectral Image Database, research use; cite Yasuma et al., IEEE TIP 2010",
        "packaged_with": __version__,
        "packaged": time.strftime("%Y-%m-%d"),
    }
    net = GMSRNet()
    load_weights(net, source)
    out = REPO / "weights" / f"{name}.safetensors"
    save_weights(net, out, card)
    digest = sha256_of(out)
    hours = trained.get("training_seconds", 0) / 3600
    total_hours = trained.get("total_training_seconds", trained.get("training_seconds", 0)) / 3600
    origin = card.get("started_from")
    if origin:
        started = (f"{origin['name']} (sha256 `{origin['sha256']}`: {origin.get('epoch')} epochs, "
                   f"{origin.get('training_seconds', 0) / 3600:.2f} h on {', '.join(origin.get('hardware', []))}, "
                   f"recipe {json.dumps(origin.get('recipe', {}), sort_keys=True)}"
                   + (f", itself started from {origin['started_from']['name']}" if origin.get("started_from") else "")
                   + ")")
    else:
        started = "random initialisation"
    md = [
        f"# {name}", "",
        f"GMSR-Net weights for RGB photos from the camera model **`{card['camera']}`** "
        f"(see ../shared/spec/cameras.md or `gmsr render --list-cameras`).", "",
        f"- file: `{out.name}`, sha256 `{digest}`",
        f"- training data: {card.get('training_data')}; train scenes: {', '.join(card.get('train_scenes', []))}",
        f"- validation scenes (used to choose the epoch, never to train): {', '.join(card.get('val_scenes', []))}",
        f"- started from: {started}",
        f"- recipe: {json.dumps(card['recipe'], sort_keys=True)}",
        f"- these weights: {card.get('selected', 'best validation MRAE')} (epoch {card.get('epoch')})",
        f"- training: {card.get('epoch')} epochs, {card.get('step')} steps, {hours:.2f} h on {', '.join(card.get('hardware', []))}"
        + (f"; {total_hours:.2f} h in all with the weights it started from" if origin else ""),
        f"- software: gmsr-cli {card.get('software_version')}, torch {card.get('torch_version')}", "",
        "## Validation (whole 512x512 scenes, 8-bit RGB rendered by the camera model, "
        f"tile {DEFAULT_TILE_PX}, overlap {DEFAULT_OVERLAP_PX}: {_plan_words(512, 512)})", "",
        f"Reproduce: `{card['evaluation']['command']}`", "",
        "| method | MRAE | RMSE | PSNR dB | SAM deg |", "|---|---|---|---|---|",
        _row("GMSR-Net (these weights)", card["val_metrics"]),
        _row("root-polynomial baseline", card["baseline_val_metrics"]), "",
        "Per scene:", "", "| scene | method | MRAE | RMSE | PSNR dB | SAM deg |", "|---|---|---|---|---|---|",
    ]
    for r in result["scenes"]:
        md.append(_row(f"{r['scene']} | GMSR-Net", r["model"]))
        md.append(_row(f"{r['scene']} | baseline", r["baseline"]))
    check = card["exact_colour_check"]
    md += ["", f"Exact colour (`--exact-colour`, each spectrum corrected so that the camera model renders it back to "
           f"the photo's unclipped pixels): **{'on' if exact_default else 'off'} by default** for these weights "
           f"({check['rule']}); the tables above are {'with' if exact_default else 'without'} it. "
           "Validation means:", "",
           "| GMSR-Net | MRAE | RMSE | PSNR dB | SAM deg | most negative value |", "|---|---|---|---|---|---|",
           _row("with exact colour", check["with"]) + f" {check['most_negative_with']:.4f} |",
           _row("without", check["without"]) + f" {check['most_negative_without']:.4f} |", "",
           f"Reproduce: `{check['commands'][0]}` and `{check['commands'][1]}`."]
    charts = card["check_charts"]
    md += ["", "## Spectral check charts", "",
           f"Measured reflectances of material groups kept out of training ({', '.join(charts['split']['check'])}; "
           "gmsr_cli/train/charts.py), each a flat patch of a chart rendered to an 8-bit photo by the camera model; "
           f"mean over patches of the RMSE and the spectral angle of each patch's mean spectrum. Reproduce: "
           f"`{card['check_charts_command']}`", "",
           "| set | patches | GMSR-Net RMSE | baseline RMSE | GMSR-Net SAM deg | baseline SAM deg |",
           "|---|---|---|---|---|---|"]
    every = {"model": charts["mean"], "baseline": charts["baseline_mean"]}
    for set_name, s in [*charts["sets"].items(), ("all", every)]:
        ours, theirs = s["model"], s["baseline"]
        md.append(f"| {set_name} | {ours['patches']} | {ours['patch_rmse']:.4f} | {theirs['patch_rmse']:.4f} | "
                  f"{ours['patch_sam']:.2f} | {theirs['patch_sam']:.2f} |")
    scenes = charts["scenes"]
    md += ["", f"Synthetic check scenes: {scenes['per_set']} scenes of {scenes['px']} x {scenes['px']} px per set, "
           "each overlapping shaded and textured discs of that set's reflectances (the same every time; "
           "`charts.check_scene`), rendered to an 8-bit photo; MRAE, RMSE, PSNR and SAM over every pixel of the "
           f"set's scenes, as for the validation scenes (the same command).", "",
           "| set | method | MRAE | RMSE | PSNR dB | SAM deg |", "|---|---|---|---|---|---|"]
    every = {"model": scenes["mean"], "baseline": scenes["baseline_mean"]}
    for set_name, s in [*scenes["sets"].items(), ("all", every)]:
        md += [_row(f"{set_name} | GMSR-Net", s["model"]), _row(f"{set_name} | baseline", s["baseline"])]
    md += ["", "Error per band (RMSE pooled over the validation scenes; `gmsr evaluate --per-band`):", "",
           "| nm | GMSR-Net | baseline |", "|---|---|---|"]
    md += [f"| {nm:.0f} | {a:.4f} | {b:.4f} |"
           for nm, a, b in zip(result["wavelengths_nm"], result["band_rmse"], result["baseline_band_rmse"])]
    gap_seen = seen["mean"]["psnr"] - seen["baseline_mean"]["psnr"]
    gap_val = result["mean"]["psnr"] - result["baseline_mean"]["psnr"]
    md += ["", "## Limits", "",
           f"- Scenes it never saw: on its 20 training scenes these weights reach PSNR {seen['mean']['psnr']:.2f} dB "
           f"against the baseline's {seen['baseline_mean']['psnr']:.2f} ({gap_seen:+.2f} dB), on the 4 validation "
           f"scenes {gap_val:+.2f} dB (`{card['evaluation']['train_scenes_command']}`). Most of what the network "
           "learns beyond a per-pixel regression is particular to the scenes it was trained on: 20 scenes are few.",
           _weak_bands_line(card["camera"], result),
           "- 4 validation scenes of one laboratory database (CAVE, one illuminant); expect worse on other scenes, "
           "cameras and lighting. The input must be encoded like the camera model above.",
           "",
           "Data: CAVE Multispectral Image Database (Columbia University), research use; cite F. Yasuma, "
           "T. Mitsunaga, D. Iso and S. K. Nayar, IEEE TIP 2010.", ""]
    (REPO / "weights" / f"{name}.md").write_text("\n".join(md))
    print(json.dumps({"weights": str(out), "sha256": digest, "val": card["val_metrics"],
                      "baseline": card["baseline_val_metrics"]}, indent=2))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main(*sys.argv[1:3])
