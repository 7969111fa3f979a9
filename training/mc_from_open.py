"""Turn an open-answer split into a multiple-choice split by mining distractors from the split itself.

Example::

    python -m training.mc_from_open --source data/products/train --out data/products-mc/train \\
        --num-options 4 --seed 0

The source is an imagefolder split whose ``metadata.csv`` / ``metadata.jsonl`` rows are
``file_name, question, answer`` with a free-text ``answer`` (the reference work's layout). The
output is this project's split format (:mod:`vqa_demo.data.splits`): the same rows in the same order,
``option1..optionK`` holding the answer and K-1 distractors of the same answer type (rules in
:mod:`training.distractors`), ``answer`` the 1-based gold position, balanced over the K positions,
and an ``answer_type`` column (yes/no, number, colour, other) that evaluation breaks accuracy down
by and that marks the split as converted from open answers. Other source columns are kept; images
are copied. The same source and seed give the same output.

A row whose answer type has fewer than K distinct answers in the split cannot get K-1 same-type
distractors: it is skipped and counted in the summary (yes/no rows always are for K > 2), or with
``--fill`` completed from the other types' answers and marked ``distractors=filled``. Rows with an
empty question or answer, a missing or unreadable image, or a file_name outside the folder are bad
rows: ``--on-bad-row fail`` (the default) stops with their list, ``skip`` leaves them out.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.distractors import ANSWER_TYPES, AnswerPool, answer_type, balanced_positions
from vqa_demo.config import MAX_OPTIONS, MIN_OPTIONS
from vqa_demo.data.rows import OPTION_COLUMN, cell_text, check_image_file, image_path_in, where
from vqa_demo.data.splits import (
    METADATA_FILES,
    BadRow,
    DataError,
    bad_rows_message,
    column_union,
    load_split,
    read_metadata,
)
from vqa_demo.data.writers import write_metadata
from vqa_demo.evaluation.text_metrics import normalize_vqa_answer

REQUIRED_COLUMNS = ("file_name", "question", "answer")
ADDED_COLUMNS = ("answer_type", "distractors")


@dataclass(frozen=True)
class OpenRow:
    """One valid source row; ``extra`` holds the source's other columns."""

    file_name: str
    question: str
    answer: str
    extra: dict[str, Any]


@dataclass
class Conversion:
    """The multiple-choice records (source order) and what happened to the other rows."""

    records: list[dict[str, Any]]
    num_options: int
    skipped: dict[str, int] = field(default_factory=dict)  # answer type -> rows without enough distractors
    type_rows: dict[str, int] = field(default_factory=dict)
    distinct_answers: dict[str, int] = field(default_factory=dict)
    filled: int = 0

    def gold_histogram(self) -> list[int]:
        """Rows with the gold at each 0-based position, ``int[K]``."""
        counts = [0] * self.num_options
        for record in self.records:
            counts[record["answer"] - 1] += 1
        return counts


def read_open_rows(source: Path, on_bad_row: str = "fail") -> tuple[Path, list[OpenRow], list[BadRow]]:
    """``(split root, valid rows in file order, bad rows)``; bad rows raise under ``"fail"``."""
    metadata_file, records = read_metadata(source)
    root = metadata_file.parent
    rows = [{str(k).strip(): v for k, v in record.items()} for record in records]
    columns = column_union(rows)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DataError(
            f"{metadata_file}: missing column(s) {', '.join(missing)}; an open-answer split has "
            f"file_name, question and answer (columns found: {', '.join(columns) or 'none'})"
        )
    clashing = [c for c in columns if c in ("options", *ADDED_COLUMNS) or OPTION_COLUMN.fullmatch(c)]
    if clashing:
        raise DataError(
            f"{metadata_file}: has column(s) {', '.join(clashing)}, which the conversion writes; rename "
            "or drop them (a split that already has options needs no conversion)"
        )
    valid, bad = [], []
    for number, row in enumerate(rows, start=1):
        file_name = cell_text(row.get("file_name"))
        try:
            valid.append(check_open_row(row, root, where(number, file_name or None, metadata_file.name)))
        except DataError as error:
            bad.append(BadRow(number, file_name or None, str(error)))
    if bad and on_bad_row == "fail":
        raise DataError(bad_rows_message(str(metadata_file), bad) + "\nFix or remove these rows.")
    return root, valid, bad


def check_open_row(row: dict[str, Any], root: Path, place: str) -> OpenRow:
    """One source row checked: question and a single answer present, image inside ``root`` and readable."""
    if isinstance(row.get("answer"), (list, dict)):
        raise DataError(f"{place}: answer must be one text, not a list; keep one answer per row")
    file_name, question, answer = (cell_text(row.get(c)) for c in REQUIRED_COLUMNS)
    if not file_name:
        raise DataError(f"{place}: file_name is empty; give the image path relative to {root}")
    if not question:
        raise DataError(f"{place}: question is empty; fill it in or remove the row")
    if not normalize_vqa_answer(answer):
        raise DataError(
            f"{place}: answer {answer[:40]!r} is empty once punctuation and articles go; fill it in"
        )
    check_image_file(image_path_in(root, file_name, place), place)
    extra = {k: v for k, v in row.items() if k not in REQUIRED_COLUMNS}
    return OpenRow(file_name, question, answer, extra)


