"""The benchmark scripts run end to end in --quick mode and write the JSON they promise."""

from __future__ import annotations

import json
import math

import pytest
import torch

from benchmarks import latency, real_shapes, sharing, training_throughput
from benchmarks.common import Targets, finish


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """--quick sets torch to one thread; give the rest of the session its setting back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def run_quick(module, tmp_path, *extra):
    out = tmp_path / f"{module.__name__.rsplit('.', 1)[-1]}.json"
    code = module.main(module.parse_args(["--quick", "--out", str(out), *extra]))
    assert code == 0  # quick mode reports targets but never fails on them
    data = json.loads(out.read_text())
    assert data["mode"] == "quick"
    assert data["machine"]["cpu_count"] >= 1 and "load_average_start" in data["machine"]
    assert data["targets"]["enforced"] is False
    return data


def positive(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_latency_quick(tmp_path):
    data = run_quick(latency, tmp_path)
    latencies = data["latency"]
    assert set(latencies) == {
        "cond_gen",
        "multi_class-last_token",
        "multi_class-attentive",
        "swag-last_token",
        "swag-attentive",
        "all five",
    }
    for entry in latencies.values():
        assert positive(entry["median"]) and entry["p90"] >= entry["median"] and entry["n"] == 5
    assert positive(data["all_variants_sharing_ratio"])


def test_latency_app_path_failure_is_recorded_not_raised(tmp_path):
    data = run_quick(latency, tmp_path, "--app-url", "http://127.0.0.1:9", "--repeats", "1")
    assert "error" in data["app"]


@pytest.mark.slow  # a benchmark run: minutes on 2 cores
def test_sharing_quick(tmp_path):
    data = run_quick(sharing, tmp_path, "--repeats", "2")
    ratios = data["ratios"]
    assert set(ratios) == {
        "vision_once",
        "swag_batched",
        "cond_gen_shared_prefix",
        "batched_evaluation",
        "merged_adapters",
    }
    assert ratios["merged_adapters"]["merged"], ratios["merged_adapters"]["unmerged_reason"]
    for entry in ratios.values():
        assert positive(entry["ratio"]) and positive(entry["naive_s"]) and positive(entry["optimised_s"])
    # The naive baselines compute the same scores as the engine.
    assert all(diff <= 1e-4 for diff in data["agreement_max_abs_diff"].values())
    assert len(data["targets"]["checks"]) == 4


@pytest.mark.slow  # a benchmark run: minutes on 2 cores
def test_real_shapes_quick(tmp_path):
    data = run_quick(real_shapes, tmp_path, "--rounds", "1")
    cond_gen = data["cond_gen_5_options"]
    for key in ("naive_s", "optimised_s", "ratio_end_to_end", "ratio_lm_prefix_sharing", "prefix_tokens"):
        assert positive(cond_gen[key]), key
    assert cond_gen["options"] == 5 and cond_gen["max_abs_diff"] <= 1e-4
    assert positive(data["cond_gen_4_options"]["optimised_s"])
    assert positive(data["swag_4_options"]["ratio"])
    assert positive(data["prefill"]["tokens_per_s_lm"])
    int8 = data["int8_dynamic"]
    assert positive(int8["ratio"]) and int8["questions"] == 3 and 0 <= int8["choices_agree"] <= 3
    # The scaled-down model keeps the real structure.
    text = data["model"]["text_config"]
    assert text["final_logit_softcapping"] == 30.0 and text["attn_logit_softcapping"] == 50.0
    assert text["num_attention_heads"] == 2 * text["num_key_value_heads"]


def test_real_shapes_config_is_paligemma2_3b_224():
    from vqa_demo.model.families.paligemma.tiny import tiny_processor

    processor = tiny_processor(224, 14)
    config = real_shapes.build_config(processor, real_shapes.REAL_TEXT, real_shapes.REAL_VISION)
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.intermediate_size) == (2304, 26, 9216)
    assert (text.num_attention_heads, text.num_key_value_heads, text.head_dim) == (8, 4, 256)
    assert text.vocab_size == 257216 and text.query_pre_attn_scalar == 256 and text.sliding_window == 4096
    assert (vision.hidden_size, vision.num_hidden_layers, vision.intermediate_size) == (1152, 27, 4304)
    assert vision.num_attention_heads == 16 and (vision.image_size // vision.patch_size) ** 2 == 256
    assert config.projection_dim == 2304 and vision.projection_dim == 2304


def test_training_throughput_quick(tmp_path):
    data = run_quick(training_throughput, tmp_path)
    for key in (
        "samples_per_s",
        "achieved_gflops",
        "peak_gflops",
        "fraction_of_peak",
        "flops_per_step_measured",
        "flops_per_step_analytic_4NT",
        "tokens_per_step",
    ):
        assert positive(data[key]), key
    assert data["model"]["trainable_parameters"] < data["model"]["parameters"]


@pytest.mark.parametrize("no_fail, expected", [(False, 1), (True, 0)])
def test_missed_target_fails_loudly_in_full_mode(tmp_path, capsys, no_fail, expected):
    targets = Targets(enforce=True)
    targets.check("speed-up", 1.2, ">", 1.5, "x")
    args = type("Args", (), {"out": tmp_path / "r.json", "no_fail": no_fail})()
    assert finish("demo", {"machine": {}}, targets, args) == expected
    assert "TARGET MISSED: speed-up: 1.2x (target > 1.5x)" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["targets"]["all_passed"] is False
