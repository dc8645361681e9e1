"""`gmsr info`: what a cube, weights or photo file holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from gmsr_cli.cli.options import variable_options


def _range(values: list[float]) -> str:
    if not values:
        return "none"
    steps = sorted({round(b - a, 6) for a, b in zip(values, values[1:])})
    step = f", {steps[0]:g} nm steps" if len(steps) == 1 else ""
    return f"{values[0]:g}-{values[-1]:g} nm, {len(values)} bands{step}"


def _first_line(value: Any) -> str:
    lines = str(value).strip().splitlines() or [""]
    return lines[0] + (" ..." if len(lines) > 1 else "")


def _lines(d: dict[str, Any]) -> list[str]:
    kind = d["kind"]
    if kind == "system":
        return _system_lines(d)
    lines = [f"{d['path']}: {kind}"]
    if kind == "cube":
        h, w, b = d["shape"]
        scale = f" (x {d['scale']:g} for reflectance)" if d.get("scale") else ""
        lines += [f"  format       {d['format']}",
                  f"  shape        {h} x {w} x {b} (height x width x bands)",
                  f"  dtype        {d['dtype']}{scale}",
                  f"  wavelengths  {_range(d['wavelengths_nm'])}"]
        if d["value_min"] is not None:
            lines.append(f"  values       min {d['value_min']:.4g}, max {d['value_max']:.4g}, "
                         f"mean {d['value_mean']:.4g}")
        if d["non_finite_values"]:
            lines.append(f"  non-finite   {d['non_finite_values']} values (NaN or infinite)")
        if d["attrs"]:
            lines.append("  provenance")
            lines += [f"    {k:<18} {_first_line(v)}" for k, v in sorted(d["attrs"].items())]
    elif kind == "weights":
        lines += [f"  name         {d['name']}",
                  f"  sha256       {d['sha256']}",
                  f"  file kind    {d['file_kind']}",
                  f"  parameters   {d['parameters']:,} in {d['tensors']} tensors",
                  f"  camera       {d['camera']}",
                  f"  GMSR-Net     {'fits' if d['fits_gmsr_net'] else 'does not fit: ' + d.get('problem', '')}"]
        if d["card"]:
            lines.append("  card")
            for k, v in sorted(d["card"].items()):
                text = json.dumps(v) if isinstance(v, (dict, list)) else str(v)
                lines.append(f"    {k:<18} {text}")
    else:
        lines.append(f"  size         {d['height']} x {d['width']} (height x width)")
    return lines


def _system_lines(d: dict[str, Any]) -> list[str]:
    def ver(v):
        return v or "not installed"

    lines = [f"gmsr-cli {d['gmsr_cli']} on Python {d['python']}, {d['platform']}",
             f"  torch        {d['torch']} (CUDA {d['torch_cuda'] or 'none: a CPU build'})",
             f"  triton       {ver(d['triton'])}" + (" (interpreter on: TRITON_INTERPRET=1)" if d["triton_interpreter"] else ""),
             f"  numba        {ver(d['numba'])}",
             f"  mamba-ssm    {ver(d['mamba_ssm'])}",
             "  devices"]
    lines += [f"    {dev['name']:<10} {dev['description']}" for dev in d["devices"]]
    if not d["cuda_available"]:
        lines.append("    (no CUDA GPU visible to this PyTorch)")
    for kind, info in d["scan_backends"].items():
        lines.append(f"  scan backends on {kind}: auto picks {info['auto'] or 'none'}"
                     + (f" ({info['note']})" if info["note"] else ""))
        for name, row in info["backends"].items():
            if name == "auto_error":
                continue
            lines.append(f"    {name:<10} {'usable' if row['usable'] else 'no: ' + row['why_not']}")
    return lines


@click.command(short_help="Describe a cube, weights or photo file, or this machine (--system).")
@click.argument("file", metavar="FILE", required=False)
@click.option("--weights", default=None, metavar="NAME|PATH", help="Describe these weights (a shipped name or a file).")
@click.option("--system", is_flag=True,
              help="Describe this machine: versions, devices, which scan backends run and which auto picks.")
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
@variable_options
def command(file: str | None, weights: str | None, system: bool, as_json: bool) -> None:
    """Describe FILE: for a cube its shape, wavelengths, value type, value range and provenance;
    for weights (a file, or a shipped name with --weights) their card; for a photo its size.
    With --system: torch, CUDA, Triton, numba and mamba-ssm versions, the devices, and for the CPU
    and CUDA which scan backends are usable, which one auto picks, and why the others are not.

    \b
    Examples:
      gmsr info cube.h5
      gmsr info --weights gmsr-cave-srgb
      gmsr info checkpoint.pth --json
      gmsr info --system
      gmsr info scene.mat --var hsi --wavelength-var wl
    """
    from gmsr_cli import api

    if sum((file is not None, weights is not None, system)) != 1:
        raise click.UsageError("give a FILE, --weights NAME|PATH or --system (one of them)")
    if system:
        description = api.describe_system()
    elif file is not None:
        description = api.describe_file(Path(file))
    else:
        description = api.describe_weights(weights)
    if as_json:
        click.echo(json.dumps(description, indent=2, default=str))
    else:
        click.echo("\n".join(_lines(description)))
