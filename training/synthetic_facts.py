"""Questions, answers, distractors and captions derived from a scene spec.

`facts(scene, rng)` returns one `Fact` per question type that the scene supports (a type whose
preconditions fail, such as "What colour is the circle?" with two circles, is left out), so a caller
that picks uniformly among them picks uniformly among question types. The MC generator uses a fact's
three distractors; the pretraining stream uses only its question and answer, plus `caption(scene)`.

Distractors are always of the answer's type and, where the image offers them, taken from the image
itself (another bar's label, another slice's percentage), because those are the confusions a model
that half-reads the image would make. Numeric distractors come from a random window of four
consecutive values that contains the answer, so the answer is not always the middle value.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from training.synthetic_scenes import (
    CHART_COLOURS,
    COLOURS,
    COMPETITORS,
    DESTINATIONS,
    EVENTS,
    SHAPES,
    BarChart,
    Clock,
    PieChart,
    Scene,
    ShapesScene,
    Table,
)

RELATIONS = ("to the left", "to the right", "above", "below")
# (words, grid attribute, sign): the shape minimising sign * attribute is the extreme one.
EXTREMES = (
    ("furthest to the left", "col", 1),
    ("furthest to the right", "col", -1),
    ("nearest the top", "row", 1),
    ("nearest the bottom", "row", -1),
)


@dataclass(frozen=True)
class Fact:
    """A question about one image with its true answer and three wrong answers of the same type."""

    question: str
    answer: str
    distractors: tuple[str, str, str]

    def __post_init__(self):
        options = [self.answer, *self.distractors]
        assert len(self.distractors) == 3 and len(set(options)) == 4, f"options not unique: {options}"


def _pick(rng: random.Random, answer: str, preferred, fallback=()) -> tuple[str, str, str]:
    """Three distinct non-answer strings: shuffled `preferred` first, then shuffled `fallback`."""
    chosen: list[str] = []
    for pool in (preferred, fallback):
        pool = list(pool)
        rng.shuffle(pool)
        for value in pool:
            if value != answer and value not in chosen:
                chosen.append(value)
                if len(chosen) == 3:
                    return tuple(chosen)
    raise AssertionError(f"not enough distractors for {answer!r}")


def _window(rng: random.Random, answer: int, low: int, high: int, step: int = 1) -> list[int]:
    """The other three members of a random run of four values, `step` apart, in [low, high], holding `answer`."""
    starts = [s for s in range(answer - 3 * step, answer + 1, step) if s >= low and s + 3 * step <= high]
    start = rng.choice(starts)
    return [start + i * step for i in range(4) if start + i * step != answer]


def _numbers(rng: random.Random, answer: int, low: int, high: int, step: int = 1, preferred=(), fmt="{}"):
    """Numeric distractors: up to two `preferred` values (other numbers in the image), then a window."""
    preferred = [fmt.format(v) for v in preferred if v != answer]
    rng.shuffle(preferred)
    window = [fmt.format(v) for v in _window(rng, answer, low, high, step)]
    return _pick(rng, fmt.format(answer), preferred[:2], window)


def _plural(kind: str) -> str:
    return "hexagons" if kind == "hexagon" else kind + "s"


def _relation(a, b) -> str | None:
    """Where shape `a` is compared with `b`, only when they share a grid row or column (else ambiguous)."""
    if a.row == b.row:
        return RELATIONS[0] if a.col < b.col else RELATIONS[1]
    if a.col == b.col:
        return RELATIONS[2] if a.row < b.row else RELATIONS[3]
    return None


def shapes_facts(scene: ShapesScene, rng: random.Random) -> list[Fact]:
    shapes = scene.shapes
    colours = [s.colour for s in shapes]
    kinds = [s.kind for s in shapes]
    every_name = [f"{c} {k}" for c in COLOURS for k in SHAPES]
    facts = [Fact("How many shapes are there?", str(len(shapes)), _numbers(rng, len(shapes), 0, 9))]

    # Mostly ask about something present; sometimes about something absent, so 0 is a real answer.
    colour = rng.choice(colours) if rng.random() < 0.75 else rng.choice(list(COLOURS))
    count = colours.count(colour)
    facts.append(Fact(f"How many {colour} shapes are there?", str(count), _numbers(rng, count, 0, 9)))
    kind = rng.choice(kinds) if rng.random() < 0.75 else rng.choice(SHAPES)
    count = kinds.count(kind)
    facts.append(Fact(f"How many {_plural(kind)} are there?", str(count), _numbers(rng, count, 0, 9)))

    unique_kinds = [s for s in shapes if kinds.count(s.kind) == 1]
    if unique_kinds:
        target = rng.choice(unique_kinds)
        distractors = _pick(rng, target.colour, colours, COLOURS)
        facts.append(Fact(f"What colour is the {target.kind}?", target.colour, distractors))
    unique_colours = [s for s in shapes if colours.count(s.colour) == 1]
    if unique_colours:
        target = rng.choice(unique_colours)
        distractors = _pick(rng, target.kind, kinds, SHAPES)
        facts.append(Fact(f"What shape is the {target.colour} object?", target.kind, distractors))

    pairs = [(a, b, r) for a in shapes for b in shapes if a is not b and (r := _relation(a, b))]
    if pairs:
        a, b, relation = rng.choice(pairs)
        question = f"Where is the {a.name} compared with the {b.name}?"
        facts.append(Fact(question, relation, _pick(rng, relation, RELATIONS)))

    if len(shapes) >= 2:
        direction, key, sign = rng.choice(EXTREMES)
        best = min(sign * getattr(s, key) for s in shapes)
        winners = [s for s in shapes if sign * getattr(s, key) == best]
        if len(winners) == 1:
            name = winners[0].name
            distractors = _pick(rng, name, [s.name for s in shapes], every_name)
            facts.append(Fact(f"Which shape is {direction}?", name, distractors))
    return facts


def bar_chart_facts(chart: BarChart, rng: random.Random) -> list[Fact]:
    """Bars are named by colour, so most answers are seen, not read; the value question needs the axis."""
    colours, values = list(chart.colours), list(chart.values)
    longest, shortest = ("longest", "shortest") if chart.horizontal else ("tallest", "shortest")
    top, bottom = colours[values.index(max(values))], colours[values.index(min(values))]
    count = len(values)
    facts = [
        Fact(f"What colour is the {longest} bar?", top, _pick(rng, top, colours, CHART_COLOURS)),
        Fact(f"What colour is the {shortest} bar?", bottom, _pick(rng, bottom, colours, CHART_COLOURS)),
        Fact("How many bars are there?", str(count), _numbers(rng, count, 1, 9)),
    ]
    a, b = rng.sample(range(count), 2)
    larger, smaller = (colours[a], colours[b]) if values[a] > values[b] else (colours[b], colours[a])
    # Both named colours must be on offer, so only the other two are drawn.
    pair_distractors = (smaller, *_two_more(rng, (smaller, larger), colours, CHART_COLOURS))
    comparative = "longer" if chart.horizontal else "taller"
    question = f"Which bar is {comparative}: the {colours[a]} one or the {colours[b]} one?"
    facts.append(Fact(question, larger, pair_distractors))
    i = rng.randrange(count)
    distractors = _numbers(rng, values[i], 0, max(values) + 5, preferred=values)
    facts.append(Fact(f"What is the value of the {colours[i]} bar?", str(values[i]), distractors))
    return facts


def _two_more(rng: random.Random, taken, preferred, fallback) -> tuple[str, str]:
    pool = [v for v in preferred if v not in taken]
    rng.shuffle(pool)
    extra = [v for v in fallback if v not in taken and v not in pool]
    rng.shuffle(extra)
    return tuple((pool + extra)[:2])


def pie_chart_facts(chart: PieChart, rng: random.Random) -> list[Fact]:
    """Slices are named by colour; estimating a slice's percentage from its angle is the harder type."""
    percents, colours = list(chart.percents), list(chart.colours)
    top, bottom = colours[percents.index(max(percents))], colours[percents.index(min(percents))]
    i = rng.randrange(len(colours))
    percent_distractors = _numbers(rng, percents[i], 5, 95, 5, percents, "{}%")
    count = len(colours)
    return [
        Fact("What colour is the largest slice?", top, _pick(rng, top, colours, CHART_COLOURS)),
        Fact("What colour is the smallest slice?", bottom, _pick(rng, bottom, colours, CHART_COLOURS)),
        Fact(f"What percentage is the {colours[i]} slice?", f"{percents[i]}%", percent_distractors),
        Fact("How many slices are there?", str(count), _numbers(rng, count, 1, 9)),
    ]


