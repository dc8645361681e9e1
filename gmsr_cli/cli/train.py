"""`gmsr train`: train GMSR-Net on hyperspectral cubes for a camera model; resumable."""

from __future__ import annotations

import click

from gmsr_cli.cli.options import backend_option, device_option


def _cameras(ctx, param, value):
    if not value:
        return []
    from gmsr_cli import spectra

    names = [v.strip() for v in value.split(",") if v.strip()]
    if names == ["measured"]:
        names = [n for n in spectra.camera_names() if n not in spectra.STANDARD_CAMERAS]
    for name in names:
        spectra.camera_matrix(name)  # unknown camera: FormatError, shown as one line
    return names


@click.command("train")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder: last.pt (resume), best.safetensors (best by validation MRAE), log.jsonl.")
@click.option("--camera", default="srgb", show_default=True, help="Camera model the RGB input comes from.")
@click.option("--cameras", default="", callback=_cameras, metavar="A,B,...|measured",
              help="Draw a random camera per patch from these (camera-robust weights).")
@click.option("--train", "train_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Training cube files (HDF5, ENVI .hdr, .mat with wavelengths) or crop packs; "
                   "repeat the option [default: the 20 CAVE training scenes].")
@click.option("--val", "val_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Validation cube files [default: the 4 CAVE validation scenes].")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="CAVE scene folder [default: $GMSR_CAVE_DIR, else cave/ in $GMSR_DATA_DIR, else "
                   "../shared/data/cave of a checkout].")
@click.option("--epochs", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--samples-per-epoch", type=click.IntRange(min=1), default=2048, show_default=True,
              help="Random patches per epoch.")
@click.option("--patch", "patch_px", type=click.IntRange(min=8), default=128, show_default=True, help="Patch size, pixels.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=4e-4, show_default=True,
              help="Peak learning rate (linear warm-up, then cosine decay to --lr-min).")
@click.option("--lr-min", type=click.FloatRange(min=0), default=1e-6, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--mix-prob", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Fraction of patches that blend two scenes' reflectances (more spectra than the scenes hold).")
@click.option("--synthetic-prob", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Fraction of patches that are synthetic scenes (overlapping shaded shapes) painted with measured "
                   "reflectances (the train part of ../shared/data/spectra; the check part is never used).")
@click.option("--relight-prob", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Fraction of patches photographed under a measured illuminant (daylight, tungsten, fluorescent) "
                   "and white balanced by the camera, so that such photos map back to reflectance.")
@click.option("--init", "init_weights", default="", metavar="NAME|PATH",
              help="Start from these weights instead of random ones (fine-tuning, e.g. for another camera).")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop cleanly after this much time (at the end of an epoch); run again to resume.")
@click.option("--fresh", is_flag=True, help="Ignore an existing last.pt in --out and start over.")
@device_option
@backend_option
def command(out_dir, camera, cameras, train_files, val_files, data_dir, epochs, samples_per_epoch, patch_px,
            batch_size, lr, lr_min, seed, mix_prob, synthetic_prob,
            relight_prob, init_weights, max_minutes, fresh, device, backend):
    """Train GMSR-Net weights; run the same command again to resume where it stopped.

    Each epoch draws random patches from the training cubes, renders them to 8-bit RGB with the
    camera model (with random exposure, flips and rotations), then scores the whole validation
    cubes; the best weights by validation MRAE are kept in OUT/best.safetensors with a model card,
    and at the end of the schedule its final weights in OUT/final.safetensors.

    \b
    Example:
      gmsr train --out runs/srgb --camera srgb --epochs 40
      gmsr train --out runs/mine --train a.h5 --train b.hdr --val c.mat --epochs 20
    """
    import json

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from gmsr_cli.train.loop import TrainConfig, train

    cfg = TrainConfig(camera=camera, cameras=cameras, train=list(train_files), val=list(val_files), epochs=epochs,
                      samples_per_epoch=samples_per_epoch, patch_px=patch_px, batch_size=batch_size, lr=lr,
                      lr_min=lr_min, seed=seed, mix_prob=mix_prob, synthetic_prob=synthetic_prob,
                      relight_prob=relight_prob, init=init_weights)
    console = Console(stderr=True)
    with Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), TextColumn("loss {task.fields[loss]:.4f}"),
                  TimeRemainingColumn(), console=console, transient=True) as progress:
        task = progress.add_task("train", total=None, epoch=0, loss=float("nan"))

        def on_step(s):
            done = s["step"] % s["steps_per_epoch"] or s["steps_per_epoch"]
            progress.update(task, total=s["steps_per_epoch"], completed=done, epoch=s["epoch"] + 1, loss=s["loss"])

        def on_epoch(r):
            m = r["val"]["mean"]
            progress.console.print(
                f"epoch {r['epoch']}: train loss {r['train_loss']:.4f}, val MRAE {m['mrae']:.4f} "
                f"PSNR {m['psnr']:.2f} dB SAM {m['sam']:.2f} deg{'  (best)' if r.get('best') else ''}")

        record = train(cfg, out_dir, device=device, backend=backend, resume=not fresh, max_minutes=max_minutes,
                       data_dir=data_dir, on_step=on_step, on_epoch=on_epoch)
    if record:
        click.echo(json.dumps({"epoch": record["epoch"], "val": record["val"]["mean"]}))
