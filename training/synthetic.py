"""Offline, deterministic synthetic diagram multiple-choice VQA data.

Writes DIR/train/ and DIR/validation/, each a Hugging Face `imagefolder`: PNG images plus a
`metadata.csv` with columns `file_name,question,option1,option2,option3,option4,answer,family`
(`answer` is 1-based). Families, from easy to hard: `bar_chart` (bars of distinct colours: the
tallest, the shortest, how many, which of two is taller, and the harder value of a bar), `shapes`
(colour, shape, count, position), `pie_chart` (largest and smallest slice by colour, how many, and
the harder percentage of a slice from its angle), `clock` (read an analog clock) and `table` (read a
cell of a small timetable by matching two other columns: small text, the family no small model reads).
Charts name bars and slices by colour because a 96 px default model cannot read their labels; the
labels and legends are still drawn, as distractions.

The same seed gives byte-identical files; train and validation draw from different derived seeds.
Within a split the gold position is balanced over A-D (exactly, when n is a multiple of 4) and the
families take turns, shuffled.

Example:
    python -m training.synthetic --out runs/synthetic --n-train 1000 --n-val 200 --seed 0

`pretraining_items` yields captions and open questions over the same images for stage-1 pretraining.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from training.synthetic_facts import caption, facts
from training.synthetic_render import render
from training.synthetic_scenes import SAMPLERS, Scene
from vqa_demo.config import OPTION_LETTERS
from vqa_demo.data.csv_cells import csv_row
from vqa_demo.model.strategies import build_rows

FAMILIES = tuple(SAMPLERS)
COLUMNS = ("file_name", "question", "option1", "option2", "option3", "option4", "answer", "family")
NUM_OPTIONS = 4


@dataclass(frozen=True)
class MCItem:
    """One multiple-choice example; `answer` is 1-based and `scene` is the truth it was derived from."""

    image: Image.Image
    question: str
    options: tuple[str, ...]
    answer: int
    family: str
    scene: Scene


def derive_seed(seed: int, *keys: object) -> int:
    """A 64-bit seed from `seed` and labels, stable across runs and Python versions (unlike `hash`)."""
    text = ":".join(str(part) for part in (seed, *keys))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def check_families(families: Iterable[str] | None) -> tuple[str, ...]:
    """The requested families in order, all of them when None; unknown names raise with the valid list.

    A comma-separated string ("shapes,table") is accepted as well as a list.
    """
    if families is None:
        return FAMILIES
    if isinstance(families, str):
        families = families.split(",")
    chosen = tuple(dict.fromkeys(f.strip() for f in families if f.strip()))
    unknown = [f for f in chosen if f not in SAMPLERS]
    if unknown or not chosen:
        raise ValueError(f"unknown or no families {unknown}; choose from {', '.join(FAMILIES)}")
    return chosen


def make_mc_item(family: str, seed: int, gold_position: int, image_size: int = 224) -> MCItem:
    """One example of `family`, with the answer placed at `gold_position` (0-based) among the options.

    The question type is drawn uniformly from those the scene supports.
    """
    assert 0 <= gold_position < NUM_OPTIONS
    rng = random.Random(seed)
    scene = SAMPLERS[family](rng)
    fact = rng.choice(facts(scene, rng))
    options = list(fact.distractors)
    rng.shuffle(options)
    options.insert(gold_position, fact.answer)
    return MCItem(render(scene, image_size), fact.question, tuple(options), gold_position + 1, family, scene)


def _balanced(values: tuple, n: int, rng: random.Random) -> list:
    """`n` values taking turns over `values`, shuffled: each appears floor or ceil of n / len(values) times."""
    order = [values[i % len(values)] for i in range(n)]
    rng.shuffle(order)
    return order


def generate_split(
    out_dir: Path,
    n: int,
    seed: int,
    prefix: str,
    image_size: int = 224,
    families: Iterable[str] | None = None,
) -> Path:
    """Write `n` examples as `{prefix}_000000.png`... plus `metadata.csv` into `out_dir`; returns `out_dir`.

    The split's randomness comes from (`seed`, `prefix`), so "train" and "validation" differ for one
    seed. PNGs named like this split's from an earlier, larger run are removed, because an imagefolder
    would otherwise pick them up.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    chosen = check_families(families)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    split_rng = random.Random(derive_seed(seed, prefix, "split"))
    family_order = _balanced(chosen, n, split_rng)
    gold_order = _balanced(tuple(range(NUM_OPTIONS)), n, split_rng)
    digits = max(6, len(str(max(n - 1, 0))))
    written = set()
    with open(out_dir / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for index, (family, gold) in enumerate(zip(family_order, gold_order)):
            item = make_mc_item(family, derive_seed(seed, prefix, index), gold, image_size)
            file_name = f"{prefix}_{index:0{digits}d}.png"
            item.image.save(out_dir / file_name, format="PNG")
            written.add(file_name)
            writer.writerow(csv_row([file_name, item.question, *item.options, item.answer, family]))
    own_name = re.compile(rf"{re.escape(prefix)}_\d+\.png")
    for stale in out_dir.glob(f"{prefix}_*.png"):
        if own_name.fullmatch(stale.name) and stale.name not in written:
            stale.unlink()
    return out_dir


def pretraining_items(
    n: int,
    seed: int,
    image_size: int = 224,
    families: Iterable[str] | None = None,
    lettered: float = 0.0,
) -> Iterator[tuple[Image.Image, str, str]]:
    """Yield `n` generative tasks `(image, prefix, suffix)` over the synthetic images.

    A third are captions (`"caption en"` -> the scene described, naming what must be read); the rest
    are open questions (`"answer en What colour is the circle?"` -> `"red"`), including table cell
    look-ups (`"answer en What is in row 2, column Event?"`). Families take turns, as in the MC splits.
    A `lettered` share of the questions instead shows the fact's four options in the MULTI_CLASS
    prompt (`"...\nOptions: A) red | B) blue ...\nAnswer:"`) with the gold letter as the target, so
    the base learns to point at an option, the skill a MULTI_CLASS head reads out. Its draws come
    from a separate generator: with `lettered=0` the stream is the same as without the argument.
    """
    chosen = check_families(families)
    for index in range(n):
        rng = random.Random(derive_seed(seed, "pretrain", index))
        scene = SAMPLERS[chosen[index % len(chosen)]](rng)
        image = render(scene, image_size)
        if rng.random() < 1 / 3:
            yield image, "caption en", caption(scene)
            continue
        fact = rng.choice(facts(scene, rng))
        letter_rng = random.Random(derive_seed(seed, "lettered", index))
        if lettered and letter_rng.random() < lettered:
            options = [fact.answer, *fact.distractors]
            letter_rng.shuffle(options)
            row = build_rows("multi_class", fact.question, options)[0]
            yield image, row.question + row.tail, OPTION_LETTERS[options.index(fact.answer)]
        else:
            yield image, f"answer en {fact.question}", fact.answer


def main(cfg: argparse.Namespace) -> None:
    families = cfg.families or None
    start = time.perf_counter()
    for prefix, n in (("train", cfg.n_train), ("validation", cfg.n_val)):
        if n == 0:
            continue  # an empty split folder makes `load_dataset("imagefolder", ...)` fail
        split_dir = generate_split(cfg.out / prefix, n, cfg.seed, prefix, cfg.image_size, families)
        print(f"wrote {n} examples to {split_dir}")
    print(f"done in {time.perf_counter() - start:.1f} s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to hold train/ and validation/")
    parser.add_argument("--n-train", type=int, default=1000, help="training examples")
    parser.add_argument("--n-val", type=int, default=200, help="validation examples")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives identical files")
    parser.add_argument("--image-size", type=int, default=224, help="side of the square images, in pixels")
    parser.add_argument(
        "--families",
        default="",
        help=f"comma-separated subset of {','.join(FAMILIES)} (default: all, equal shares)",
    )
    cfg = parser.parse_args(argv)
    try:
        check_families(cfg.families or None)
    except ValueError as error:
        parser.error(str(error))
    if cfg.n_train < 0 or cfg.n_val < 0 or cfg.image_size < 32:
        parser.error("--n-train and --n-val must be >= 0 and --image-size >= 32")
    return cfg


if __name__ == "__main__":
    main(parse_args())
