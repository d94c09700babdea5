"""The pair risk chart: a valid, self-contained SVG whose drawing stays inside its box, whatever the input."""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from vigil.bots.core.charts import EMPTY_CHART_TEXT, ChartLayout, risk_chart_png, risk_chart_svg
from vigil.bots.core.models import PairKey, RiskPoint

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)
KEY = PairKey.of(platform="test", space_id="s-1", first="adult", second="kid")
LAYOUT = ChartLayout()


def points(*risks: float) -> list[RiskPoint]:
    return [
        RiskPoint(
            key=KEY,
            timestamp=START + timedelta(minutes=i),
            message_id=f"m-{i}",
            risk=risk,
            suspect_id="adult",
        )
        for i, risk in enumerate(risks)
    ]


def parsed(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def texts(root: ET.Element) -> list[str]:
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def y_of(risk: float) -> float:
    return LAYOUT.top + LAYOUT.plot_height * (1 - risk)


def inside_the_plot(x: float, y: float) -> bool:
    return (
        LAYOUT.left <= x <= LAYOUT.left + LAYOUT.plot_width
        and LAYOUT.top <= y <= LAYOUT.top + LAYOUT.plot_height
    )


def circles(root: ET.Element) -> list[tuple[float, float]]:
    return [(float(c.attrib["cx"]), float(c.attrib["cy"])) for c in root.iter(f"{SVG}circle")]


def test_the_chart_is_valid_svg_with_axes_labelled_in_words() -> None:
    root = parsed(risk_chart_svg(points(0.1, 0.5, 0.95), threshold=0.9, title="Risk: adult and kid"))
    shown = texts(root)
    assert "risk" in shown and "alert threshold 0.90" in shown
    assert {"0.0", "0.5", "1.0"} <= set(shown)
    assert "2026-03-01 18:00 UTC" in shown and "2026-03-01 18:02 UTC" in shown
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == "Risk: adult and kid"
    description = root.find(f"{SVG}desc")
    assert description is not None and "latest risk 0.95" in (description.text or "")


def test_the_threshold_is_a_dashed_line_at_its_height() -> None:
    root = parsed(risk_chart_svg(points(0.2, 0.4), threshold=0.9))
    (line,) = [e for e in root.iter(f"{SVG}line") if e.attrib.get("class") == "threshold"]
    assert line.attrib["stroke-dasharray"]
    assert float(line.attrib["y1"]) == float(line.attrib["y2"]) == pytest.approx(y_of(0.9))
    assert float(line.attrib["x1"]) == LAYOUT.left
    assert float(line.attrib["x2"]) == LAYOUT.left + LAYOUT.plot_width


def test_points_are_scaled_into_the_box_oldest_left_newest_right() -> None:
    risks = (0.0, 0.25, 1.0, 0.5)
    root = parsed(risk_chart_svg(points(*risks), threshold=0.7))
    drawn = circles(root)
    assert len(drawn) == len(risks)
    assert all(inside_the_plot(x, y) for x, y in drawn)
    assert [y for _, y in drawn] == pytest.approx([y_of(r) for r in risks])
    xs = [x for x, _ in drawn]
    assert xs == sorted(xs) and xs[0] == LAYOUT.left and xs[-1] == LAYOUT.left + LAYOUT.plot_width
    (line,) = [e for e in root.iter(f"{SVG}polyline") if e.attrib.get("class") == "risk"]
    pairs = [tuple(map(float, xy.split(","))) for xy in line.attrib["points"].split()]
    assert pairs == drawn


@pytest.mark.parametrize("risks", [(1.7, -0.3), (float("nan"), float("inf"), float("-inf"))])
def test_risks_outside_zero_to_one_stay_inside_the_box(risks: Sequence[float]) -> None:
    root = parsed(risk_chart_svg(points(*risks), threshold=1.5))
    assert all(inside_the_plot(x, y) for x, y in circles(root))
    assert "alert threshold 1.00" in texts(root)


def test_a_single_point_is_drawn_in_the_middle() -> None:
    root = parsed(risk_chart_svg(points(0.3), threshold=0.7))
    ((x, y),) = circles(root)
    assert x == LAYOUT.left + LAYOUT.plot_width / 2 and y == pytest.approx(y_of(0.3))


def test_all_text_is_escaped_and_characters_xml_cannot_hold_are_dropped() -> None:
    hostile = '</title><script>alert("x")</script><a href="https://evil.example">&amp;\x00\x1b'
    svg = risk_chart_svg(points(0.5), threshold=0.7, title=f"Risk: {hostile}")
    root = parsed(svg)
    title = root.find(f"{SVG}title")
    assert title is not None
    assert title.text == 'Risk: </title><script>alert("x")</script><a href="https://evil.example">&amp;'
    assert not list(root.iter(f"{SVG}script")) and not list(root.iter(f"{SVG}a"))
    assert "<script" not in svg


def test_nothing_outside_the_document_is_referenced_and_nothing_runs() -> None:
    svg = risk_chart_svg(points(0.1, 0.9), threshold=0.7, title="Risk")
    root = parsed(svg)
    for element in root.iter():
        assert element.tag.removeprefix(SVG) not in {"script", "image", "use", "a", "style", "foreignObject"}
        for name in element.attrib:
            assert "href" not in name and not name.startswith("on"), name
    assert re.findall(r"https?://[^\"]+", svg) == ["http://www.w3.org/2000/svg"]
    assert "url(" not in svg


def test_an_empty_history_says_so_in_a_valid_svg() -> None:
    svg = risk_chart_svg([], threshold=0.9)
    root = parsed(svg)
    assert EMPTY_CHART_TEXT in texts(root) and "alert threshold 0.90" in texts(root)
    assert not circles(root)
    assert not [e for e in root.iter(f"{SVG}polyline") if e.attrib.get("class") == "risk"]


def test_the_same_points_give_the_same_bytes() -> None:
    history = points(0.1, 0.35, 0.8)
    assert risk_chart_svg(history, threshold=0.7) == risk_chart_svg(list(history), threshold=0.7)
    assert risk_chart_svg(history, threshold=0.7) != risk_chart_svg(history, threshold=0.8)


def test_the_png_chart_is_a_valid_image_of_the_layout_size() -> None:
    layout = ChartLayout(width=300, height=120, left=10, right=10, top=10, bottom=10)
    png = risk_chart_png([], threshold=0.9, layout=layout)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (300, 120)
    # Deterministic; a line drawn makes it differ from the empty chart.
    assert png == risk_chart_png([], threshold=0.9, layout=layout)
    length = struct.unpack(">I", png[33:37])[0]
    empty_pixels = zlib.decompress(png[41 : 41 + length])
    assert len(empty_pixels) == 120 * (1 + 300 * 3)


def test_the_png_chart_draws_the_risk_line_and_marks_points_above_the_threshold() -> None:
    layout = ChartLayout(width=200, height=100, left=10, right=10, top=10, bottom=10)

    def pixels(png: bytes) -> bytes:
        length = struct.unpack(">I", png[33:37])[0]
        return zlib.decompress(png[41 : 41 + length])

    empty = pixels(risk_chart_png([], threshold=0.9, layout=layout))
    below = pixels(risk_chart_png(points(0.1, 0.5, 0.6), threshold=0.9, layout=layout))
    above = pixels(risk_chart_png(points(0.1, 0.5, 0.95), threshold=0.9, layout=layout))
    blue, red = bytes((0x1D, 0x4E, 0xD8)), bytes((0xB9, 0x1C, 0x1C))
    assert blue not in empty and blue in below
    # The dashed threshold is red in both; a point above it adds a red dot off the threshold's row.
    assert above.count(red) > below.count(red)
