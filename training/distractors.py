"""Distractors for open answers, mined from the split itself, and balanced gold positions.

Every answer gets a type from a small fixed classifier (:func:`answer_type`):

* ``yes/no``: the answer normalises to "yes" or "no";
* ``number``: digits, a decimal, or a number word ("two" normalises to "2");
* ``colour``: only colour names, optionally with light/dark/pale/bright/and ("light blue",
  "red and white");
* ``other``: everything else.

Answers are compared in their :func:`~vqa_demo.evaluation.text_metrics.normalize_vqa_answer` form, so "Two"
and "2", or "the cat" and "cat", are the same answer: never a distractor of each other and never
two options of one row. A distractor is shown in the surface form the split uses most often for it.
Distractors of a row come from its own type, first from answers seen with questions that start
with the same two words ("how many", "what is"), then from the rest of the type; a row whose type
has fewer than K-1 other answers is skipped, unless ``fill`` is set, in which case the missing
ones come from the other types and the row is marked ``filled``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from vqa_demo.evaluation.text_metrics import normalize_vqa_answer

ANSWER_TYPES = ("yes/no", "number", "colour", "other")
# fmt: off
COLOURS = frozenset([
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "gray", "grey",
    "silver", "gold", "beige", "tan", "maroon", "navy", "teal", "turquoise", "cyan", "magenta", "violet",
    "indigo", "lime", "olive", "cream", "khaki",
])
# fmt: on
_COLOUR_WORDS = COLOURS | {"light", "dark", "pale", "bright", "and"}


def answer_type(answer: str) -> str:
    """One of :data:`ANSWER_TYPES` for an answer (raw or normalised)."""
    key = normalize_vqa_answer(answer)
    words = key.split()
    if key in ("yes", "no"):
        return "yes/no"
    if len(words) == 1 and words[0].replace(".", "", 1).isdigit() and words[0][0].isdigit():
        return "number"
    if words and set(words) <= _COLOUR_WORDS and any(word in COLOURS for word in words):
        return "colour"
    return "other"


def question_prefix(question: str) -> str:
    """The first two normalised words of a question, the key of "similar questions"."""
    return " ".join(normalize_vqa_answer(question).split()[:2])


@dataclass(frozen=True)
class Distractors:
    """Chosen distractor texts of one row; ``filled`` when some come from another answer type."""

    texts: tuple[str, ...]
    filled: bool


class AnswerPool:
    """The distinct answers of a split by type, with their surface forms and question prefixes.

    Built from all ``(question, answer)`` pairs of the split; every list keeps first-seen order
    so that sampling with a seeded generator is reproducible (no set iteration order involved).
    """

    def __init__(self, pairs: Sequence[tuple[str, str]]):
        surfaces: dict[str, Counter] = {}
        self.prefixes: dict[str, set[str]] = {}
        self.by_type: dict[str, list[str]] = {kind: [] for kind in ANSWER_TYPES}
        for question, answer in pairs:
            key = normalize_vqa_answer(answer)
            if not key:
                continue
            if key not in surfaces:
                surfaces[key] = Counter()
                self.prefixes[key] = set()
                self.by_type[answer_type(key)].append(key)
            surfaces[key][answer.strip()] += 1
            self.prefixes[key].add(question_prefix(question))
        # most_common keeps first-seen order among equal counts
        self.surface = {key: counts.most_common(1)[0][0] for key, counts in surfaces.items()}

    def distinct_answers(self, kind: str) -> int:
        return len(self.by_type[kind])

    def choose(
        self, question: str, answer: str, count: int, rng: random.Random, fill: bool = False
    ) -> Distractors | None:
        """``count`` distractors for one row, or None when its type has too few (and not ``fill``)."""
        gold = normalize_vqa_answer(answer)
        kind = answer_type(gold)
        prefix = question_prefix(question)
        same_type = [key for key in self.by_type[kind] if key != gold]
        similar = [key for key in same_type if prefix in self.prefixes[key]]
        rest = [key for key in same_type if prefix not in self.prefixes[key]]
        chosen = take(similar, count, rng) + take(rest, count - min(count, len(similar)), rng)
        filled = len(chosen) < count
        if filled:
            if not fill:
                return None
            others = [key for other in ANSWER_TYPES if other != kind for key in self.by_type[other]]
            chosen += take(others, count - len(chosen), rng)
            if len(chosen) < count:
                return None
        return Distractors(tuple(self.surface[key] for key in chosen), filled)


def take(keys: list[str], count: int, rng: random.Random) -> list[str]:
    """Up to ``count`` of ``keys`` drawn uniformly without replacement."""
    return rng.sample(keys, min(count, len(keys)))


def balanced_positions(kinds: Sequence[str], num_options: int, rng: random.Random) -> list[int]:
    """0-based gold position per row, uniform over K overall and within each answer type.

    Rows are taken type by type, in a seeded random order within each type, and dealt positions
    0, 1, ..., K-1, 0, ... round-robin without restarting between types: every position's count
    differs from every other's by at most one, overall and within a type.

    Args:
        kinds: ``str[N]`` answer type of each row.
        num_options: K.

    Returns:
        ``int[N]`` positions in ``[0, K)``, in the rows' order.
    """
    positions = [0] * len(kinds)
    dealt = 0
    for kind in dict.fromkeys(sorted(kinds)):
        rows = [index for index, row_kind in enumerate(kinds) if row_kind == kind]
        rng.shuffle(rows)
        for index in rows:
            positions[index] = dealt % num_options
            dealt += 1
    return positions
