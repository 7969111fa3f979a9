"""``training.compare --base tiny:<family> --smoke`` on every non-PaliGemma family, then the evaluate CLI
and the app's predictor holder on its checkpoints (tests/family_pipeline_checks.py). A family's own
expectations of its comparison (ViLT's zero-training baseline) are in its test_family_<name>.py."""

from __future__ import annotations

import json

import pytest

from tests.family_pipeline_checks import check_evaluate_cli_and_app_on_a_comparison, trained_variants
from vqa_demo.config import VARIANTS
from vqa_demo.evaluation.record_files import read_predictions
from vqa_demo.evaluation.run_tables import side_by_side_table
from vqa_demo.evaluation.saved_runs import paired_tests
from vqa_demo.evaluation.selection_report import ZERO_SHOT
from vqa_demo.model.families.registry import FAMILIES
from vqa_demo.model.strategies import STRATEGIES
from vqa_demo.ui import AppConfig
from vqa_demo.ui.assets import AppAssets

# Every registered family but the primary one (its comparison is the shipped default's), from the
# registry: what each must refuse, its zero-training baselines and zero_shot row follow from the family.
FAMILY_OF = {f.tiny_sources[0]: f for name, f in FAMILIES.items() if name != "paligemma"}
SOURCES = list(FAMILY_OF)
# A family without a language-model head (ViLT) refuses COND_GEN and offers its own baselines instead.
REFUSED = {
    s: [v for v, (head, _) in VARIANTS.items() if f.refusal(STRATEGIES[head])] for s, f in FAMILY_OF.items()
}
BASELINES = {s: list(f.baseline_configs(s)) for s, f in FAMILY_OF.items()}
# Every comparison adds the untrained base scored by COND_GEN likelihood, where COND_GEN applies.
ZERO_SHOT_ROWS = {s: [ZERO_SHOT] if f.generates_text else [] for s, f in FAMILY_OF.items()}


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES)
def test_compare_smoke_writes_every_applicable_variant(compare_smoke, source):
    out, comparison = compare_smoke(source)
    trained = [name for name in VARIANTS if name not in REFUSED.get(source, [])]
    assert comparison["setting"]["base"] == source and comparison["n"] == 16
    zero_shot = ZERO_SHOT_ROWS[source]
    assert sorted(comparison["variants"]) == sorted([*trained, *BASELINES.get(source, []), *zero_shot])
    assert sorted(trained_variants(comparison)) == sorted(trained)
    refused = REFUSED.get(source, []) + ([] if zero_shot else [ZERO_SHOT])
    assert sorted(comparison["not_applicable"]) == sorted(refused)
    assert all("not applicable" in reason for reason in comparison["not_applicable"].values())
    for name, entry in comparison["variants"].items():
        assert 0.0 <= entry["accuracy"]["accuracy"] <= 1.0, name
    for name in trained:
        assert comparison["variants"][name]["checkpoint"] == f"{name}/best"
        run_config = json.loads((out / name / "best" / "run_config.json").read_text())
        assert run_config["backbone"]["source"] == source, name
    if "cond_gen" in trained:
        assert comparison["variants"]["cond_gen"]["text_metrics"]
    records = read_predictions(out / "evaluation" / "predictions.jsonl")
    assert records and all(sorted(r["variants"]) == sorted(comparison["variants"]) for r in records)


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES)
def test_evaluate_cli_and_app_holder_run_on_the_comparison(compare_smoke, source, tmp_path):
    out, comparison = compare_smoke(source)
    check_evaluate_cli_and_app_on_a_comparison(out, comparison, tmp_path)


@pytest.mark.slow
def test_the_families_smoke_runs_sit_side_by_side_in_the_compare_tab(compare_smoke, app_assets):
    """The README's example: every family's smoke comparison set beside the served run. Smoke data
    is generated from one seed, so the families answered the same questions and pair; the served
    tiny assets answered others and do not."""
    outs = {source: compare_smoke(source)[0] for source in SOURCES}
    config = AppConfig(assets=app_assets.root, compare_runs=list(outs.values()))
    assets = AppAssets.load(config)
    assert assets.run_notes == []
    assert [run.model for run in assets.runs] == ["PaliGemma 2", *(FAMILY_OF[s].title for s in SOURCES)]
    assert len({run.questions for run in assets.runs[1:]}) == 1 != len({r.questions for r in assets.runs})
    tests, notes = paired_tests(assets.runs)
    # One paired test per variant two families' runs share (the decoders and BLIP: 5 variants and
    # zero_shot; with ViLT: its 4 classifiers); the served run answered other questions than each.
    rows = {s: set(VARIANTS) - set(REFUSED[s]) | set(ZERO_SHOT_ROWS[s]) | set(BASELINES[s]) for s in SOURCES}
    shared = [len(rows[a] & rows[b]) for i, a in enumerate(SOURCES) for b in SOURCES[i + 1 :]]
    assert len(tests) == sum(shared)
    assert len(notes) == len(SOURCES) and all("answered different questions" in n for n in notes)
    table = side_by_side_table(assets.runs).set_index("variant")
    # A family that refuses COND_GEN (ViLT) shows "not applicable" there, whatever its place in the registry.
    assert any("cond_gen" in REFUSED[s] for s in SOURCES)
    for source, run in zip(SOURCES, assets.runs[1:]):
        if "cond_gen" in REFUSED[source]:
            assert table.loc["cond_gen", run.label] == "not applicable"
