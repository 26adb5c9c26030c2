"""Small inline-SVG chart helpers for the report page (no JavaScript, no external files).

Every helper returns :class:`markupsafe.Markup` holding one ``<svg>`` element.  Each drawn value
carries its number in a ``data-value`` attribute (and what it is in other ``data-`` attributes),
so a test reading the page as a browser built it can compare the charts with ``--json``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

__all__ = ["PALETTE", "bar_rows", "diverging_columns", "funnel", "number", "split_rows", "upset"]

PALETTE = ("#2f6fde", "#e0702b", "#2a9d6f", "#c23b5a", "#7a5bd6", "#8c8c8c", "#c9a227", "#3bb3c3")
FONT = "font-family=\"'Noto Sans CJK SC','Noto Sans SC','PingFang SC','Microsoft YaHei',sans-serif\""


def number(value: int | float) -> str:
    """``12345`` → ``12,345`` (the page shows numbers this way; data attributes keep them plain)."""
    return f"{value:,}"


def _attrs(data: dict[str, Any]) -> str:
    return "".join(f' data-{escape(k)}="{escape(v)}"' for k, v in data.items())


def _svg(width: float, height: float, body: list[str], chart: str, label: str) -> Markup:
    return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{escape(chart)}" '
                  f'role="img" aria-label="{escape(label)}" width="{width:.0f}" height="{height:.0f}" '
                  f'viewBox="0 0 {width:.0f} {height:.0f}" {FONT} font-size="12">' + "".join(body) + "</svg>")


def _text(x: float, y: float, text: Any, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


def bar_rows(chart: str, label: str, rows: Sequence[tuple[str, int, dict[str, Any]]], *,
             width: int = 560, label_width: int = 170, row_height: int = 22, color: str = PALETTE[0]) -> Markup:
    """Horizontal bars, one row each: ``(label, value, data attributes)``."""
    top = max((v for _, v, _ in rows), default=0) or 1
    span = width - label_width - 70
    body = []
    for i, (name, value, data) in enumerate(rows):
        y = i * row_height
        w = span * value / top
        body.append(f'<g class="bar"{_attrs({**data, "value": value})}>'
                    + _text(label_width - 8, y + row_height * 0.68, name, "end")
                    + f'<rect x="{label_width}" y="{y + 3}" width="{w:.1f}" height="{row_height - 6}" fill="{color}"/>'
                    + _text(label_width + w + 6, y + row_height * 0.68, number(value)) + "</g>")
    return _svg(width, max(row_height, len(rows) * row_height), body, chart, label)


def split_rows(chart: str, label: str, rows: Sequence[tuple[str, int, int, dict[str, Any]]], colors: tuple[str, str],
               *, width: int = 560, label_width: int = 170, row_height: int = 22) -> Markup:
    """Horizontal bars split in two parts, one row each: ``(label, first, second, data attributes)``;
    ``data-value`` carries the first part, ``data-rest`` the second."""
    top = max((a + b for _, a, b, _ in rows), default=0) or 1
    span = width - label_width - 90
    body = []
    for i, (name, first, second, data) in enumerate(rows):
        y = i * row_height
        w1, w2 = span * first / top, span * second / top
        body.append(f'<g class="bar"{_attrs({**data, "value": first, "rest": second})}>'
                    + _text(label_width - 8, y + row_height * 0.68, name, "end")
                    + f'<rect x="{label_width}" y="{y + 3}" width="{w1:.1f}" height="{row_height - 6}" fill="{colors[0]}"/>'
                    + f'<rect x="{label_width + w1:.1f}" y="{y + 3}" width="{w2:.1f}" height="{row_height - 6}" '
                      f'fill="{colors[1]}"/>'
                    + _text(label_width + w1 + w2 + 6, y + row_height * 0.68, f"{number(first)} / {number(second)}")
                    + "</g>")
    return _svg(width, max(row_height, len(rows) * row_height), body, chart, label)


def funnel(chart: str, label: str, platform: str, steps: Sequence[tuple[str, str, int]], *,
           width: int = 260, row_height: int = 24) -> Markup:
    """A centred funnel of ``(key, label, value)`` steps, widest value full width."""
    top = max((v for _, _, v in steps), default=0) or 1
    body = []
    for i, (key, name, value) in enumerate(steps):
        w = max(2.0, (width - 10) * value / top) if value else 0.0
        y = i * row_height
        body.append(f'<g class="step"{_attrs({"platform": platform, "tier": key, "value": value})}>'
                    f'<rect x="5" y="{y + 2}" width="{width - 10}" height="{row_height - 4}" fill="#f1f3f6"/>'
                    f'<rect x="{(width - w) / 2:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_height - 4}" '
                    f'fill="{PALETTE[i % len(PALETTE)]}" opacity="0.85"/>'
                    + _text(width / 2, y + row_height * 0.68, f"{name}  {number(value)}", "middle",
                            ' fill="#111" font-weight="600"') + "</g>")
    return _svg(width, len(steps) * row_height, body, chart, label)


def diverging_columns(chart: str, label: str, periods: Sequence[dict[str, Any]], flows: Sequence[str],
                      colors: dict[str, str], *, width: int = 1100, height: int = 260) -> Markup:
    """Stacked columns per period: positive flows above the axis, negative below.

    :param periods: ``{"period": ..., <flow>: signed points, ...}`` per period, in order.
    """
    left, bottom_pad = 60, 40
    ups = [sum(max(0, p[f]) for f in flows) for p in periods]
    downs = [sum(min(0, p[f]) for f in flows) for p in periods]
    top, low = max(ups, default=0), min(downs, default=0)
    scale = (height - bottom_pad - 10) / ((top - low) or 1)
    axis = 10 + top * scale
    step = min(48.0, (width - left - 10) / max(1, len(periods)))
    width = int(min(width, left + step * max(1, len(periods)) + 40))
    body = [f'<line x1="{left}" x2="{width - 10}" y1="{axis:.1f}" y2="{axis:.1f}" stroke="#444"/>',
            _text(left - 6, 14, number(top), "end", ' fill="#666"'),
            _text(left - 6, axis + 4, "0", "end", ' fill="#666"')]
    if low:
        body.append(_text(left - 6, axis - low * scale, number(low), "end", ' fill="#666"'))
    every = max(1, math.ceil(72 / step))  # room for one label of 'YYYY-MM-DD' per 72 px
    for i, p in enumerate(periods):
        x = left + i * step
        data = {"period": p["period"], **{f: p[f] for f in flows}}
        parts, up, down = [], axis, axis
        for f in flows:
            v = p[f]
            if v > 0:
                up -= v * scale
                parts.append(f'<rect x="{x + 1:.1f}" y="{up:.1f}" width="{max(1.0, step - 2):.1f}" '
                             f'height="{v * scale:.1f}" fill="{colors[f]}"><title>{escape(p["period"])} {escape(f)} '
                             f'{number(v)}</title></rect>')
            elif v < 0:
                parts.append(f'<rect x="{x + 1:.1f}" y="{down:.1f}" width="{max(1.0, step - 2):.1f}" '
                             f'height="{-v * scale:.1f}" fill="{colors[f]}"><title>{escape(p["period"])} {escape(f)} '
                             f'{number(v)}</title></rect>')
                down -= v * scale
        if i % every == 0:
            parts.append(_text(x + step / 2, height - bottom_pad + 16, p["period"],
                               "middle", ' fill="#444" font-size="10"'))
        body.append(f'<g class="period"{_attrs(data)}>' + "".join(parts) + "</g>")
    return _svg(width, height, body, chart, label)


def upset(chart: str, label: str, platforms: Sequence[str], set_sizes: dict[str, int],
          combinations: Sequence[dict[str, Any]], *, column: int = 34, row: int = 24, bars_height: int = 140) -> Markup:
    """An UpSet matrix: a column per combination of platforms (its member count as a bar above,
    dots marking its platforms below), a row per platform with its member count on the right."""
    left = 110
    top = max((c["members"] for c in combinations), default=0) or 1
    matrix_top = bars_height + 24
    width = left + column * max(1, len(combinations)) + 130
    height = matrix_top + row * len(platforms) + 6
    body = []
    for j, name in enumerate(platforms):
        y = matrix_top + j * row
        if j % 2 == 0:
            body.append(f'<rect x="{left - 4}" y="{y}" width="{column * len(combinations) + 8}" height="{row}" fill="#f3f5f9"/>')
        size = set_sizes.get(name, 0)
        body.append(f'<g class="set"{_attrs({"platform": name, "value": size})}>'
                    + _text(left - 10, y + row * 0.68, name, "end")
                    + _text(left + column * len(combinations) + 12, y + row * 0.68, number(size), "start", ' fill="#444"')
                    + "</g>")
    for i, combo in enumerate(combinations):
        x = left + i * column + column / 2
        h = (bars_height - 16) * combo["members"] / top
        members = set(combo["platforms"])
        parts = [f'<rect x="{x - column * 0.35:.1f}" y="{bars_height - h:.1f}" width="{column * 0.7:.1f}" '
                 f'height="{h:.1f}" fill="#333"/>',
                 _text(x, bars_height - h - 4, number(combo["members"]), "middle", ' font-size="10"')]
        ys = []
        for j, name in enumerate(platforms):
            cy = matrix_top + j * row + row / 2
            on = name in members
            if on:
                ys.append(cy)
            parts.append(f'<circle cx="{x:.1f}" cy="{cy:.1f}" r="6" fill="{"#333" if on else "#d4d8de"}"/>')
        if len(ys) > 1:
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{min(ys):.1f}" y2="{max(ys):.1f}" stroke="#333" stroke-width="3"/>')
        data = {"platforms": ",".join(combo["platforms"]), "degree": len(combo["platforms"]), "value": combo["members"]}
        body.append(f'<g class="combination"{_attrs(data)}>' + "".join(parts) + "</g>")
    return _svg(width, height, body, chart, label)
