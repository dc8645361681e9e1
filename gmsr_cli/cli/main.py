"""The `gmsr` command group: global options, the commands, and turning errors into one line and an exit code."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import MutableMapping

import click

from gmsr_cli import __version__
from gmsr_cli.errors import GmsrError, explain

# One module per command, each defining a click command named `command`. A module that is not
# there yet (commands being added) is skipped; any other import failure is a bug and surfaces.
COMMAND_MODULES = ("reconstruct", "batch", "preview", "render", "spectrum", "view", "info", "train", "evaluate")
# What `gmsr --help` lists beside each command, without importing it (a test checks that each
# equals the command's own short help).
SHORT_HELP = {
    "reconstruct": "Reconstruct a hyperspectral cube from one RGB photo.",
    "batch": "Reconstruct every photo of folders or glob patterns.",
    "preview": "Picture of a cube: true colour, one band, or false colour.",
    "render": "Render a cube to RGB as a camera would see it.",
    "spectrum": "Plot (or print) the spectra at pixels and over boxes of a cube.",
    "view": "Write an HTML page to explore a cube's spectra (hover, pin, bands, CSV).",
    "info": "Describe a cube, weights or photo file, or this machine (--system).",
    "train": "Train GMSR-Net weights; run the same command again to resume where it stopped.",
    "evaluate": "Reconstruct whole SCENES (cube files) and report MRAE, RMSE, PSNR and SAM.",
}

EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


def _one_line(text: str) -> str:
    return " ".join(str(text).split("\n")).strip()


def _interrupted(ctx: click.Context, signum: int) -> None:
    name = "Interrupted" if signum == signal.SIGINT else f"Stopped by {signal.Signals(signum).name}"
    click.echo(f"{name}; outputs in progress were removed.", err=True)
    ctx.exit(128 + signum)


class GmsrGroup(click.Group):
    """A click group that turns library errors into `Error: ...` (exit 1), Ctrl-C into exit 130,
    SIGTERM into exit 143 (both after removing outputs in progress) and unexpected exceptions
    into one line with a hint; -v adds the traceback."""

    def invoke(self, ctx: click.Context):
        from gmsr_cli import interrupts

        with interrupts.handling_signals():
            try:
                result = self._invoke_reporting(ctx)
                # A signal whose KeyboardInterrupt a finalizer swallowed after the last safe point.
                interrupts.check()
                return result
            except KeyboardInterrupt as exc:
                signum = interrupts.exit_code(exc) - 128
            except BaseException:
                # Whatever ended the run after a signal (an error raised while stopping), the
                # signal is what the caller must hear about.
                if interrupts.received() is None:
                    raise
                signum = interrupts.received()
        _interrupted(ctx, signum)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            loaded = isinstance(self.commands, LazyCommands) and self.commands.is_loaded(name)
            if name in SHORT_HELP and not loaded:
                rows.append((name, SHORT_HELP[name]))
            else:
                command = self.get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(formatter.width)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def _invoke_reporting(self, ctx: click.Context):
        verbose = bool(ctx.params.get("verbose"))
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except GmsrError as exc:
            if verbose:
                traceback.print_exc()
            raise click.ClickException(_one_line(exc)) from None
        except Exception as exc:
            if verbose:
                traceback.print_exc()
            if explain(exc) is not None:
                raise click.ClickException(_one_line(explain(exc))) from None
            if verbose:
                raise click.ClickException(_one_line(f"unexpected {type(exc).__name__}: {exc}")) from None
            raise click.ClickException(_one_line(
                f"unexpected {type(exc).__name__}: {exc} (run again with gmsr -v ... for the traceback)")) from None


@click.group(cls=GmsrGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="gmsr")
@click.option("-v", "--verbose", is_flag=True, help="Show full tracebacks of errors.")
def cli(verbose: bool) -> None:
    """Reconstruct 31-band hyperspectral cubes (400-700 nm) from RGB photos with GMSR-Net.

    \b
    Quick start:
      gmsr reconstruct photo.png -o cube.h5
      gmsr preview cube.h5 --band 560nm -o band560.png
      gmsr batch photos/ -o cubes/
      gmsr info cube.h5
    """
    from gmsr_cli.memory import tune_malloc

    tune_malloc()


class LazyCommands(MutableMapping):
    """The group's commands, each imported from its module on first use: ``gmsr --help`` and
    ``--version`` then import neither the commands nor torch behind them (3 s -> 0.2 s)."""

    def __init__(self, modules: dict[str, str]):
        self._modules = dict(modules)  # name -> module
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            if name not in self._modules:
                raise KeyError(name)
            module = importlib.import_module(self._modules[name])
            self._loaded[name] = getattr(module, "command", None) or getattr(module, name)
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command
        self._modules.setdefault(name, "")

    def __delitem__(self, name: str) -> None:
        self._loaded.pop(name, None)
        del self._modules[name]

    def __iter__(self):
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)

    def is_loaded(self, name: str) -> bool:
        return name in self._loaded


cli.commands = LazyCommands({name: f"{__package__}.{name}" for name in COMMAND_MODULES})


def main() -> None:
    """The `gmsr` console script: run the command, then end the process without the interpreter's
    teardown. Once torch (and numba) are loaded, unwinding every module and freeing the heap takes
    0.3-0.4 s after the work is done and the outputs are closed (13% of a 512 x 512
    reconstruction; docs/performance.md). Nothing is left for the teardown to do: every command
    closes its files and removes its temporary outputs before it returns or raises, and the
    standard streams and logging are flushed here. ``cli`` itself (tests, other programs that call
    it in-process) ends normally. In this process numba also starts without its BLAS probe
    (gmsr_cli/scan/numba_start.py: no gmsr kernel uses BLAS; about 0.1 s)."""
    from gmsr_cli.scan.numba_start import skip_blas_probe

    skip_blas_probe()
    try:
        cli()  # standalone mode: ends with SystemExit (0 when the command returned)
        code = 0
    except SystemExit as exc:
        code = exc.code
    _exit_now(code)


def _exit_now(code) -> None:
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"): printed, status 1, as Python does
        print(code, file=sys.stderr)
        code = EXIT_FAILURE
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (gmsr ... | head): nothing left to tell
            code = code or EXIT_FAILURE
    os._exit(code & 0xFF if code >= 0 else EXIT_FAILURE)


if __name__ == "__main__":
    main()
