"""The HTML Vigil writes, opened in a real headless browser: it renders, shows its text, logs nothing.

The evidence transcript (``transcript.html``) and the scan report are read by people who are not
developers, offline, often printed; a page that renders blank, or that tries to load something its own
Content-Security-Policy forbids (the browser logs that to its console), fails here. The browser is the OS
package ``chromium``, which ``.ci/run`` installs when it is missing; outside CI a machine without it skips.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cases.helpers import CHILD_SAFETY, HOSTILE, Harness, hostile_case, link, make_harness
from tests.support.cli_data import grooming, ordinary, write_config, write_jsonl
from vigil.bots.cli import main
from vigil.bots.core.evidence import export_case
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore

WIDTH, HEIGHT = 1000, 800
_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module")
def browser() -> str:
    found = next((path for name in _BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("no headless browser: .ci/run installs the OS package chromium when it is missing")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    return found


@dataclass(frozen=True, slots=True)
class Rendered:
    dom: str
    console: list[str]
    png: bytes


def render(browser: str, page: Path, *, profile: Path) -> Rendered:
    """Open ``page`` headless: its DOM after load, what it wrote to the console, and a screenshot."""
    common = [
        browser,
        "--headless",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
        "--disable-gpu",
        f"--user-data-dir={profile}",
        f"--window-size={WIDTH},{HEIGHT}",
    ]
    url = page.resolve().as_uri()
    dom = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, text=True, timeout=90, check=True
    ).stdout
    shot = profile / "shot.png"
    logged = subprocess.run(
        [*common, "--enable-logging=stderr", "--v=0", f"--screenshot={shot}", url],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    ).stderr
    console = [line for line in logged.splitlines() if ":CONSOLE" in line]
    return Rendered(dom=dom, console=console, png=shot.read_bytes())


def png_size_and_shades(png: bytes) -> tuple[int, int, int]:
    """Width, height and the number of distinct byte values in the image data (a blank page has 2 or 3)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, data = 8, b""
    width = height = 0
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind = png[position + 4 : position + 8]
        body = png[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            data += body
        position += 12 + length
    return width, height, len(set(zlib.decompress(data)))


def assert_shown(rendered: Rendered, *texts: str) -> None:
    assert rendered.console == [], rendered.console
    for text in texts:
        assert text in rendered.dom, text
    width, height, shades = png_size_and_shades(rendered.png)
    assert (width, height) == (WIDTH, HEIGHT)
    assert shades > 20, "the screenshot is blank"


async def test_the_evidence_transcript_renders_offline_and_loads_nothing(
    browser: str, tmp_path: Path, sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    harness: Harness = make_harness(sqlite_store, keyword_detector)
    alert = await hostile_case(harness)
    folder = await export_case(
        harness.store,
        platform=alert.key.platform,
        space_id=alert.key.space_id,
        case_number=alert.case_number,
        out_dir=tmp_path / "packs",
        actor=CHILD_SAFETY,
        message_link=link,
    )
    rendered = render(browser, folder / "transcript.html", profile=tmp_path / "profile")
    # The hostile message is shown as text: its script never ran and its image was never requested
    # (either would be logged to the console).
    assert_shown(rendered, f"Vigil case #{alert.case_number}", "Audit trail", "secret groom")
    assert HOSTILE.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in rendered.dom


def test_the_scan_report_renders(browser: str, tmp_path: Path, keyword_model_dir: Path) -> None:
    data = write_jsonl(tmp_path / "export.jsonl", [grooming("c-1"), ordinary("c-2")])
    config = write_config(tmp_path, keyword_model_dir)
    prefix = tmp_path / "report"
    args = ["--config", str(config), "scan", str(data), "--db", str(tmp_path / "scan.sqlite3")]
    assert main([*args, "--report", str(prefix)]) == 0
    rendered = render(browser, Path(f"{prefix}.html"), profile=tmp_path / "profile")
    assert_shown(rendered, "u-adult")
    # The flagged pair's risk chart is drawn inline (no console message: nothing blocked).
    assert rendered.dom.count("<svg") == 1 and "<polyline" in rendered.dom
