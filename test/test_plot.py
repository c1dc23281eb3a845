"""plot.py: tick placement and a chart Pillow can read."""
import numpy as np
import pytest
from PIL import Image

from files.plot import PALETTE, Line, Panel, Series, format_tick, nice_ticks, save_panels


@pytest.mark.parametrize("low, high, expected", [
    (0, 2500, [0, 500, 1000, 1500, 2000, 2500]),
    (20.16, 133.1, [0, 50, 100, 150]),
    (0.3, 1.37, [0, 0.5, 1.0, 1.5]),
    (5, 5, [4, 4.5, 5, 5.5, 6]),
])
def test_nice_ticks_cover_the_range_with_round_equal_steps(low, high, expected):
    assert nice_ticks(low, high) == pytest.approx(expected)


def test_tick_labels_are_short():
    assert [format_tick(v) for v in (0, 2500, 40000, 0.25, 1.0)] == ["0", "2500", "40k", "0.25",
                                                                     "1"]


def test_panels_are_stacked_and_each_series_drawn_in_its_colour(tmp_path):
    xs = list(range(1, 101))
    path = save_panels(str(tmp_path / "chart.png"), [
        Panel("losses", [Series("G", xs, [1 + np.sin(x / 10) for x in xs])],
              vlines=[Line(50, "16 px")]),
        Panel("SWD", [Series("a", [25, 50, 100], [90, 60, 40], markers=True),
                      Series("b", [25, 50, 100], [80, 50, 45])], hlines=[Line(20, "floor")]),
    ], width=400, panel_height=200)
    with Image.open(path) as image:
        assert image.size == (400, 400)
        pixels = np.asarray(image.convert("RGB"))
    top = {tuple(c) for c in pixels[:200].reshape(-1, 3)}
    bottom = {tuple(c) for c in pixels[200:].reshape(-1, 3)}
    assert PALETTE[0] in top and PALETTE[1] not in top
    assert {PALETTE[0], PALETTE[1], PALETTE[2]} <= bottom   # two series and the dashed line
    with pytest.raises(ValueError, match="nothing to plot"):
        save_panels(str(tmp_path / "empty.png"), [Panel("empty", [])])