def convert(rows: list[OpenRow], num_options: int = 4, seed: int = 0, fill: bool = False) -> Conversion:
    """Multiple-choice records for ``rows``: options with the gold at a balanced position.

    Deterministic for ``seed``. Records are ``file_name, question, option1..optionK, answer``
    (1-based), ``answer_type``, ``distractors`` (only with ``fill``), then the source's other columns.
    """
    if not MIN_OPTIONS <= num_options <= MAX_OPTIONS:
        raise DataError(f"--num-options {num_options} is out of range; use {MIN_OPTIONS} to {MAX_OPTIONS}")
    pool = AnswerPool([(row.question, row.answer) for row in rows])
    rng = random.Random(seed)
    conversion = Conversion(
        [], num_options, distinct_answers={k: pool.distinct_answers(k) for k in ANSWER_TYPES}
    )
    kept: list[tuple[OpenRow, str, Any]] = []
    for row in rows:
        kind = answer_type(row.answer)
        conversion.type_rows[kind] = conversion.type_rows.get(kind, 0) + 1
        distractors = pool.choose(row.question, row.answer, num_options - 1, rng, fill)
        if distractors is None:
            conversion.skipped[kind] = conversion.skipped.get(kind, 0) + 1
            continue
        kept.append((row, kind, distractors))
    positions = balanced_positions([kind for _, kind, _ in kept], num_options, rng)
    for (row, kind, distractors), position in zip(kept, positions):
        options = list(distractors.texts)
        rng.shuffle(options)
        options.insert(position, row.answer.strip())
        record: dict[str, Any] = {"file_name": row.file_name, "question": row.question}
        record.update({f"option{i + 1}": text for i, text in enumerate(options)})
        record.update(answer=position + 1, answer_type=kind)
        if fill:
            record["distractors"] = "filled" if distractors.filled else "same_type"
        conversion.filled += distractors.filled
        conversion.records.append({**record, **row.extra})
    return conversion


def copy_images(records: list[dict[str, Any]], source_root: Path, out: Path) -> None:
    """Copy each referenced image once, keeping its path relative to the split folder."""
    for file_name in dict.fromkeys(record["file_name"] for record in records):
        target = out / file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source_root / file_name, target)


def check_out_dir(source_root: Path, out: Path) -> None:
    if out.resolve() == source_root.resolve():
        raise DataError(f"--out {out} is the source split; write the multiple-choice split to another folder")
    existing = [name for name in METADATA_FILES if (out / name).exists()]
    if existing:
        raise DataError(f"--out {out} already holds {existing[0]}; choose an empty folder or delete it first")


def summary_lines(conversion: Conversion, rows_in: int, bad_rows: int) -> list[str]:
    """The printed report: rows in and out, per answer type, and the gold-position histogram."""
    lines = [
        f"rows: {rows_in} in, {len(conversion.records)} written, {bad_rows} bad, K={conversion.num_options}"
    ]
    for kind in ANSWER_TYPES:
        lines.append(
            f"  {kind:7s} rows {conversion.type_rows.get(kind, 0):5d}  distinct answers "
            f"{conversion.distinct_answers.get(kind, 0):5d}  skipped (too few distinct answers) "
            f"{conversion.skipped.get(kind, 0):5d}"
        )
    if conversion.filled:
        lines.append(f"  {conversion.filled} row(s) completed with answers of another type (--fill)")
    histogram = conversion.gold_histogram()
    lines.append("gold position: " + "  ".join(f"{chr(65 + i)} {n}" for i, n in enumerate(histogram)))
    return lines


def main(args: argparse.Namespace) -> Conversion:
    source, out = Path(args.source), Path(args.out)
    try:
        root, rows, bad = read_open_rows(source, args.on_bad_row)
        check_out_dir(root, out)
        conversion = convert(rows, args.num_options, args.seed, args.fill)
        if not conversion.records:
            raise DataError(
                f"no row of {source} got {args.num_options - 1} distractors; lower --num-options or use --fill"
            )
    except DataError as error:
        raise SystemExit(f"error: {error}") from None
    if bad:
        print(f"skipped {bad_rows_message(str(source), bad)}", file=sys.stderr)
    copy_images(conversion.records, root, out)
    write_metadata(out, conversion.records, fmt=args.format)
    try:
        written = load_split(out)  # the project's own loader must accept what was written
    except DataError as error:
        raise SystemExit(f"error: the written split does not load ({error}); fix those source rows") from None
    assert len(written) == len(conversion.records), "the written split lost rows"
    print("\n".join(summary_lines(conversion, len(rows) + len(bad), len(bad))))
    print(f"wrote {out}/metadata.{args.format}")
    return conversion


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--source", required=True, help="open-answer split folder (file_name, question, answer)"
    )
    parser.add_argument("--out", required=True, help="folder for the multiple-choice split (empty or new)")
    parser.add_argument("--num-options", type=int, default=4, help="K, options per row (2 to 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the distractor and position draws")
    parser.add_argument(
        "--fill",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="complete rows whose type has too few answers with other types' answers instead of skipping them",
    )
    parser.add_argument("--on-bad-row", choices=("fail", "skip"), default="fail")
    parser.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="metadata file format")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
