"""Scene specifications for the synthetic diagram data: what an image shows, sampled at random.

A spec is a small frozen dataclass holding everything a question needs (the truth) and everything the
renderer needs (the layout). Rendering lives in `training.synthetic_render`, questions and captions in
`training.synthetic_facts`; all three share these specs so the MC data and the pretraining data can
never disagree about what an image shows.

Every sampler takes a `random.Random` and touches no global state, so a spec is a pure function of the
generator's state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Named colours, chosen to be told apart at 224 px and by name (no two shades of one hue).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 160, 70),
    "blue": (40, 90, 220),
    "yellow": (240, 200, 30),
    "orange": (245, 130, 20),
    "purple": (140, 60, 180),
    "pink": (245, 120, 190),
    "brown": (130, 80, 40),
    "black": (25, 25, 25),
}
# Black is the charts' ink (axes, text), so it never fills a bar or a slice.
CHART_COLOURS = tuple(c for c in COLOURS if c != "black")
SHAPES = ("circle", "square", "triangle", "star", "hexagon", "diamond")
BACKGROUNDS = ((255, 255, 255), (245, 245, 240), (235, 240, 248), (250, 244, 230))

BAR_THEMES: dict[str, tuple[str, ...]] = {
    "fruit sales": ("apples", "bananas", "pears", "cherries", "grapes", "plums", "lemons"),
    "pets in a survey": ("cats", "dogs", "fish", "birds", "rabbits", "hamsters"),
    "rainfall by month": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug"),
    "books read by class": ("class A", "class B", "class C", "class D", "class E"),
    "visitors per day": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
PIE_THEMES: dict[str, tuple[str, ...]] = {
    "monthly budget": ("rent", "food", "travel", "savings", "fun", "bills"),
    "favourite sport": ("football", "tennis", "swimming", "cycling", "running"),
    "time spent in a day": ("sleep", "work", "meals", "reading", "exercise", "games"),
    "energy sources": ("solar", "wind", "gas", "coal", "hydro", "nuclear"),
}

EVENTS = ("Sword", "Archery", "Javelin", "Long jump", "Sprint", "Relay", "Discus", "High jump")
COMPETITORS = (
    "Okafor", "Lindqvist", "Moreau", "Tanaka", "Silva", "Novak", "Kowalski",
    "Haddad", "Ferreira", "Ivanova", "Murphy", "Rossi", "Nguyen", "Schmidt",
)  # fmt: skip
DESTINATIONS = ("Leeds", "York", "Bristol", "Oxford", "Bath", "Derby", "Hull", "Exeter", "Dover")


@dataclass(frozen=True)
class Shape:
    """One object of a shapes scene; `row`/`col` index a 3x3 grid, `cx`/`cy`/`radius` are fractions of the image side."""

    kind: str
    colour: str
    row: int
    col: int
    cx: float
    cy: float
    radius: float

    @property
    def name(self) -> str:
        return f"{self.colour} {self.kind}"


@dataclass(frozen=True)
class ShapesScene:
    """1-5 shapes with distinct (colour, kind) pairs on a plain background, one per grid cell."""

    shapes: tuple[Shape, ...]
    background: tuple[int, int, int]
    family: str = "shapes"


@dataclass(frozen=True)
class BarChart:
    """Bars with distinct integer values and distinct colours; `horizontal` bars leave room for long labels."""

    title: str
    labels: tuple[str, ...]
    values: tuple[int, ...]
    colours: tuple[str, ...]
    horizontal: bool
    family: str = "bar_chart"


@dataclass(frozen=True)
class PieChart:
    """Slices with distinct percentages (multiples of 5, sum 100), one colour each, with a legend."""

    title: str
    labels: tuple[str, ...]
    percents: tuple[int, ...]
    colours: tuple[str, ...]
    family: str = "pie_chart"


@dataclass(frozen=True)
class Clock:
    """An analog clock at `hour` (1-12) and `minute` (a multiple of 5)."""

    hour: int
    minute: int
    face: tuple[int, int, int]
    family: str = "clock"

    @property
    def text(self) -> str:
        return f"{self.hour}:{self.minute:02d}"


@dataclass(frozen=True)
class Table:
    """A small rendered table; `kind` picks the question templates ("competition" or "trains")."""

    kind: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    family: str = "table"

    def column(self, name: str) -> list[str]:
        index = self.columns.index(name)
        return [row[index] for row in self.rows]


Scene = ShapesScene | BarChart | PieChart | Clock | Table


def sample_shapes(rng: random.Random) -> ShapesScene:
    """1-5 shapes in distinct cells of a 3x3 grid, jittered and sized so they neither touch nor leave the image."""
    count = rng.randint(1, 5)
    cells = rng.sample(range(9), count)
    pairs = rng.sample([(c, k) for c in COLOURS for k in SHAPES], count)
    shapes = []
    for cell, (colour, kind) in zip(cells, pairs):
        row, col = divmod(cell, 3)
        cx = (col + 0.5 + rng.uniform(-0.08, 0.08)) / 3
        cy = (row + 0.5 + rng.uniform(-0.08, 0.08)) / 3
        shapes.append(Shape(kind, colour, row, col, cx, cy, rng.uniform(0.075, 0.105)))
    return ShapesScene(tuple(shapes), rng.choice(BACKGROUNDS))


def _distinct_values(rng: random.Random, count: int, low: int, high: int) -> tuple[int, ...]:
    return tuple(rng.sample(range(low, high + 1), count))


def sample_bar_chart(rng: random.Random) -> BarChart:
    title = rng.choice(sorted(BAR_THEMES))
    count = rng.randint(3, 5)
    labels = tuple(rng.sample(BAR_THEMES[title], count))
    high = rng.choice((9, 20, 50))
    values = _distinct_values(rng, count, 1, high)
    short_labels = max(len(label) for label in labels) <= 5
    horizontal = rng.random() < 0.5 if short_labels else True
    colours = tuple(rng.sample(CHART_COLOURS, count))
    return BarChart(title, labels, values, colours, horizontal)


def sample_pie_chart(rng: random.Random) -> PieChart:
    """Percentages are a random composition of 20 units of 5%, redrawn until all parts differ."""
    title = rng.choice(sorted(PIE_THEMES))
    count = rng.randint(3, 5)
    while True:
        cuts = sorted(rng.sample(range(1, 20), count - 1))
        parts = [b - a for a, b in zip([0, *cuts], [*cuts, 20])]
        if len(set(parts)) == count:
            break
    labels = tuple(rng.sample(PIE_THEMES[title], count))
    colours = tuple(rng.sample(CHART_COLOURS, count))
    return PieChart(title, labels, tuple(5 * p for p in parts), colours)


def sample_clock(rng: random.Random) -> Clock:
    return Clock(rng.randint(1, 12), 5 * rng.randint(0, 11), rng.choice(BACKGROUNDS))


def _times(rng: random.Random, count: int) -> list[str]:
    """Sorted, distinct times of day on a 5-minute grid, as a timetable would list them."""
    start = rng.randint(8 * 12, 16 * 12)
    steps = sorted(rng.sample(range(1, 30), count))
    return [f"{(start + s) // 12}:{5 * ((start + s) % 12):02d}" for s in steps]


def sample_table(rng: random.Random) -> Table:
    """A competition timetable or train departures; events and destinations repeat on purpose.

    Repeats force a question to name two columns ("the Sword event at 10:35"), so it can only be
    answered by reading across a row, not by spotting one word.
    """
    count = rng.randint(4, 6)
    times = _times(rng, count)
    if rng.random() < 0.5:
        events = rng.sample(EVENTS, 3)
        names = rng.sample(COMPETITORS, count)
        rows = tuple((t, rng.choice(events), n) for t, n in zip(times, names))
        return Table("competition", "Competition schedule", ("Time", "Event", "Competitor"), rows)
    places = rng.sample(DESTINATIONS, rng.randint(3, 4))
    rows = tuple((t, rng.choice(places), str(rng.randint(1, 9))) for t in times)
    return Table("trains", "Departures", ("Departs", "Destination", "Platform"), rows)


SAMPLERS = {
    "shapes": sample_shapes,
    "bar_chart": sample_bar_chart,
    "pie_chart": sample_pie_chart,
    "clock": sample_clock,
    "table": sample_table,
}
