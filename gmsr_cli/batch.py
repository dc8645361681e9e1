"""Batches: which photos become which cube files (planning, shards, resume), and running them."""

from __future__ import annotations

import glob
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from . import interrupts
from .errors import DeviceError, DiskFullError, GmsrError, explain
from .io.atomic import output_error
from .io.registry import DEFAULT_FORMAT, PHOTO_EXTENSIONS, is_photo
from .model.loading import LoadedModel, load_model
from .model.weights import DEFAULT_WEIGHTS
from .colour import DEFAULT_EXACT_COLOUR
from .reconstruct import output_paths, reconstruct_file
from .tiling import DEFAULT_OVERLAP_PX, DEFAULT_TILE_PX, ProgressCallback

PathLike = str | os.PathLike


@dataclass(frozen=True)
class BatchItem:
    """One photo of a batch and the cube file it becomes."""

    input_path: Path
    output_path: Path


@dataclass
class BatchResult:
    """The fate of one BatchItem: status "done", "skipped" (its output was complete), "failed",
    or "not tried" (the batch stopped before it: the disk was full)."""

    item: BatchItem
    status: str
    message: str = ""
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    disk_full: bool = False  # failed for want of space: the photos after it are not tried


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n): part i of n, numbered from 1 (``1/4`` .. ``4/4``). Raises GmsrError."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise GmsrError(f"--shard {text!r}: expected I/N such as 1/4 (part I of N, counted from 1)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise GmsrError(f"--shard {text}: N must be 1 or more")
    if not 1 <= index <= count:
        raise GmsrError(f"--shard {text}: I must be 1 to {count}; shards are counted from 1 "
                        "(for a 0-based job array use $((TASK_ID + 1)))")
    return index, count


