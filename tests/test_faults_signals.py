"""Ctrl-C and SIGTERM stop a run every time: real signals to real processes, temporaries removed,
existing outputs kept, exit 130 / 143; leftovers of killed runs are removed by the next run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gmsr_cli.model.gmsr import GMSRNet
from gmsr_cli.model.weights import save_weights

REPO_ROOT = Path(__file__).resolve().parents[1]
OLD = b"an existing output that an interrupted run must keep"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def job(tmp_path):
    """A small photo, small random weights and an existing output in its own folder."""
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / "photo.png")
    save_weights(GMSRNet(), tmp_path / "w.safetensors", card={"name": "test-random-init", "camera": "srgb"})
    out = tmp_path / "out"
    out.mkdir()
    (out / "cube.h5").write_bytes(OLD)
    return tmp_path


def _args(job: Path) -> list[str]:
    # --tile 8: many small tiles (5 x 5 of 16 px: tiles grow up to twice --tile), so that most of
    # the run is tiles and it can be interrupted anywhere.
    return ["reconstruct", str(job / "photo.png"), "-o", str(job / "out" / "cube.h5"), "--weights",
            str(job / "w.safetensors"), "--tile", "8", "--overlap", "2", "--overwrite", "-q"]


def _assert_untouched(out: Path) -> None:
    assert sorted(p.name for p in out.iterdir()) == ["cube.h5"], "temporaries left behind"
    assert (out / "cube.h5").read_bytes() == OLD, "the existing output was replaced"


# One process runs the real CLI (its group, handlers and exit codes) again and again, so that 20
# interrupts cost one start-up of torch: it says "start" before each run and "end RC" after it.
DRIVER = textwrap.dedent("""
    import signal, sys
    from gmsr_cli.cli.main import cli
    args = sys.argv[1:]
    while True:
        line = sys.stdin.readline()
        if not line.strip():
            break
        print("start", flush=True)
        try:
            rc = cli.main(args, prog_name="gmsr", standalone_mode=False)
        except SystemExit as exc:
            rc = exc.code
        print("end", rc or 0, flush=True)
""")


@pytest.mark.slow
def test_sigint_at_random_moments_always_stops_the_run(job):
    driver = job / "driver.py"
    driver.write_text(DRIVER)
    errors = open(job / "stderr.txt", "w")
    proc = subprocess.Popen([sys.executable, str(driver), *_args(job)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=errors, text=True, env=_env())
    out = job / "out"

    def said(word: str) -> list[str]:
        while True:  # skip what the command itself prints ("Wrote ...")
            line = proc.stdout.readline()
            assert line, f"the driver ended: {(job / 'stderr.txt').read_text()}"
            if line.split()[:1] == [word]:
                return line.split()

    try:
        def run(interrupt_after: float | None) -> int:
            proc.stdin.write("go\n")
            proc.stdin.flush()
            said("start")
            if interrupt_after is not None:
                time.sleep(interrupt_after)
                proc.send_signal(signal.SIGINT)
            return int(said("end")[1])

        # Uninterrupted runs (they replace the output) measure how long one takes once warm.
        assert run(None) == 0
        began = time.perf_counter()
        assert run(None) == 0
        duration = time.perf_counter() - began
        assert (out / "cube.h5").read_bytes() != OLD
        (out / "cube.h5").write_bytes(OLD)
        rng = random.Random(1234)
        for attempt in range(20):
            # Anywhere from loading the weights to the last tile rows (the rename comes after).
            delay = rng.uniform(0.0, 0.6 * duration)
            rc = run(delay)
            assert rc == 130, f"attempt {attempt}: SIGINT after {delay:.2f} s of {duration:.2f} s gave exit {rc}"
            _assert_untouched(out)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        finally:
            proc.kill()
            errors.close()


def _start_gmsr(job: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gmsr_cli.cli.main", *_args(job)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())


def _wait_for_temporary(out: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(".partial" in p.name for p in out.iterdir()):
        assert proc.poll() is None, f"gmsr ended before writing: {proc.communicate()}"
        assert time.monotonic() < deadline, "no temporary appeared"
        time.sleep(0.02)


@pytest.mark.parametrize("sig, code, said", [(signal.SIGINT, 130, "Interrupted"),
                                             (signal.SIGTERM, 143, "SIGTERM")])
def test_signal_to_gmsr_mid_write_removes_temporaries_and_keeps_output(job, sig, code, said):
    proc = _start_gmsr(job)
    _wait_for_temporary(job / "out", proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert said in err and "Traceback" not in err
    _assert_untouched(job / "out")


def test_temporaries_of_a_killed_run_are_removed_by_the_next(job):
    out = job / "out"
    proc = _start_gmsr(job)
    _wait_for_temporary(out, proc)
    proc.kill()  # SIGKILL: no chance to clean up
    proc.wait(timeout=60)
    left = [p for p in out.iterdir() if ".partial" in p.name]
    assert left and str(proc.pid) in left[0].name  # the temporary names its writer
    # A live writer's temporary in the same folder must survive the clean-up.
    live = out / left[0].name.replace(f"-{proc.pid}-", f"-{os.getpid()}-")
    live.write_bytes(b"still being written")
    done = subprocess.run([sys.executable, "-m", "gmsr_cli.cli.main", *_args(job)], capture_output=True,
                          text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(["cube.h5", live.name])


class _SignalInFinalizer:
    """Sends SIGINT to this process from inside ``__del__``: the handler's KeyboardInterrupt is
    raised inside the finalizer, where Python prints "Exception ignored" and drops it."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # bytecodes for the handler to run on, still inside __del__
            pass


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_swallowed_by_a_finalizer_still_stops_before_the_output_is_replaced(tmp_path):
    from gmsr_cli import interrupts
    from gmsr_cli.io.atomic import atomic_output

    final = tmp_path / "out.txt"
    final.write_bytes(OLD)
    with interrupts.handling_signals():
        with pytest.raises(interrupts.Interrupted) as info:
            with atomic_output(final, overwrite=True) as files:
                files.path.write_text("new")
                finalizer = _SignalInFinalizer()
                del finalizer  # the interrupt is raised and swallowed here; the block goes on
                files.path.write_text("new, finished")
        assert interrupts.received() == signal.SIGINT
    assert interrupts.received() is None  # forgotten with the handlers: later runs are not stopped
    interrupts.check()
    assert info.value.exit_code == 130
    assert final.read_bytes() == OLD and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


class _BrokenFinalizer:
    """An object a library left half-done: its finalizer fails (as numba's LLVM objects did when
    Ctrl-C landed inside their bookkeeping, printing "Exception ignored ... Traceback")."""

    def __del__(self):
        raise AttributeError("half-closed")


def test_finalizer_errors_are_reported_until_a_signal_and_dropped_after_it(monkeypatch):
    from gmsr_cli import interrupts

    reported = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: reported.append(unraisable.exc_value))
    with interrupts.handling_signals():
        broken = _BrokenFinalizer()
        del broken
        assert [type(e) for e in reported] == [AttributeError]  # no signal yet: a real fault, reported
        with pytest.raises(interrupts.Interrupted):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
        broken = _BrokenFinalizer()
        del broken
        cycle = _BrokenFinalizer()
        cycle.me = cycle  # collected only by the garbage collector, when the block ends
        del cycle
    assert len(reported) == 1, reported
    broken = _BrokenFinalizer()
    del broken  # the handlers (and the hook) are gone: reported again
    assert len(reported) == 2
