"""report.html opened in a real headless Chromium (Debian ``chromium``).

Chromium is driven over the DevTools protocol (``--remote-debugging-port`` +
``websockets``): the page is loaded from disk, then the test checks the page
title, that every ``<img>`` decoded (``naturalWidth > 0``), that every report
section is present, and that no console error or uncaught exception occurred.
A full-page screenshot is saved to ``test-artifacts/`` (git-ignored).

Chromium missing is a failure, not a skip: CI (``.ci/run``) installs it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--hide-scrollbars", "--mute-audio"]
CHECK_JS = """JSON.stringify({
  title: document.title,
  ready: document.readyState,
  imgs: Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight})),
  sections: Array.from(document.querySelectorAll('.accordion-item .accordion-button a')).map(a => a.textContent.trim()),
  height: document.documentElement.scrollHeight
})"""


def chromium_binary() -> str:
    """Path of the Chromium executable; fails the test with the install command when missing."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Chromium is not installed: `apt-get install -y chromium` (.ci/run does this); "
                "the report must be checked in a real browser")


class DevTools:
    """Minimal Chrome DevTools Protocol client over one page session."""

    def __init__(self, ws_url: str, timeout: float):
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=None, open_timeout=timeout)
        self.timeout = timeout
        self.next_id = 0
        self.session = None
        self.events: list[dict] = []

    def call(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        """Send a command and return its result, keeping events that arrive meanwhile."""
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + self.timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"DevTools {method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, method: str) -> dict:
        """Wait for an event (also looking at the ones already received)."""
        for ev in self.events:
            if ev["method"] == method:
                return ev
        deadline = time.monotonic() + self.timeout
        while True:
            ev = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if "method" in ev:
                self.events.append(ev)
                if ev["method"] == method:
                    return ev

    def close(self):
        self.ws.close()


def open_in_chromium(page: Path, screenshot: Path, width: int = 1280, height: int = 1000,
                     timeout: float = 25.0, full_page: bool = True) -> dict:
    """Load ``page`` in headless Chromium and report what rendered.

    Parameters
    ----------
    page : pathlib.Path
        HTML file.
    screenshot : pathlib.Path
        PNG written here.
    width, height : int
        Viewport (CSS pixels).
    timeout : float
        Seconds allowed for start-up and for each protocol step.
    full_page : bool
        Capture the whole page rather than the viewport.

    Returns
    -------
    dict
        ``title``, ``imgs`` (complete / naturalWidth per image), ``sections``,
        ``errors`` (console errors, uncaught exceptions, failed loads).
    """
    binary = chromium_binary()
    profile = Path(tempfile.mkdtemp(prefix="sw-chromium-"))
    proc = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                             "--remote-debugging-port=0", f"--window-size={width},{height}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    dev = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if proc.poll() is not None:
                pytest.fail(f"Chromium exited at start-up with code {proc.returncode}")
            if time.monotonic() > deadline:
                pytest.fail(f"Chromium did not open its DevTools port within {timeout:.0f} s")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        dev = DevTools(f"ws://127.0.0.1:{port.strip()}{path.strip()}", timeout)
        target = dev.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        dev.session = dev.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            dev.call(f"{domain}.enable")
        dev.call("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        nav = dev.call("Page.navigate", {"url": page.resolve().as_uri()})
        if nav.get("errorText"):
            pytest.fail(f"Chromium could not open {page}: {nav['errorText']}")
        dev.wait_for("Page.loadEventFired")
        state = json.loads(dev.call("Runtime.evaluate", {"expression": CHECK_JS, "returnByValue": True})
                           ["result"]["value"])
        shot = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            shot["clip"] = {"x": 0, "y": 0, "width": width, "height": min(state["height"], 16000), "scale": 1}
        data = dev.call("Page.captureScreenshot", shot)["data"]
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(data))
        errors = []
        for ev in dev.events:
            m, p = ev["method"], ev.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
            elif m == "Runtime.exceptionThrown":
                errors.append("exception: " + p["exceptionDetails"].get("text", "") + " " +
                              str(p["exceptionDetails"].get("exception", {}).get("description", "")))
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                errors.append("log: " + p["entry"].get("text", ""))
            elif m == "Network.loadingFailed":
                errors.append("load failed: " + p.get("errorText", ""))
        state["errors"] = errors
        return state
    finally:
        if dev is not None:
            try:
                dev.call("Browser.close", session=False)
            except Exception:  # the browser may already be gone
                pass
            dev.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def ecg_report(mitdb, tmp_path_factory):
    """A real report: MIT-BIH 106, first 60 s, events allowed after 10 s (so sections exist)."""
    from spikewatch.config import CONFIG_DIR

    tmp = tmp_path_factory.mktemp("browser")
    cfg = tmp / "cfg.yaml"
    cfg.write_text(f"extends: {CONFIG_DIR / 'ecg.yaml'}\ndetection:\n  warmup_s: 10.0\n  z_threshold: 2.5\n")
    r = subprocess.run([sys.executable, "-m", "spikewatch", "analyze", str(mitdb / "106"), "--stop", "60",
                        "--config", str(cfg), "--out", str(tmp)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return tmp / "106"


def test_report_renders_in_chromium(ecg_report):
    """Title, every image decoded, every section present, no console error; screenshot saved."""
    rows = [ln.split("\t") for ln in (ecg_report / "events.tsv").read_text().splitlines()[1:]]
    n_events = sum(r[2] == "anomaly" for r in rows)  # signal_quality spans get no event section
    assert n_events >= 1, "the fixture should flag at least one event"
    t = time.monotonic()
    shot = ARTIFACTS / "report-106.png"
    state = open_in_chromium(ecg_report / "report.html", shot)
    elapsed = time.monotonic() - t
    assert state["title"] == "spikewatch report: 106"
    assert state["errors"] == [], state["errors"]
    figures = [i for i in state["imgs"] if i["alt"] != "MNE"]
    # overview + one per event + raster + weights + weight change
    from spikewatch.config import load_config

    shown = min(n_events, load_config("ecg").report.max_event_sections)  # the highest-scoring ones
    assert len(figures) == 1 + shown + 3, state["imgs"]
    assert all(i["complete"] and i["w"] > 0 and i["h"] > 0 for i in state["imgs"]), state["imgs"]
    for title in ("Recording and provenance", "Anomaly score over time", "Flagged events", "Network activity",
                  "STDP weights: start, end, change", "STDP weight change over time"):
        assert title in state["sections"], state["sections"]
    assert sum(s.startswith("Event ") for s in state["sections"]) == shown
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size[0] == 1280 and im.size[1] > 1000
        # not a blank page: many distinct colours (plots) in the screenshot
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 200
    assert elapsed < 30, f"browser check took {elapsed:.1f} s"
