"""Bar charts as SVG rendered on the server.

Why server-side SVG: no JavaScript and no chart library to build or trust, the
chart is in the HTML (so it prints, works with scripts off and is testable
with a selector), and it scales to any screen width through its ``viewBox``.
Bar heights are computed from integer minor units; the only rounding is to
screen pixels, and the exact amount is in each bar's label and ``<title>``.
Colours come from CSS classes (``.chart-bar``…), so the page's style sheet —
not inline styles, which the Content-Security-Policy forbids — decides them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

WIDTH = 640
HEIGHT = 260
_TOP, _BOTTOM, _LEFT, _RIGHT = 28, 44, 12, 12


@dataclass(frozen=True)
class Bar:
    label: str  # the period, in the bar's tooltip ("2026-11")
    value: int  # minor units: decides the height
    text: str  # shown above the bar ("$12.34")
    tick: str = ""  # shorter text under the bar ("Nov ’26"); the label when empty


def bar_chart(chart_id: str, title: str, bars: Sequence[Bar], *, description: str = "") -> Markup:
    """An accessible SVG bar chart: ``role="img"`` named by its ``<title>``,
    each bar with its own ``<title>`` (a tooltip, and read by screen readers).
    Negative values (a month whose refunds gave back more fee than it earned)
    hang below the zero line."""
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM
    high = max([0, *(b.value for b in bars)])
    low = min([0, *(b.value for b in bars)])
    span = (high - low) or 1
    zero_y = _TOP + plot_h * high / span
    slot = plot_w / max(len(bars), 1)
    bar_w = max(2.0, min(56.0, slot * 0.7))
    label_every = max(1, round(len(bars) / 12))
    # Every piece is a literal Markup template; .format() escapes what is put
    # into it (ids, titles, labels), so no text can break out of the SVG.
    parts = [
        Markup(
            '<svg class="chart" id="{id}" viewBox="0 0 {w} {h}" width="100%" role="img" '
            'aria-labelledby="{id}-title {id}-desc" preserveAspectRatio="xMidYMid meet" '
            'xmlns="http://www.w3.org/2000/svg"><title id="{id}-title">{title}</title>'
            '<desc id="{id}-desc">{desc}</desc>'
            '<line class="chart-axis" x1="{x1}" y1="{y}" x2="{x2}" y2="{y}"/>'
        ).format(id=chart_id, w=WIDTH, h=HEIGHT, title=title, desc=description or title, x1=_LEFT,
                 x2=WIDTH - _RIGHT, y=f"{zero_y:.1f}"),
    ]
    for i, bar in enumerate(bars):
        x = _LEFT + slot * i + (slot - bar_w) / 2
        height = plot_h * abs(bar.value) / span
        y = zero_y - height if bar.value >= 0 else zero_y
        centre = f"{x + bar_w / 2:.1f}"
        parts.append(Markup(
            '<g class="chart-item"><rect class="{kind}" x="{x}" y="{y}" width="{w}" height="{h}" '
            'data-value="{value}"><title>{label}: {text}</title></rect>'
        ).format(kind="chart-bar" if bar.value >= 0 else "chart-bar chart-bar-negative", x=f"{x:.1f}",
                 y=f"{y:.1f}", w=f"{bar_w:.1f}", h=f"{height:.1f}", value=bar.value, label=bar.label,
                 text=bar.text))
        if bar.value != 0 and len(bars) <= 16:
            ty = (y - 6) if bar.value >= 0 else (y + height + 14)
            parts.append(Markup(
                '<text class="chart-value" x="{x}" y="{y}" text-anchor="middle">{text}</text>'
            ).format(x=centre, y=f"{ty:.1f}", text=bar.text))
        if i % label_every == 0:
            parts.append(Markup(
                '<text class="chart-label" x="{x}" y="{y}" text-anchor="middle">{text}</text>'
            ).format(x=centre, y=HEIGHT - _BOTTOM + 18, text=bar.tick or bar.label))
        parts.append(Markup("</g>"))
    if not bars:
        parts.append(Markup(
            '<text class="chart-label" x="{x}" y="{y}" text-anchor="middle">No data in this range</text>'
        ).format(x=WIDTH // 2, y=HEIGHT // 2))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)
