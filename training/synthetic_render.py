"""Draw a scene spec (from `training.synthetic_scenes`) as a square RGB image with PIL.

The only renderer of the synthetic data: the MC generator and the pretraining stream both call
`render(scene, image_size)`. Every length is a fraction of the image side, so a scene looks the same
at 64 px (tests) and at 448 px; text uses PIL's bundled FreeType font, sized for 224 px to be read by
a 224 px model (about 11 px body text) and never below 6 px.
"""

from __future__ import annotations

import math
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from training.synthetic_scenes import COLOURS, BarChart, Clock, PieChart, Scene, ShapesScene, Table

INK = (30, 30, 30)
GRID = (205, 205, 205)
HEADER = (215, 225, 240)
STRIPE = (244, 246, 250)


@lru_cache(maxsize=64)
def font(size_px: int) -> ImageFont.ImageFont:
    """PIL's default font at `size_px` (Pillow >= 10.1 with FreeType), else its fixed bitmap font."""
    try:
        return ImageFont.load_default(size=max(6, size_px))
    except (TypeError, OSError):
        return ImageFont.load_default()


def _text_width(draw: ImageDraw.ImageDraw, text: str, text_font) -> float:
    return draw.textlength(text, font=text_font)


def _font_px(text_font) -> float:
    """Nominal height in pixels; the bitmap fallback font has no `size`."""
    return getattr(text_font, "size", 11)


def _darker(rgb: tuple[int, int, int], factor: float = 0.6) -> tuple[int, int, int]:
    return tuple(int(c * factor) for c in rgb)


def _regular_polygon(cx: float, cy: float, radius: float, corners: int, turn: float = 0.0):
    """Corner points, the first one straight up (rotated by `turn` of a full circle)."""
    return [
        (
            cx + radius * math.sin(2 * math.pi * (i / corners + turn)),
            cy - radius * math.cos(2 * math.pi * (i / corners + turn)),
        )
        for i in range(corners)
    ]


def _shape_outline(kind: str, cx: float, cy: float, r: float):
    if kind == "square":
        return _regular_polygon(cx, cy, r * 1.2, 4, turn=1 / 8)
    if kind == "diamond":
        return [(cx, cy - r * 1.15), (cx + r * 0.8, cy), (cx, cy + r * 1.15), (cx - r * 0.8, cy)]
    if kind == "triangle":
        return _regular_polygon(cx, cy + r * 0.2, r * 1.25, 3)
    if kind == "hexagon":
        return _regular_polygon(cx, cy, r * 1.05, 6, turn=1 / 12)
    if kind == "star":
        outer = _regular_polygon(cx, cy, r * 1.25, 5)
        inner = _regular_polygon(cx, cy, r * 0.5, 5, turn=1 / 10)
        return [p for pair in zip(outer, inner) for p in pair]
    raise ValueError(f"unknown shape {kind!r}")


