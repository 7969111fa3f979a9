"""The load-test script in quick mode against ``python app.py`` on the tiny assets (loopback only)."""

from __future__ import annotations

import json

import pytest

from benchmarks import load_test

pytestmark = pytest.mark.slow


def test_quick_load_test_has_no_server_errors_and_bounded_memory(app_assets, tmp_path, capsys):
    out = tmp_path / "load_test.json"
    code = load_test.main(
        load_test.parse_args(
            ["--quick", "--assets", str(app_assets.root), "--out", str(out), "--deadline", "120"]
        )
    )
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert code == 0, printed
    assert "TARGET MISSED" not in printed and "cleanly rejected" in printed
    summary = data["summary"]
    assert summary["requests"] == data["clients"] * data["requests_per_client"] == 12
    assert data["http_5xx_server_errors"] == 0 and data["server_tracebacks"] == 0
    assert summary["other_errors"] == 0 and summary["answered"] >= 1 and summary["rejected"] >= 1
    assert summary["answered"] + summary["rejected"] + summary["queue_full"] == 12
    rss = data["rss_mb"]
    assert rss["after_warmup"] > 0 and rss["growth_during_run"] < load_test.RSS_GROWTH_LIMIT_MB
    assert data["targets"]["enforced"] and data["targets"]["all_passed"]


def test_schedule_mixes_valid_and_invalid_deterministically():
    first = [k.name for k in load_test.schedule(0, 25)]
    assert first == [k.name for k in load_test.schedule(0, 25)]
    assert first != [k.name for k in load_test.schedule(1, 25)]
    kinds = [k for c in range(8) for k in load_test.schedule(c, 25)]
    valid = sum(k.expected is None for k in kinds)
    assert 0.3 < valid / len(kinds) < 0.7


def test_outcomes_are_classified_by_the_error_category():
    valid, empty = load_test.MIX[0], load_test.MIX[1]

    def refused(message, category):
        return (
            f"⚠ **{message}**",
            None,
            None,
            "",
            {"error": {"category": category, "message": message}},
            None,
        )

    assert load_test.outcome_of(valid, ("✓ Answered with 5 variants in 0.3 s.", None)) == "answered"
    assert (
        load_test.outcome_of(empty, refused("The question is empty: type one.", "question_empty"))
        == "rejected"
    )
    assert (
        load_test.outcome_of(empty, refused("No image.", "image_missing")) == "wrong_category:image_missing"
    )
    assert load_test.outcome_of(valid, refused("Answering failed.", "prediction_failed")).startswith(
        "refused_valid"
    )
    assert load_test.outcome_of(valid, None) == "bad_output"


def test_quick_startup_times_the_page_and_the_first_answer(app_assets, tmp_path):
    """benchmarks.startup: a cold ``python app.py`` serves its page before its first answer comes back,
    against itself as the other checkout (both arms run, the ratios are taken)."""
    from benchmarks import startup

    out = tmp_path / "startup.json"
    args = ["--quick", "--assets", str(app_assets.root), "--vs", str(startup.REPO), "--out", str(out)]
    assert startup.main(startup.parse_args(args)) == 0
    data = json.loads(out.read_text())
    for arm in ("this", "vs"):
        (run,) = data["runs"][arm]
        assert 0 < run["page_s"] < run["first_answer_s"] < 180
        assert run["page_rss_mb"] > 0 and run["answer_rss_mb"] > 0
    assert data["page_ratio"] > 0 and data["first_answer_ratio"] > 0