def _clock_text(hour: int, minute: int) -> str:
    return f"{(hour - 1) % 12 + 1}:{minute % 60:02d}"


def _near_times(hour: int, minute: int) -> list[str]:
    """Readings one slip away: the hour hand misread by one or six hours, or the minute hand by one tick."""
    hour_slips = [_clock_text(hour + dh, minute) for dh in (1, -1, 6)]
    minute_slips = [_clock_text(hour, minute + dm) for dm in (5, 55, 30)]
    return hour_slips + minute_slips


def clock_facts(clock: Clock, rng: random.Random) -> list[Fact]:
    """Time distractors come in two look-alike pairs, the answer with a near miss and a decoy with one.

    The decoy is the swapped-hands reading (the classic clock mistake) where that differs. Without the
    decoy's own near miss the answer would be the one option close to all others, a text-only giveaway.
    """
    h, m = clock.hour, clock.minute
    answer = clock.text
    decoy_hour, decoy_minute = (m // 5 or 12), 5 * h
    while _clock_text(decoy_hour, decoy_minute) in (answer, *_near_times(h, m)):
        decoy_hour, decoy_minute = rng.randint(1, 12), 5 * rng.randint(0, 11)
    decoy = _clock_text(decoy_hour, decoy_minute)
    near_answer = rng.choice(_near_times(h, m))
    decoy_misses = [t for t in _near_times(decoy_hour, decoy_minute) if t not in (answer, near_answer)]
    near_decoy = rng.choice(decoy_misses)
    pointed = m // 5 or 12
    pointed_distractors = _numbers(rng, pointed, 1, 12, preferred=[h])
    return [
        Fact("What time does the clock show?", answer, (decoy, near_answer, near_decoy)),
        Fact("Which number is the minute hand pointing at?", str(pointed), pointed_distractors),
    ]


# (target column, template): the columns a template names are its keys, and a template is used only
# for a row those keys pick out uniquely.
TABLE_TEMPLATES = {
    "competition": [
        ("Competitor", "Which competitor is in the {Event} event at {Time}?"),
        ("Time", "At what time does {Competitor} compete?"),
        ("Event", "Which event does {Competitor} compete in?"),
    ],
    "trains": [
        ("Platform", "Which platform is the {Departs} train to {Destination} on?"),
        ("Departs", "When does the {Destination} train on platform {Platform} leave?"),
        ("Destination", "Where does the {Departs} train go?"),
    ],
}


def _column_vocabulary(table: Table, column: str, answer: str) -> list[str]:
    if column in ("Time", "Departs"):
        hour, minute = map(int, answer.split(":"))
        return [f"{(hour * 60 + minute + d) // 60}:{(minute + d) % 60:02d}" for d in (-10, -5, 5, 10, 15)]
    vocabularies = {"Event": EVENTS, "Competitor": COMPETITORS, "Destination": DESTINATIONS}
    return list(vocabularies.get(column, [str(p) for p in range(1, 10)]))


def table_facts(table: Table, rng: random.Random) -> list[Fact]:
    facts = []
    for target, template in TABLE_TEMPLATES[table.kind]:
        keys = [name for _, name, _, _ in string.Formatter().parse(template) if name]
        order = list(range(len(table.rows)))
        rng.shuffle(order)
        for r in order:
            record = dict(zip(table.columns, table.rows[r]))
            key_values = [table.column(k) for k in keys]
            rows = range(len(table.rows))
            matches = sum(all(column[i] == record[k] for column, k in zip(key_values, keys)) for i in rows)
            if matches == 1:
                answer = record[target]
                vocabulary = _column_vocabulary(table, target, answer)
                distractors = _pick(rng, answer, table.column(target), vocabulary)
                facts.append(Fact(template.format(**record), answer, distractors))
                break
    r, column = rng.randrange(len(table.rows)), rng.choice(table.columns)
    answer = table.rows[r][table.columns.index(column)]
    vocabulary = _column_vocabulary(table, column, answer)
    distractors = _pick(rng, answer, table.column(column), vocabulary)
    facts.append(Fact(f"What is in row {r + 1}, column {column}?", answer, distractors))
    return facts


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def caption(scene: Scene) -> str:
    """A one-line description that names what must be read from the image, in reading order."""
    if isinstance(scene, ShapesScene):
        ordered = sorted(scene.shapes, key=lambda s: (s.row, s.col))
        noun = "shape" if len(ordered) == 1 else "shapes"
        return f"{len(ordered)} {noun}: " + _join([f"a {s.name}" for s in ordered])
    if isinstance(scene, BarChart):
        top = scene.colours[scene.values.index(max(scene.values))]
        bars = ", ".join(f"{colour} {value}" for colour, value in zip(scene.colours, scene.values))
        return f"a bar chart of {scene.title} with {len(scene.values)} bars: {bars}; the {top} bar is the largest"
    if isinstance(scene, PieChart):
        top = scene.colours[scene.percents.index(max(scene.percents))]
        slices = ", ".join(f"{colour} {p}%" for colour, p in zip(scene.colours, scene.percents))
        return f"a pie chart of {scene.title} with {len(scene.percents)} slices: {slices}; the {top} slice is the largest"
    if isinstance(scene, Clock):
        return f"an analog clock showing {scene.text}"
    if isinstance(scene, Table):
        first = ", ".join(scene.rows[0])
        return f"a table titled {scene.title} with {len(scene.rows)} rows; row 1: {first}"
    raise TypeError(f"no caption for {type(scene).__name__}")


FACTS = {
    "shapes": shapes_facts,
    "bar_chart": bar_chart_facts,
    "pie_chart": pie_chart_facts,
    "clock": clock_facts,
    "table": table_facts,
}


def facts(scene: Scene, rng: random.Random) -> list[Fact]:
    """One fact per question type the scene supports; never empty."""
    return FACTS[scene.family](scene, rng)