def _has_wildcard(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _glob_base(pattern: str) -> Path:
    """The folder part of a glob pattern before its first wildcard: outputs mirror the tree below it."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if _has_wildcard(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder)
        return True
    except ValueError:
        return False


def _walk_photos(folder: Path, exclude: Path | None) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        root_path = Path(root)
        # Hidden folders hold temporaries and tool state; the output folder holds our own results.
        dirs[:] = [d for d in dirs if not d.startswith(".")
                   and (exclude is None or not _inside(root_path / d, exclude))]
        found += [root_path / f for f in files if is_photo(root_path / f)]
    return found


def batch_plan(inputs: Sequence[PathLike], outdir: PathLike | None, format: str = DEFAULT_FORMAT,
               shard: tuple[int, int] | str | None = None) -> list[BatchItem]:
    """The photos of ``inputs`` and the cube files they become under ``outdir`` (None: each
    beside its photo, with the extension of ``format``, as ``gmsr reconstruct`` writes it).

    inputs: folders (searched recursively for PNG, JPEG, TIFF, BMP, WebP; hidden entries and
    ``outdir`` itself skipped), glob patterns (``**`` recursive) or photo files. The tree below
    each folder (or below a pattern's fixed part) is mirrored under outdir, with the extension
    of ``format``. Items are sorted by output path; ``shard`` (i, n) or "i/n" keeps items
    i-1, i-1+n, i-1+2n, ... so that n machines split a batch with every photo in exactly one
    shard. Raises GmsrError for a missing input, no photos, or two photos with one output name.
    """
    from .io import format_for

    fmt = format_for(f"x.{format}" if format else "x.h5", format)
    extension = fmt.extensions[0]
    beside = outdir is None
    outdir = Path(outdir) if outdir is not None else Path(".")
    # Cubes beside their photos: no output folder to keep out of the search.
    exclude = None if beside else outdir.resolve()
    pairs: list[tuple[Path, Path]] = []  # (photo, path relative to outdir without extension)
    for entry in inputs:
        text = str(entry)
        path = Path(text)
        if path.is_dir():
            # Skip the output folder when it lies inside an input folder (not when it is that folder).
            skip = exclude if exclude is not None and not _inside(path, exclude) else None
            pairs += [(p, p.relative_to(path)) for p in _walk_photos(path, skip)]
        elif path.is_file():
            pairs.append((path, Path(path.name)))
        elif _has_wildcard(text):
            base = _glob_base(text)
            for match in sorted(glob.glob(text, recursive=True)):
                p = Path(match)
                if p.is_file() and is_photo(p) and (exclude is None or _inside(base, exclude)
                                                   or not _inside(p, exclude)):
                    pairs.append((p, p.relative_to(base)))
        else:
            raise GmsrError(f"batch input not found: {text} (give folders, photo files or glob patterns)")
    if not pairs:
        listed = ", ".join(str(i) for i in inputs)
        raise GmsrError(f"no photos ({', '.join(PHOTO_EXTENSIONS)}) found in {listed}")
    items: dict[Path, BatchItem] = {}
    for photo, rel in pairs:
        out = photo.with_suffix(extension) if beside else outdir / rel.with_suffix(extension)
        if out.resolve() == photo.resolve():
            raise GmsrError(f"{photo}: its {fmt.name} cube would be written over the photo itself; "
                            "choose another --format or an output folder (-o)")
        if out in items:
            if items[out].input_path.resolve() == photo.resolve():
                continue  # the same photo reached twice (a folder and a pattern)
            raise GmsrError(f"{items[out].input_path} and {photo} would both be written to {out}; "
                            "rename one of them or run them in separate batches")
        items[out] = BatchItem(photo, out)
    ordered = [items[k] for k in sorted(items, key=lambda p: p.as_posix())]
    if shard is not None:
        index, count = parse_shard(shard) if isinstance(shard, str) else shard
        parse_shard(f"{index}/{count}")
        ordered = ordered[index - 1::count]
    return ordered


def run_batch(items: Sequence[BatchItem], *, model: LoadedModel | None = None,
              weights: PathLike | None = DEFAULT_WEIGHTS, device: str = "auto", backend: str = "auto",
              tile_px: int = DEFAULT_TILE_PX, overlap_px: int = DEFAULT_OVERLAP_PX,
              batch_tiles: int | None = None, tta: bool = False, format: str | None = None,
              dtype: str = "float32", overwrite: bool = False,
              exact_colour: bool | None = DEFAULT_EXACT_COLOUR,
              on_file_start: Callable[[int, BatchItem], None] | None = None,
              on_file_end: Callable[[int, BatchResult], None] | None = None,
              progress: ProgressCallback | None = None,
              on_warning: Callable[[str], None] | None = None) -> list[BatchResult]:
    """Reconstruct every item, loading the model once (and only if there is work).

    An item whose output files all exist is skipped (outputs appear only when complete, so this
    resumes an interrupted batch) unless ``overwrite``. A photo that fails is recorded as
    "failed" with its one-line reason and the batch goes on; errors of the weights or device
    (BackendError, WeightsError from loading; DeviceError, e.g. out of memory, from any photo) stop
    it: they would fail every photo the same way. A full disk (DiskFullError) is recorded for
    its photo and stops the batch, the remaining photos recorded as "not tried". KeyboardInterrupt
    (Ctrl-C, SIGTERM under the CLI) stops it with the current output removed. ``exact_colour``:
    as in reconstruct_file.
    """
    results: list[BatchResult] = []
    for i, item in enumerate(items):
        interrupts.check()
        if results and results[-1].status == "failed" and results[-1].disk_full:
            stop = results[-1].message
            results += [BatchResult(rest, "not tried", f"the batch stopped: {stop}") for rest in items[i:]]
            break
        if on_file_start is not None:
            on_file_start(i, item)
        start = time.perf_counter()
        finals = output_paths(item.output_path, format)
        present = [p.exists() for p in finals]
        if all(present) and not overwrite:
            result = BatchResult(item, "skipped", "output exists")
        else:
            if model is None:
                model = load_model(weights, device, backend)
            try:
                item.output_path.parent.mkdir(parents=True, exist_ok=True)
                # Some but not all files of an output: the leftovers of an interrupted rename.
                done = reconstruct_file(item.input_path, item.output_path, model=model, tile_px=tile_px,
                                        overlap_px=overlap_px, batch_tiles=batch_tiles, tta=tta,
                                        format=format, dtype=dtype, overwrite=overwrite or any(present),
                                        exact_colour=exact_colour, progress=progress, on_warning=on_warning)
                result = BatchResult(item, "done", seconds=time.perf_counter() - start, warnings=done.warnings)
            except DeviceError:
                raise
            except DiskFullError as exc:
                result = BatchResult(item, "failed", str(exc), time.perf_counter() - start, disk_full=True)
            except OSError as exc:  # outside the writers: making the output's folder
                error = output_error(exc, item.output_path) or exc
                result = BatchResult(item, "failed", str(error), time.perf_counter() - start,
                                     disk_full=isinstance(error, DiskFullError))
            except GmsrError as exc:
                result = BatchResult(item, "failed", str(exc), time.perf_counter() - start)
            except Exception as exc:  # one broken photo must not stop the batch, whatever broke
                reason = explain(exc) or f"unexpected {type(exc).__name__}: {exc}"
                result = BatchResult(item, "failed", reason, time.perf_counter() - start)
        results.append(result)
        if on_file_end is not None:
            on_file_end(i, result)
    return results
