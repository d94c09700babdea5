"""A pair's risk trajectory as a small chart for moderators: one self-contained SVG document.

No scripts, no styles, no external references (fonts, images, links), and every piece of text escaped, so
the SVG can be saved to a file, embedded in a moderator's page, or served under
``Content-Security-Policy: default-src 'none'``. The output is a pure function of its inputs (the same points
give the same bytes), so it is tested as text.

The x axis is the point's position (oldest left, newest right), not its time: risk points are kept only when
the risk moved, and a message that arrived late would otherwise draw the line backwards. The first and last
times are written under the axis.
"""

from __future__ import annotations

import html
import itertools
import math
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from vigil.bots.core.models import RiskPoint

__all__ = [
    "EMPTY_CHART_TEXT",
    "PNG_MEDIA_TYPE",
    "SVG_MEDIA_TYPE",
    "ChartLayout",
    "risk_chart_png",
    "risk_chart_svg",
]

SVG_MEDIA_TYPE = "image/svg+xml"
EMPTY_CHART_TEXT = "no risk recorded yet"

# XML 1.0 has no way to write these, escaped or not: they are dropped from text.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_LINE = "#1d4ed8"
_ABOVE = "#b91c1c"
_AXIS = "#374151"
_GRID = "#d1d5db"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChartLayout:
    """The drawing's size in pixels; the plot box is what is left inside the margins."""

    width: int = 480
    height: int = 240
    left: int = 56
    right: int = 16
    top: int = 36
    bottom: int = 44

    @property
    def plot_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> int:
        return self.height - self.top - self.bottom


def _text(value: str) -> str:
    """Text for an element or an attribute: XML-legal characters only, markup characters escaped."""
    return html.escape(_NOT_XML.sub("", value), quote=True)


def _n(value: float) -> str:
    return f"{value:.1f}"


def _unit(value: float) -> float:
    """A risk or threshold on the 0..1 axis: outside values are pinned to its ends, NaN to 0."""
    if not math.isfinite(value):
        return 1.0 if value > 0 else 0.0
    return min(1.0, max(0.0, value))


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def _label(x: float, y: float, text: str, *, anchor: str = "start", size: int = 11, extra: str = "") -> str:
    return (
        f'<text x="{_n(x)}" y="{_n(y)}" font-size="{size}" text-anchor="{anchor}" fill="{_AXIS}"{extra}>'
        f"{_text(text)}</text>"
    )


def risk_chart_svg(
    points: Sequence[RiskPoint],
    *,
    threshold: float,
    title: str = "Risk over time",
    layout: ChartLayout | None = None,
) -> str:
    """``points`` (oldest first) as an SVG line chart: risk on a 0..1 axis, the alert threshold dashed."""
    box = layout or ChartLayout()
    left, top, width, height = box.left, box.top, box.plot_width, box.plot_height
    bottom, right = top + height, left + width

    def y_of(risk: float) -> float:
        return bottom - _unit(risk) * height

    def x_of(index: int) -> float:
        if len(points) == 1:
            return left + width / 2
        return left + index * width / (len(points) - 1)

    shown_threshold = _unit(threshold)
    if points:
        first, last = points[0], points[-1]
        summary = (
            f"{len(points)} risk point(s) from {_when(first.timestamp)} to {_when(last.timestamp)}; "
            f"latest risk {_unit(last.risk):.2f}; alert threshold {shown_threshold:.2f}."
        )
    else:
        summary = f"{EMPTY_CHART_TEXT.capitalize()}; alert threshold {shown_threshold:.2f}."
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{box.width}" height="{box.height}" '
        f'viewBox="0 0 {box.width} {box.height}" role="img" font-family="sans-serif">',
        f"<title>{_text(title)}</title>",
        f"<desc>{_text(summary)}</desc>",
        f'<rect x="0" y="0" width="{box.width}" height="{box.height}" fill="#ffffff"/>',
        _label(left, top - 16, title, size=13),
    ]
    # The axes, 0..1, with a faint line at 0.5.
    for tick in (0.0, 0.5, 1.0):
        y = y_of(tick)
        if tick == 0.5:
            parts.append(
                f'<line x1="{_n(left)}" y1="{_n(y)}" x2="{_n(right)}" y2="{_n(y)}" stroke="{_GRID}"/>'
            )
        parts.append(_label(left - 6, y + 4, f"{tick:.1f}", anchor="end"))
    parts.append(
        f'<polyline points="{_n(left)},{_n(top)} {_n(left)},{_n(bottom)} {_n(right)},{_n(bottom)}" '
        f'fill="none" stroke="{_AXIS}"/>'
    )
    middle = top + height / 2
    parts.append(
        _label(16, middle, "risk", anchor="middle", extra=f' transform="rotate(-90 16 {_n(middle)})"')
    )
    # The alert threshold: dashed, labelled in words above its left end (where risk usually starts low).
    ty = y_of(shown_threshold)
    parts.append(
        f'<line x1="{_n(left)}" y1="{_n(ty)}" x2="{_n(right)}" y2="{_n(ty)}" stroke="{_ABOVE}" '
        'stroke-dasharray="6 4" class="threshold"/>'
    )
    parts.append(_label(left + 4, ty - 4, f"alert threshold {shown_threshold:.2f}"))
    if not points:
        parts.append(_label(left + width / 2, middle + 4, EMPTY_CHART_TEXT, anchor="middle", size=13))
    else:
        coordinates = [(x_of(i), y_of(p.risk)) for i, p in enumerate(points)]
        parts.append(
            '<polyline points="'
            + " ".join(f"{_n(x)},{_n(y)}" for x, y in coordinates)
            + f'" fill="none" stroke="{_LINE}" stroke-width="2" class="risk"/>'
        )
        for point, (x, y) in zip(points, coordinates, strict=True):
            colour = _ABOVE if _unit(point.risk) >= shown_threshold else _LINE
            parts.append(
                f'<circle cx="{_n(x)}" cy="{_n(y)}" r="3" fill="{colour}">'
                f"<title>{_text(f'{point.timestamp:%Y-%m-%d %H:%M:%S} UTC: risk {_unit(point.risk):.2f}')}"
                "</title></circle>"
            )
        under = bottom + 16
        if len(points) == 1:
            parts.append(_label(left + width / 2, under, _when(points[0].timestamp), anchor="middle"))
        else:
            parts.append(_label(left, under, _when(points[0].timestamp)))
            parts.append(_label(right, under, _when(points[-1].timestamp), anchor="end"))
        parts.append(_label(left + width / 2, under + 16, "oldest to newest change in risk", anchor="middle"))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


