"""Make README's pictures of `gmsr spectrum` and `gmsr view`: docs/spectrum.png and docs/viewer.png.

    python scripts/make_doc_pictures.py [--cube CUBE] [--out docs]

Without --cube it reconstructs examples/peppers.png with the shipped weights first
(`gmsr reconstruct examples/peppers.png -o TMP/peppers.h5`). The spectrum plot is
`gmsr spectrum` itself; the viewer picture is a screenshot of the page written by `gmsr view`,
taken in headless Chromium (found as in tests/cdp.py: $GMSR_CHROMIUM or `chromium` on the PATH)
after pinning four pixels and hovering over a fifth, as a person would with the mouse.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the small CDP client the browser test uses

# Pixels of examples/peppers.png (256 x 256; x = column, y = row).
RED_PEPPER, YELLOW_PEPPER, STEM, FOAM, STRAWBERRY = (55, 113), (175, 104), (69, 46), (103, 12), (36, 212)
APPLE_BOX = (176, 170, 206, 200)


def gmsr(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "gmsr_cli.cli.main", *args], check=True)


def viewer_screenshot(page: Path, out: Path) -> None:
    import cdp

    executable = cdp.find_browser()
    if executable is None:
        raise SystemExit("no Chromium found: apt-get install chromium (or set GMSR_CHROMIUM)")
    with cdp.Browser(executable, width=1200, height=660) as b:
        b.navigate(page.as_uri())
        b.wait_for("window.gmsrViewer && gmsrViewer.ready")
        info = b.evaluate("gmsrViewer.info")
        left, top, width, height = b.evaluate(
            "(() => { const r = document.getElementById('overlay').getBoundingClientRect();"
            " return [r.left, r.top, r.width, r.height]; })()")

        def at(x: int, y: int) -> tuple[int, int]:
            # Whole CSS pixels: Chromium rounds mouse positions, which could land on a neighbour.
            step = info["step"]
            return (round(left + (x / step + 0.5) * width / info["width"]),
                    round(top + (y / step + 0.5) * height / info["height"]))

        for pixel in (RED_PEPPER, YELLOW_PEPPER, STEM, FOAM):
            b.click(*at(*pixel))
        b.mouse("mouseMoved", *at(*STRAWBERRY))
        b.screenshot(out)
        problems = b.problems()
        if problems:
            raise SystemExit(f"the page reported errors: {problems}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cube", type=Path, default=None, help="a cube of examples/peppers.png (default: made now)")
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cube = args.cube
        if cube is None:
            cube = Path(tmp) / "peppers.h5"
            gmsr("reconstruct", str(REPO / "examples" / "peppers.png"), "-o", str(cube), "-q")
        points = [f"{x},{y}" for x, y in (RED_PEPPER, YELLOW_PEPPER, STEM, FOAM)]
        gmsr("spectrum", str(cube), *sum((["--at", p] for p in points), []), "--box", ",".join(map(str, APPLE_BOX)),
             "-o", str(args.out / "spectrum.png"), "--overwrite")
        page = Path(tmp) / "peppers_view.html"
        gmsr("view", str(cube), "-o", str(page))
        viewer_screenshot(page, args.out / "viewer.png")
    for name in ("spectrum.png", "viewer.png"):
        print(f"{args.out / name}: {(args.out / name).stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
