"""A small Chrome DevTools Protocol client: headless Chromium driven over one websocket (tests, doc pictures)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_browser() -> str | None:
    """The path of a Chromium/Chrome executable ($GMSR_CHROMIUM first), or None."""
    explicit = os.environ.get("GMSR_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else shutil.which(explicit)
    for name in BROWSER_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class CdpError(RuntimeError):
    """The browser did not start or answered a command with an error."""


class Browser:
    """Headless Chromium with one page attached (flattened session); use as a context manager.

    `send(method, **params)` runs a page command, `send_browser` a browser-level one. Every event
    is kept in `events`; `problems()` lists console errors and uncaught exceptions.
    """

    def __init__(self, executable: str, width: int = 1280, height: int = 860, timeout: float = 30.0):
        import websocket  # websocket-client, the test extra

        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="gmsr-chromium-")
        args = [executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
                "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}", "about:blank"]
        # stderr to a file, not a pipe: Chromium keeps logging there and a full pipe would stall it.
        self.log = Path(self.profile) / "stderr.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        url = self._devtools_url()
        self.ws = websocket.create_connection(url, timeout=timeout, suppress_origin=True, enable_multithread=False)
        self._id = 0
        self.events: list[dict[str, Any]] = []
        target = self.send_browser("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send_browser("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def _devtools_url(self) -> str:
        deadline = time.monotonic() + self.timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            match = re.search(r"DevTools listening on (ws://\S+)", text)
            if match:
                return match.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.close()
        raise CdpError("Chromium did not start: " + " | ".join(text.strip().splitlines()[-5:]))

    def _call(self, method: str, params: dict[str, Any], session: str | None) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)
        raise CdpError(f"{method}: no answer in {self.timeout} s")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        return self._call(method, params, self.session)

    def send_browser(self, method: str, **params: Any) -> dict[str, Any]:
        return self._call(method, params, None)

    def evaluate(self, expression: str, await_promise: bool = False) -> Any:
        """The JSON value of a JavaScript expression in the page; page exceptions raise CdpError."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=await_promise)
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw: {result['exceptionDetails'].get('exception', {}).get('description')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """Poll a JavaScript expression until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.05)
        raise CdpError(f"{expression!r} was not true within {timeout} s")

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def mouse(self, kind: str, x: float, y: float, button: str = "none", clicks: int = 0) -> None:
        self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button=button, clickCount=clicks)

    def click(self, x: float, y: float) -> None:
        self.mouse("mouseMoved", x, y)
        self.mouse("mousePressed", x, y, "left", 1)
        self.mouse("mouseReleased", x, y, "left", 1)

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def problems(self) -> list[str]:
        """Console errors and uncaught exceptions seen so far, one line each."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                found.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console.error: " + " ".join(str(a.get("value", a.get("description")))
                                                         for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append(f"log: {params['entry'].get('text')} ({params['entry'].get('url', '')})")
        return found

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                ws.close()
            except Exception:  # the browser may be gone already
                pass
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_for_file(folder: Path, pattern: str, timeout: float = 15.0,
                  ready: Callable[[Path], bool] = lambda p: p.stat().st_size > 0) -> Path:
    """The first file in `folder` matching `pattern` that is complete (no .crdownload beside it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(folder.glob(pattern)):
            if not path.name.endswith(".crdownload") and ready(path):
                return path
        time.sleep(0.1)
    raise CdpError(f"no {pattern} appeared in {folder} within {timeout} s (found: {sorted(folder.iterdir())})")
