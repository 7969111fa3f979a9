"""Counterfactual edits in the Errors tab, on the tiny model: every variant scored again on an edited
example, beside its answer to the example as it is."""

from __future__ import annotations

import re

import pytest

from vqa_demo.ui.tabs.error_whatif import FIRST_COLUMNS, options_of

# Heads that score each option in a prompt of its own: swapping two options swaps their scores.
PER_OPTION = ("cond_gen", "swag-attentive", "swag-last_token")


@pytest.fixture(scope="module")
def answered(tiny_errors):
    """(record, the live run of every variant) for the first four-option example."""
    record = next(r for r in tiny_errors.records if len(r["options"]) == 4)
    names = sorted(record["variants"])
    sample, *_ = tiny_errors.show(record["index"], names)
    run, status, *_ = tiny_errors.rerun.live(sample, sample["variant"], 0.5)
    assert status.startswith("✓"), status
    return record, sample, run


def shares(cell: str) -> tuple[float, float | None]:
    """``"40.0% (was 62.5%)"`` -> (40.0, 62.5)."""
    numbers = [float(n) for n in re.findall(r"([\d.]+)%", cell)]
    return numbers[0], (numbers[1] if len(numbers) > 1 else None)


def by_variant(table: dict) -> dict[str, list]:
    return {row[0]: row for row in table["data"]}


def test_the_box_holds_the_selected_example(tiny_errors, answered):
    record, sample, _ = answered
    question, options, status, table = tiny_errors.whatif.fill(sample)
    assert question == record["question"] and options_of(options) == record["options"]
    assert (status, table) == ("", None)
    assert tiny_errors.whatif.fill(None) == ("", "", "", None)


def test_an_unedited_example_gets_its_own_scores(tiny_errors, answered):
    record, sample, run = answered
    status, table = tiny_errors.whatif.score(run, record["question"], "\n".join(record["options"]))
    assert status.startswith("✓ Nothing was edited"), status
    rows = by_variant(table)
    assert set(rows) == set(run.predictions)
    for name, prediction in run.predictions.items():
        for position, cell in enumerate(rows[name][len(FIRST_COLUMNS) :]):
            now, was = shares(cell)
            assert now == was == pytest.approx(100 * float(prediction.probabilities[position]), abs=0.05)
    gold = record["gold"]
    assert table["headers"][len(FIRST_COLUMNS) + gold].startswith(f"{'ABCDE'[gold]} ✓")


def test_swapping_two_options_swaps_the_scores_of_per_option_heads(tiny_errors, answered):
    record, _, run = answered
    options = list(record["options"])
    options[0], options[1] = options[1], options[0]
    status, table = tiny_errors.whatif.score(run, record["question"], "\n".join(options))
    assert status.startswith("✓ Scored the edit (options A, B)"), status
    rows = by_variant(table)
    checked = [name for name in PER_OPTION if name in rows]
    assert checked, rows
    for name in checked:
        cells = rows[name][len(FIRST_COLUMNS) :]
        (a_now, a_was), (b_now, b_was) = shares(cells[0]), shares(cells[1])
        assert a_now == pytest.approx(b_was, abs=0.11) and b_now == pytest.approx(a_was, abs=0.11), name
        for cell in cells[2:]:  # C and D are untouched
            now, was = shares(cell)
            assert now == pytest.approx(was, abs=0.11), name
        before = run.predictions[name].choice
        after = {0: 1, 1: 0}.get(before, before)
        assert rows[name][1:3] == ["ABCDE"[before], "ABCDE"[after]], name
    # The sentence names exactly the variants whose chosen text moved.
    moved = [n for n in checked if rows[n][1] != rows[n][2]]
    for name in moved:
        assert name in status


def test_a_fifth_option_is_scored_without_a_gold_mark(tiny_errors, answered):
    record, _, run = answered
    status, table = tiny_errors.whatif.score(
        run, record["question"], "\n".join([*record["options"], "", "purple"])
    )
    assert status.startswith("✓ Scored the edit (the options (4 → 5))"), status
    option_headers = table["headers"][len(FIRST_COLUMNS) :]
    assert [h.split(":")[0] for h in option_headers] == list("ABCDE")
    assert option_headers[-1] == "E: purple" and not any("✓" in h for h in option_headers)
    for row in table["data"]:
        assert shares(row[-1])[1] is None  # E had no option before
        assert sum(shares(cell)[0] for cell in row[len(FIRST_COLUMNS) :]) == pytest.approx(100, abs=0.5)


@pytest.mark.parametrize(
    "question, options, fragment",
    [
        ("", "red\nblue", "question is empty"),
        ("What colour?", "red\nRed ", "same"),
        ("What colour?", "red", "at least"),
        ("What colour?", "\n".join("abcdefghi"), "at most"),
    ],
)
def test_an_edit_the_ask_form_would_refuse_gets_its_sentence(
    tiny_errors, answered, question, options, fragment
):
    _, _, run = answered
    status, table = tiny_errors.whatif.score(run, question, options)
    assert status.startswith("⚠") and fragment in status.lower() and table is None, status


def test_no_example_selected_asks_for_one(tiny_errors):
    status, table = tiny_errors.whatif.score(None, "What colour?", "red\nblue")
    assert status.startswith("⚠") and "Select an example" in status and table is None
