"""Line charts drawn with Pillow: the one place that turns numbers into a plot.

``evaluate.py`` draws a run's losses (from ``log.csv``) and its SWD per checkpoint with it. Pillow
is already a dependency (``grid.py``), so plotting adds nothing to install; matplotlib would draw
nicer charts but would be one more package for one picture.

A chart is a list of panels stacked vertically, all sharing the x axis (iterations):

    save_panels("curves.png", [
        Panel("losses", [Series("G", xs, g_losses), Series("D", xs, d_losses)]),
        Panel("SWD x 1e3", [Series("average", its, swd, markers=True)],
              hlines=[Line(20.2, "floor")], vlines=[Line(500, "16 px")]),
    ])
"""
import math
from collections import namedtuple

from PIL import Image, ImageDraw, ImageFont

from files.atomic import atomic_write

WIDTH = 900                      # px of the whole picture
PANEL_HEIGHT = 320               # px of one panel, axes and labels included
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 70, 20, 28, 36
TICKS = 6                        # about this many labelled ticks per axis
MARKER_RADIUS = 3
DASH = 6                         # px of each dash (and gap) of a horizontal reference line
BACKGROUND = (255, 255, 255)
AXIS = (0, 0, 0)
GRID = (225, 225, 225)
VLINE = (160, 160, 160)
PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127)]

Series = namedtuple("Series", ["label", "xs", "ys", "markers"], defaults=[False])
Series.__doc__ = "A line through the points (xs[i], ys[i]); ``markers`` also draws a dot on each."
Line = namedtuple("Line", ["at", "label"])
Line.__doc__ = "A reference line: horizontal (dashed) at y = ``at``, or vertical at x = ``at``."
Panel = namedtuple("Panel", ["title", "series", "hlines", "vlines"], defaults=[(), ()])
Panel.__doc__ = "One chart: a title, its series, dashed horizontal and grey vertical lines."


def nice_ticks(low, high, count=TICKS):
    """Round tick values covering [low, high]: the smallest step of 1, 2 or 5 x 10^k that needs
    at most ``count`` ticks (at least 3)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"cannot place ticks on [{low}, {high}]")
    if high <= low:
        low, high = low - 1, high + 1
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    last = math.ceil(high / step) * step
    return [first + i * step for i in range(int(round((last - first) / step)) + 1)]


def format_tick(value):
    """A tick label: integers without decimals, 12k for large values, else up to 3 digits."""
    if abs(value) >= 10_000 and value == int(value):
        return f"{value / 1000:g}k"
    if value == int(value):
        return str(int(value))
    return f"{value:.3g}"


def _font():
    return ImageFont.load_default()


def draw_panel(draw, box, panel, x_range):
    """Draw ``panel`` inside ``box`` = (left, top, right, bottom) with the shared ``x_range``."""
    font = _font()
    left, top, right, bottom = box
    plot = (left + MARGIN_LEFT, top + MARGIN_TOP, right - MARGIN_RIGHT, bottom - MARGIN_BOTTOM)
    ys = [y for series in panel.series for y in series.ys if math.isfinite(y)]
    ys += [line.at for line in panel.hlines]
    y_ticks = nice_ticks(min(ys), max(ys)) if ys else [0, 1]
    x_ticks = nice_ticks(*x_range)
    x_low, x_high = x_ticks[0], x_ticks[-1]
    y_low, y_high = y_ticks[0], y_ticks[-1]

    def to_px(x, y):
        return (plot[0] + (x - x_low) / (x_high - x_low) * (plot[2] - plot[0]),
                plot[3] - (y - y_low) / (y_high - y_low) * (plot[3] - plot[1]))

    for y in y_ticks:
        _, py = to_px(x_low, y)
        draw.line([(plot[0], py), (plot[2], py)], fill=GRID)
        label = format_tick(y)
        draw.text((plot[0] - 6 - draw.textlength(label, font=font), py - 5), label, fill=AXIS,
                  font=font)
    for x in x_ticks:
        px, _ = to_px(x, y_low)
        draw.line([(px, plot[3]), (px, plot[3] + 4)], fill=AXIS)
        label = format_tick(x)
        draw.text((px - draw.textlength(label, font=font) / 2, plot[3] + 7), label, fill=AXIS,
                  font=font)
    draw.text((plot[2] - draw.textlength("iteration", font=font), plot[3] + 20), "iteration",
              fill=AXIS, font=font)
    for line in panel.vlines:
        px, _ = to_px(line.at, y_low)
        draw.line([(px, plot[1]), (px, plot[3])], fill=VLINE)
        label_width = draw.textlength(line.label, font=font)
        label_x = px + 3 if px + 3 + label_width <= plot[2] else px - 3 - label_width
        draw.text((label_x, plot[1] + 2), line.label, fill=VLINE, font=font)
    draw.rectangle(plot, outline=AXIS)
    draw.text((plot[0], top + 8), panel.title, fill=AXIS, font=font)

    legend_x = plot[0] + draw.textlength(panel.title, font=font) + 24
    for index, series in enumerate(panel.series):
        colour = PALETTE[index % len(PALETTE)]
        points = [to_px(x, y) for x, y in zip(series.xs, series.ys) if math.isfinite(y)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        if series.markers:
            for px, py in points:
                draw.ellipse([px - MARKER_RADIUS, py - MARKER_RADIUS, px + MARKER_RADIUS,
                              py + MARKER_RADIUS], fill=colour)
        draw.line([(legend_x, top + 14), (legend_x + 18, top + 14)], fill=colour, width=2)
        draw.text((legend_x + 22, top + 8), series.label, fill=colour, font=font)
        legend_x += 22 + draw.textlength(series.label, font=font) + 16
    for index, line in enumerate(panel.hlines):
        colour = PALETTE[(len(panel.series) + index) % len(PALETTE)]
        _, py = to_px(x_low, line.at)
        for start in range(int(plot[0]), int(plot[2]), 2 * DASH):
            draw.line([(start, py), (min(start + DASH, plot[2]), py)], fill=colour, width=2)
        draw.text((plot[2] - 4 - draw.textlength(line.label, font=font), py - 14), line.label,
                  fill=colour, font=font)


def save_panels(path, panels, width=WIDTH, panel_height=PANEL_HEIGHT):
    """Draw ``panels`` one above the other, sharing the x axis, and save the picture (PNG)."""
    xs = [x for panel in panels for series in panel.series for x in series.xs]
    xs += [line.at for panel in panels for line in panel.vlines]
    if not xs:
        raise ValueError("nothing to plot: every series is empty")
    image = Image.new("RGB", (width, panel_height * len(panels)), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for index, panel in enumerate(panels):
        draw_panel(draw, (0, index * panel_height, width, (index + 1) * panel_height), panel,
                   (min(xs), max(xs)))
    with atomic_write(path, suffix=".png") as temporary:  # WriteError (one line) on failure
        image.save(temporary)
    return path