PNG_MEDIA_TYPE = "image/png"
_RGB = tuple[int, int, int]


def _rgb(colour: str) -> _RGB:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


class _Canvas:
    """An RGB pixel buffer with the two strokes a chart needs; encoded as PNG with the standard library."""

    def __init__(self, *, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self._pixels = bytearray(b"\xff" * (width * height * 3))

    def dot(self, x: int, y: int, colour: _RGB, *, size: int = 1) -> None:
        for dy in range(-(size // 2), size - size // 2):
            for dx in range(-(size // 2), size - size // 2):
                px, py = x + dx, y + dy
                if 0 <= px < self.width and 0 <= py < self.height:
                    start = (py * self.width + px) * 3
                    self._pixels[start : start + 3] = bytes(colour)

    def line(
        self,
        start: tuple[float, float],
        end: tuple[float, float],
        colour: _RGB,
        *,
        size: int = 1,
        dash: int = 0,
    ) -> None:
        (x0, y0), (x1, y1) = start, end
        steps = max(1, round(max(abs(x1 - x0), abs(y1 - y0))))
        for step in range(steps + 1):
            if dash and (step // dash) % 2:
                continue
            t = step / steps
            self.dot(round(x0 + (x1 - x0) * t), round(y0 + (y1 - y0) * t), colour, size=size)

    def png(self) -> bytes:
        rows = b"".join(
            b"\x00" + bytes(self._pixels[y * self.width * 3 : (y + 1) * self.width * 3])
            for y in range(self.height)
        )

        def chunk(kind: bytes, body: bytes) -> bytes:
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows, 9))
            + chunk(b"IEND", b"")
        )


def risk_chart_png(
    points: Sequence[RiskPoint], *, threshold: float, layout: ChartLayout | None = None
) -> bytes:
    """The same chart as ``risk_chart_svg`` as a PNG, for chats that show only bitmaps (Discord), without
    its words: the message it comes with says the numbers. Grid at 0.25 steps, the threshold dashed."""
    box = layout or ChartLayout(width=480, height=200, left=12, right=12, top=12, bottom=12)
    canvas = _Canvas(width=box.width, height=box.height)
    left, top, width, height = box.left, box.top, box.plot_width, box.plot_height
    bottom, right = top + height, left + width

    def y_of(risk: float) -> float:
        return bottom - _unit(risk) * height

    for quarter in (0.25, 0.5, 0.75):
        canvas.line((left, y_of(quarter)), (right, y_of(quarter)), _rgb(_GRID))
    canvas.line((left, top), (left, bottom), _rgb(_AXIS))
    canvas.line((left, bottom), (right, bottom), _rgb(_AXIS))
    level = y_of(threshold)
    canvas.line((left, level), (right, level), _rgb(_ABOVE), dash=6)
    risks = [_unit(point.risk) for point in points]
    if len(risks) == 1:
        canvas.dot(round(left + width / 2), round(y_of(risks[0])), _rgb(_LINE), size=5)
    coordinates = [
        (left + width * index / max(1, len(risks) - 1), y_of(risk)) for index, risk in enumerate(risks)
    ]
    for start, end in itertools.pairwise(coordinates):
        canvas.line(start, end, _rgb(_LINE), size=3)
    for (x, y), risk in zip(coordinates, risks, strict=True):
        canvas.dot(round(x), round(y), _rgb(_ABOVE if risk >= _unit(threshold) else _LINE), size=5)
    return canvas.png()
