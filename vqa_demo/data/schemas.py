"""Column schemas of multiple-choice VQA datasets, recognised by their columns or named with ``--columns``.

Every schema is turned into this project's row form (``question``, an ``options`` list, ``answer``,
``image``) before the rows are checked, so the bad-row rules, order and submissions are the same as
for an imagefolder. Known schemas:

============  ======================================  ===================  ==================
schema        options                                 answer               also read
============  ======================================  ===================  ==================
project       ``option1..optionK`` or ``options``     1-based number       ``file_name``
a-okvqa       ``choices`` (list)                      ``correct_choice_idx``  ``question_id``
scienceqa     ``choices`` (list)                      ``answer`` (index)   ``hint``
ai2d          ``options`` (list)                      ``answer``           ``id``
mmbench       columns ``A``, ``B``, ... (up to ``H``)  ``answer`` (letter)  ``hint``, ``index``
============  ======================================  ===================  ==================

Answers of every schema but ``project`` follow :func:`~vqa_demo.data.rows.normalise_answer`: an
integer is the 0-based index, a single letter the position, other text the option with that text.
A ``hint`` is put before the question on its own line. ``--columns question=q,options=opts,answer=label``
maps any other dataset (``options=A|B|C`` names one column per option; ``id=...`` keys the submission).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vqa_demo.config import MAX_OPTIONS
from vqa_demo.data.rows import DataError, cell_text

LETTERS = tuple(chr(ord("A") + i) for i in range(MAX_OPTIONS))
COLUMN_ROLES = ("question", "options", "answer", "image", "hint", "id")


@dataclass(frozen=True)
class Schema:
    """Which columns hold what. ``options`` is one list column or several text columns (one per option)."""

    name: str
    question: str = "question"
    options: tuple[str, ...] = ("options",)
    answer: str | None = "answer"
    image: str = "image"
    hint: str | None = None
    id: str | None = None
    option_list: bool = True
    renamed: dict[str, str] = field(default_factory=dict)

    @property
    def flexible_answers(self) -> bool:
        return self.name != "project"


def _first(columns: Iterable[str], *names: str) -> str | None:
    return next((n for n in names if n in columns), None)


def detect_schema(columns: list[str]) -> Schema:
    """The known schema whose columns these are; raises :class:`DataError` listing the known ones."""
    cols = set(columns)
    hint = "hint" if "hint" in cols else None
    if "choices" in cols and "correct_choice_idx" in cols:
        return Schema(
            "a-okvqa", options=("choices",), answer="correct_choice_idx", id=_first(cols, "question_id")
        )
    if "choices" in cols:
        return Schema("scienceqa", options=("choices",), answer=_first(cols, "answer"), hint=hint)
    letters = [letter for letter in LETTERS if letter in cols]
    if letters[:2] == ["A", "B"] and "options" not in cols:
        letters = [letter for i, letter in enumerate(letters) if letter == LETTERS[i]]
        return Schema(
            "mmbench",
            options=tuple(letters),
            answer=_first(cols, "answer"),
            hint=hint,
            id=_first(cols, "index"),
            option_list=False,
        )
    if "options" in cols and "answer" in cols and "file_name" not in cols:
        return Schema("ai2d", id=_first(cols, "id", "question_id"), hint=hint)
    if "question" in cols and ("options" in cols or "option1" in cols):
        return Schema("project")
    raise DataError(
        f"the columns ({', '.join(columns) or 'none'}) match no known schema (this project's "
        "option1..optionK + answer, A-OKVQA choices + correct_choice_idx, ScienceQA choices + answer, "
        "AI2D options + answer, MMBench A..D + answer); name them with "
        "--columns question=...,options=...,answer=..."
    )


def parse_columns(text: str) -> Schema:
    """``--columns question=q,options=a|b|c,answer=label[,image=img,hint=h,id=qid]`` as a :class:`Schema`."""
    roles: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        role, sep, column = part.partition("=")
        role, column = role.strip(), column.strip()
        if not sep or role not in COLUMN_ROLES or not column:
            raise DataError(
                f"--columns: {part!r} is not role=column with role one of {', '.join(COLUMN_ROLES)}; "
                "e.g. --columns question=q,options=choices,answer=label"
            )
        roles[role] = column
    missing = [r for r in ("question", "options") if r not in roles]
    if missing:
        raise DataError(f"--columns needs {' and '.join(missing)}=<column>; e.g. question=q,options=choices")
    options = tuple(c.strip() for c in roles["options"].split("|") if c.strip())
    return Schema(
        "columns",
        question=roles["question"],
        options=options,
        answer=roles.get("answer"),
        image=roles.get("image", "image"),
        hint=roles.get("hint"),
        id=roles.get("id"),
        option_list=len(options) == 1,
    )


def check_columns(schema: Schema, columns: list[str], source: str) -> None:
    """Refuse a schema naming columns the data does not have (one sentence, the columns found)."""
    named = [schema.question, *schema.options, schema.answer, schema.hint, schema.id]
    missing = [c for c in named if c and c not in columns]
    if missing:
        raise DataError(
            f"{source}: no column(s) {', '.join(missing)}; columns found: {', '.join(columns)}; fix --columns"
        )


def to_project_row(record: Mapping[str, Any], schema: Schema) -> dict[str, Any]:
    """One record in this project's row form (``question``, ``options`` list, ``answer``, ``image``, extras)."""
    if schema.name == "project":
        return dict(record)
    used = {schema.question, *schema.options, schema.answer, schema.image, schema.hint, schema.id}
    row = {k: v for k, v in record.items() if k not in used and k not in ("options", "answer", "file_name")}
    question = cell_text(record.get(schema.question))
    hint = cell_text(record.get(schema.hint)) if schema.hint else ""
    row["question"] = f"{hint}\n{question}" if hint and question else question
    if schema.option_list:
        row["options"] = record.get(schema.options[0])
    else:
        row["options"] = [cell_text(record.get(column)) for column in schema.options]
    row["answer"] = record.get(schema.answer) if schema.answer else None
    row["image"] = record.get(schema.image)
    if schema.id:
        row[schema.id] = record.get(schema.id)
    if "file_name" in record and schema.id is None:
        row["file_name"] = record["file_name"]
    return row
