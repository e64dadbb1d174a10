"""A headless Chromium driven over the DevTools protocol (CDP), with no Python dependency
beyond ``websockets``: enough to open a page, evaluate JavaScript, collect console errors and
take a screenshot. Debian's ``chromium`` is installed where missing when running as root (no
browser download from elsewhere: this machine reaches package registries only)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

#: Generous deadlines: a loaded machine is slow, never wrong.
START_S = 60.0
COMMAND_S = 60.0
INSTALL_S = 900.0


def chromium() -> str:
    """The chromium binary; installs Debian's package when missing and root, else skips."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed and installing it needs root")
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=INSTALL_S,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"cannot install chromium ({' '.join(command)}): {exc}")
    return shutil.which("chromium") or pytest.skip("chromium still not found after installing")


class Browser:
    """One headless browser with one page, talked to through a flattened CDP session."""

    def __init__(self, profile: Path, width: int = 1200, height: int = 900) -> None:
        self.process = subprocess.Popen(
            [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "--no-first-run", "--disable-extensions",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.events: list[dict[str, Any]] = []
        self._id = 0
        self._stack = contextlib.ExitStack()
        try:
            self._connect(profile, width, height)
        except BaseException:
            self.close()
            raise

    def _connect(self, profile: Path, width: int, height: int) -> None:
        endpoint = self._endpoint(profile)
        self.socket = self._stack.enter_context(
            connect(endpoint, max_size=None, open_timeout=START_S)
        )
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        attached = self.call("Target.attachToTarget", targetId=target, flatten=True)
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip

    def _endpoint(self, profile: Path) -> str:
        """The browser's websocket URL, from the port file Chromium writes once listening."""
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with status {self.process.returncode}")
            lines = port_file.read_text().split() if port_file.exists() else []
            if len(lines) == 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            time.sleep(0.05)
        raise TimeoutError(f"chromium wrote no {port_file} within {START_S:.0f}s")

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer, keeping the events that arrive meanwhile."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        deadline = time.monotonic() + COMMAND_S
        while (left := deadline - time.monotonic()) > 0:
            answer = json.loads(self.socket.recv(timeout=left))
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]
            self.events.append(answer)
        raise TimeoutError(f"{method}: no answer within {COMMAND_S:.0f}s")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session=True, expression=expression,
                           returnByValue=True, awaitPromise=True)  # fmt: skip
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = COMMAND_S) -> Any:
        """Poll ``expression`` until it is truthy (its value) or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if value := self.evaluate(expression):
                return value
            time.sleep(0.1)
        raise TimeoutError(f"{expression!r} still false after {timeout_s:.0f}s")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries seen so far."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(f"console: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params.get('exceptionDetails')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"log: {params['entry'].get('text')}")
        return found

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self._stack.close()
        finally:
            self.process.kill()
            self.process.wait(timeout=COMMAND_S)