def render_shapes(scene: ShapesScene, size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), scene.background)
    draw = ImageDraw.Draw(image)
    outline_width = max(1, size // 112)
    for shape in scene.shapes:
        cx, cy, r = shape.cx * size, shape.cy * size, shape.radius * size
        fill = COLOURS[shape.colour]
        if shape.kind == "circle":
            draw.ellipse(
                (cx - r, cy - r, cx + r, cy + r), fill=fill, outline=_darker(fill), width=outline_width
            )
        else:
            draw.polygon(
                _shape_outline(shape.kind, cx, cy, r), fill=fill, outline=_darker(fill), width=outline_width
            )
    return image


def _nice_step(high: int, max_ticks: int) -> int:
    """The smallest round tick spacing that needs at most `max_ticks` intervals up to `high`."""
    return next(step for step in (1, 2, 5, 10, 20, 25, 50) if high / step <= max_ticks)


def _title(draw: ImageDraw.ImageDraw, text: str, size: int) -> float:
    """Draw a centred title; returns the y below it."""
    title_font = font(round(13 * size / 224))
    width = _text_width(draw, text, title_font)
    draw.text(((size - width) / 2, 0.02 * size), text, fill=INK, font=title_font)
    return 0.02 * size + _font_px(title_font) * 1.5


def render_bar_chart(chart: BarChart, size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    top = _title(draw, chart.title.capitalize(), size)
    label_font = font(round(11 * size / 224))
    # Tick labels run side by side along a horizontal axis, so it gets fewer of them.
    step = _nice_step(max(chart.values), 5 if chart.horizontal else 8)
    axis_max = step * math.ceil(max(chart.values) / step)
    count = len(chart.values)
    line = _font_px(label_font)

    if chart.horizontal:
        left = 0.04 * size + max(_text_width(draw, label, label_font) for label in chart.labels) + 0.03 * size
        right, bottom = size * 0.9, size - 1.6 * line
        slot = (bottom - top) / count
        for i, (label, value, colour) in enumerate(zip(chart.labels, chart.values, chart.colours)):
            fill, outline = COLOURS[colour], _darker(COLOURS[colour])
            y0 = top + i * slot + 0.18 * slot
            y1 = top + (i + 1) * slot - 0.18 * slot
            x1 = left + (right - left) * value / axis_max
            draw.rectangle((left, y0, x1, y1), fill=fill, outline=outline)
            label_x = left - 0.02 * size - _text_width(draw, label, label_font)
            draw.text((label_x, (y0 + y1) / 2), label, fill=INK, font=label_font, anchor="lm")
            draw.text((x1 + 0.015 * size, (y0 + y1) / 2), str(value), fill=INK, font=label_font, anchor="lm")
        draw.line((left, top, left, bottom), fill=INK)
        for tick in range(0, axis_max + 1, step):
            x = left + (right - left) * tick / axis_max
            draw.line((x, bottom, x, bottom + 0.015 * size), fill=INK)
            draw.text((x, bottom + 0.02 * size), str(tick), fill=INK, font=label_font, anchor="mt")
        return image

    left, right, bottom = 0.12 * size, size * 0.97, size - 1.8 * line
    plot_top = top + line
    for tick in range(0, axis_max + 1, step):
        y = bottom - (bottom - plot_top) * tick / axis_max
        draw.line((left, y, right, y), fill=GRID)
        draw.text((left - 0.02 * size, y), str(tick), fill=INK, font=label_font, anchor="rm")
    slot = (right - left) / count
    for i, (label, value, colour) in enumerate(zip(chart.labels, chart.values, chart.colours)):
        fill, outline = COLOURS[colour], _darker(COLOURS[colour])
        x0, x1 = left + i * slot + 0.18 * slot, left + (i + 1) * slot - 0.18 * slot
        y = bottom - (bottom - plot_top) * value / axis_max
        draw.rectangle((x0, y, x1, bottom), fill=fill, outline=outline)
        draw.text(((x0 + x1) / 2, y - 0.01 * size), str(value), fill=INK, font=label_font, anchor="mb")
        draw.text(((x0 + x1) / 2, bottom + 0.02 * size), label, fill=INK, font=label_font, anchor="mt")
    draw.line((left, bottom, right, bottom), fill=INK)
    return image


def render_pie_chart(chart: PieChart, size: int) -> Image.Image:
    """The pie takes whatever width the legend leaves, so long labels shrink the pie, never the text."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    top = _title(draw, chart.title.capitalize(), size)
    label_font = font(round(11 * size / 224))
    entries = [f"{label} {percent}%" for label, percent in zip(chart.labels, chart.percents)]
    swatch, gap = 0.045 * size, 0.04 * size
    legend_width = swatch * 1.5 + max(_text_width(draw, entry, label_font) for entry in entries)
    radius = min(0.27 * size, (size - top) * 0.45, (size - legend_width - 3 * gap) / 2)
    cx, cy = gap + radius, top + (size - top) / 2
    angle = -90.0  # the first slice starts at 12 o'clock and runs clockwise, as in most pie charts
    for percent, colour in zip(chart.percents, chart.colours):
        sweep = 3.6 * percent
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        draw.pieslice(
            box, angle, angle + sweep, fill=COLOURS[colour], outline="white", width=max(1, size // 150)
        )
        angle += sweep

    line = _font_px(label_font) * 1.7
    x = cx + radius + gap
    y = cy - line * len(entries) / 2
    for entry, colour in zip(entries, chart.colours):
        draw.rectangle(
            (x, y + line / 2 - swatch / 2, x + swatch, y + line / 2 + swatch / 2), fill=COLOURS[colour]
        )
        draw.text((x + swatch * 1.5, y + line / 2), entry, fill=INK, font=label_font, anchor="lm")
        y += line
    return image


def render_clock(clock: Clock, size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), clock.face)
    draw = ImageDraw.Draw(image)
    c, r = size / 2, size * 0.44
    draw.ellipse((c - r, c - r, c + r, c + r), fill="white", outline=INK, width=max(1, size // 60))
    number_font = font(round(15 * size / 224))
    for tick in range(60):
        angle = 2 * math.pi * tick / 60
        inner = r * (0.86 if tick % 5 == 0 else 0.92)
        sx, sy = math.sin(angle), -math.cos(angle)
        width = max(1, size // (90 if tick % 5 == 0 else 200))
        draw.line(
            (c + inner * sx, c + inner * sy, c + r * 0.97 * sx, c + r * 0.97 * sy), fill=INK, width=width
        )
        if tick % 5 == 0:
            hour = tick // 5 or 12
            draw.text(
                (c + r * 0.72 * sx, c + r * 0.72 * sy), str(hour), fill=INK, font=number_font, anchor="mm"
            )

    def hand(turns: float, length: float, width: int) -> None:
        angle = 2 * math.pi * turns
        draw.line((c, c, c + length * math.sin(angle), c - length * math.cos(angle)), fill=INK, width=width)

    hand((clock.hour % 12 + clock.minute / 60) / 12, r * 0.5, max(2, size // 40))
    hand(clock.minute / 60, r * 0.8, max(1, size // 80))
    dot = size * 0.02
    draw.ellipse((c - dot, c - dot, c + dot, c + dot), fill=INK)
    return image


def render_table(table: Table, size: int) -> Image.Image:
    """Columns are as wide as their widest cell; the font shrinks (to 8 px at 224) only if the table is too wide."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    top = _title(draw, table.title, size)
    margin, pad = 0.04 * size, 0.025 * size
    for px in range(11, 7, -1):
        cell_font = font(round(px * size / 224))
        widths = [
            max(_text_width(draw, text, cell_font) for text in (name, *table.column(name))) + 2 * pad
            for name in table.columns
        ]
        if sum(widths) <= size - 2 * margin:
            break
    spare = (size - 2 * margin - sum(widths)) / len(widths)
    widths = [w + max(0.0, spare) for w in widths]
    grid_rows = [table.columns, *table.rows]
    row_height = min((size - top - margin) / len(grid_rows), 0.11 * size)
    for r, cells in enumerate(grid_rows):
        y0 = top + r * row_height
        x = margin
        background = HEADER if r == 0 else (STRIPE if r % 2 == 0 else "white")
        draw.rectangle((margin, y0, size - margin, y0 + row_height), fill=background, outline=GRID)
        for text, width in zip(cells, widths):
            draw.text((x + pad, y0 + row_height / 2), text, fill=INK, font=cell_font, anchor="lm")
            x += width
    x = margin
    for width in widths[:-1]:
        x += width
        draw.line((x, top, x, top + len(grid_rows) * row_height), fill=GRID)
    return image


RENDERERS = {
    "shapes": render_shapes,
    "bar_chart": render_bar_chart,
    "pie_chart": render_pie_chart,
    "clock": render_clock,
    "table": render_table,
}


def render(scene: Scene, image_size: int = 224) -> Image.Image:
    """The scene as an RGB image of `image_size` x `image_size` pixels."""
    return RENDERERS[scene.family](scene, image_size)
