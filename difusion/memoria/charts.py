"""The memoria's figures as SVG, written by hand: no plotting library, no script, the same
bytes for the same figures (the HTML embeds them; the PDF renders them as vectors)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 860, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 48
COLORS = ("#1f5f99", "#c0392b", "#7d8c2f", "#8e44ad", "#d68910")
MARK_COLORS = {"entrega": "#2e7d32", "incidente": "#c0392b"}


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]


@dataclass(frozen=True)
class Mark:
    """A vertical mark at position ``index`` of the x axis (a delivery, an incident)."""

    index: float
    kind: str  # entrega | incidente
    label: str


Number = Callable[[float], str]


def _frame(title: str, body: list[str], legend: Sequence[tuple[str, str]]) -> str:
    items = "".join(
        f'<rect x="{LEFT + 170 * i}" y="{HEIGHT - 14}" width="10" height="10" fill="{color}"/>'
        f'<text x="{LEFT + 14 + 170 * i}" y="{HEIGHT - 5}">{escape(name)}</text>'
        for i, (name, color) in enumerate(legend)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}" '
        'font-family="DejaVu Sans, Arial, sans-serif" font-size="11">'
        f'<title>{escape(title)}</title><rect width="100%" height="100%" fill="#fff"/>'
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>'
        + "".join(body)
        + items
        + "</svg>"
    )


def _axes(top_value: float, number: Number, labels: Sequence[str], every: int) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    out = []
    for step in range(5):
        value = top_value * step / 4
        y = TOP + plot_h - plot_h * step / 4
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(number(value))}</text>'
        )
    count = max(len(labels), 1)
    for i, label in enumerate(labels):
        if i % every == 0:
            x = LEFT + plot_w * (i + 0.5) / count
            out.append(
                f'<text x="{x:.1f}" y="{TOP + plot_h + 14}" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    return out


def _every(count: int, room: int = 16) -> int:
    return max(1, -(-count // room))


def _top(values: Sequence[float]) -> float:
    peak = max(values, default=0) or 1
    magnitude = 10 ** (len(str(int(peak))) - 1)
    return float(-(-peak // magnitude) * magnitude)


def bar_chart(title: str, labels: Sequence[str], series: Sequence[Series], number: Number) -> str:
    """Grouped bars: one group per label, one bar per series."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _top([v for s in series for v in s.values])
    body = _axes(top, number, labels, _every(len(labels)))
    group = plot_w / max(len(labels), 1)
    bar = group * 0.8 / max(len(series), 1)
    for k, s in enumerate(series):
        for i, value in enumerate(s.values):
            h = plot_h * value / top
            x = LEFT + group * i + group * 0.1 + bar * k
            body.append(
                f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{max(bar - 1, 0.5):.1f}" '
                f'height="{h:.1f}" fill="{COLORS[k % len(COLORS)]}">'
                f"<title>{escape(labels[i])}: {escape(number(value))}</title></rect>"
            )
    legend = [(s.name, COLORS[k % len(COLORS)]) for k, s in enumerate(series)]
    return _frame(title, body, legend if len(series) > 1 else [])


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    number: Number,
    marks: Sequence[Mark] = (),
) -> str:
    """Lines over the labels, with vertical marks (deliveries, incidents) on the same axis."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _top([v for s in series for v in s.values])
    body = _axes(top, number, labels, _every(len(labels), 12))
    count = max(len(labels), 1)
    for mark in marks:
        x = LEFT + plot_w * (mark.index + 0.5) / count
        color = MARK_COLORS.get(mark.kind, "#555")
        dash = "" if mark.kind == "incidente" else ' stroke-dasharray="3,3"'
        body.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="{color}"'
            f"{dash}><title>{escape(mark.label)}</title></line>"
        )
    for k, s in enumerate(series):
        points = " ".join(
            f"{LEFT + plot_w * (i + 0.5) / count:.1f},{TOP + plot_h - plot_h * v / top:.1f}"
            for i, v in enumerate(s.values)
        )
        body.append(
            f'<polyline points="{points}" fill="none" stroke="{COLORS[k % len(COLORS)]}" '
            'stroke-width="1.5"/>'
        )
    legend = [(s.name, COLORS[k % len(COLORS)]) for k, s in enumerate(series)]
    kinds = sorted({m.kind for m in marks})
    legend += [(kind.capitalize() + "s", MARK_COLORS.get(kind, "#555")) for kind in kinds]
    return _frame(title, body, legend)
