"""The Ask tab for a first-time user: the model card, chance-level variants, examples, notes under answers.

The card is checked against the shipped ``assets/`` (files only, nothing is loaded) and against the
tiny assets of the other app tests; the "text the model saw" against the tokenizer itself.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageFilter
from scipy.stats import binomtest

from tests.app_support import FakePredictor
from vqa_demo.data.splits import load_split
from vqa_demo.loading import ASSETS_DIR
from vqa_demo.ui import AppConfig
from vqa_demo.ui.answer_notes import AnswerNotes, domain_note, looks_like_diagram, palette_share, seen_prompts
from vqa_demo.ui.assets import AppAssets
from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.model_card import build_model_card, card_markdown, safetensors_parameters
from vqa_demo.ui.tabs.ask import MAX_OPTIONS, AskCallbacks
from vqa_demo.ui.tabs.explain import ExplainCallbacks

README = ASSETS_DIR.parent / "README.md"
NAMES = ["cond_gen", "multi_class-last_token", "multi_class-attentive", "swag-last_token", "swag-attentive"]


@pytest.fixture(scope="module")
def shipped():
    """The shipped default's config, holder (never loaded), assets and card."""
    config = AppConfig()
    holder = PredictorHolder.from_config(config)
    assets = AppAssets.load(config)
    card = build_model_card(holder.infos, assets.comparison, holder.checkpoints, config.base)
    return config, holder, assets, card


def photo_like(seed: int = 0) -> Image.Image:
    """Smooth gradients plus sensor-like noise: the colour statistics of a photograph."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:150, 0:200] / 200.0
    rgb = np.stack([xx * 200 + 30, yy * 180 + 40, xx * yy * 150 + 60], axis=2)
    noisy = (rgb + rng.normal(0, 12, rgb.shape)).clip(0, 255).astype(np.uint8)
    return Image.fromarray(noisy).filter(ImageFilter.GaussianBlur(1))


def test_card_accuracies_equal_comparison_json(shipped):
    _, holder, _, card = shipped
    comparison = json.loads((ASSETS_DIR / "comparison.json").read_text())
    assert list(card.standings) == NAMES
    for name, standing in card.standings.items():
        expected = comparison["variants"][name]["accuracy"]
        assert (standing.accuracy, standing.low, standing.high, standing.n) == (
            expected["accuracy"],
            expected["low"],
            expected["high"],
            expected["n"],
        )
        assert standing.chance == 0.25
        # Chance level = the exact (Clopper-Pearson) 95% interval includes chance, i.e. p >= 0.05.
        exact = binomtest(expected["correct"], expected["n"], 0.25).proportion_ci(0.95, "exact")
        assert standing.chance_level == (exact.low <= 0.25 <= exact.high)
    assert {n for n, s in card.standings.items() if s.chance_level} == {
        "multi_class-last_token",
        "multi_class-attentive",
    }
    text = card_markdown(card)
    for name in NAMES:
        a = comparison["variants"][name]["accuracy"]
        assert f"| `{name}` | {a['accuracy']:.3f} [{a['low']:.3f}, {a['high']:.3f}]" in text
    # The untrained zero_shot row of the comparison is no served variant: the card does not list it.
    assert "zero_shot" in comparison["variants"] and "`zero_shot`" not in text


def test_card_describes_the_offline_default(shipped):
    _, _, _, card = shipped
    summary = json.loads((ASSETS_DIR / "base" / "pretrain_summary.json").read_text())
    assert card.offline_default and card.base_name == "assets/base"
    assert (
        card.parameters
        == summary["num_parameters"]
        == safetensors_parameters(ASSETS_DIR / "base" / "model.safetensors")
    )
    assert (card.image_size, card.image_tokens) == (96, summary["image_seq_length"])
    text = card_markdown(card)
    assert "2.0 M parameters" in text and "96 px" in text
    for words in ("bar charts", "pie charts", "clocks", "shapes", "tables", "real photographs"):
        assert words in text
    assert "`VQA_CHECKPOINTS`" in text and "`VQA_BASE`" in text


def test_readme_app_section_starts_with_the_same_card(shipped):
    _, _, _, card = shipped
    readme = README.read_text(encoding="utf-8")
    section = readme[readme.index("## The app") :]
    assert card_markdown(card) in section[:4000]


def test_card_for_other_checkpoints_comes_from_their_configs(app_assets, tmp_path):
    holder = PredictorHolder.from_config(app_assets.config)
    card = build_model_card(holder.infos, None, holder.checkpoints, app_assets.config.base)
    assert not card.offline_default and card.base_name == str(app_assets.root / "base")
    assert card.image_size == 20 and card.parameters  # the tiny base: 20 px, weights on disk
    assert "real photographs" not in card_markdown(card)
    # Without a comparison the run configs' own validation metrics are used, when they have them.
    assert all(
        card.standings[i.name].accuracy == i.config.metrics["val_accuracy"]["accuracy"]
        for i in holder.infos
        if i.config.metrics.get("val_accuracy")
    )
    hub = build_model_card([], None, base="google/paligemma2-3b-pt-448")
    assert (hub.size_label, hub.image_size) == ("3B", 448)
    assert "3B parameters, 448 px images" in card_markdown(hub)


def test_chance_level_variants_are_unticked_marked_and_ranked_last(shipped):
    config, holder, assets, card = shipped
    ask = AskCallbacks(holder, config, assets.examples, card)
    assert [ask.ticks.default_tick(n) for n in NAMES] == [True, False, False, True, True]
    assert ask.ticks.variant_info("multi_class-attentive").startswith("⚠ chance level")
    cond_gen = card.standings["cond_gen"]
    assert (
        f"val. {cond_gen.accuracy:.2f} [{cond_gen.low:.2f}, {cond_gen.high:.2f}]"
        in ask.ticks.variant_info("cond_gen")
    )
    explain = ExplainCallbacks(holder, card)
    # Meaningful variants first, each group by accuracy (best first).
    by_accuracy = sorted(NAMES, key=lambda n: (card.standings[n].chance_level, -card.standings[n].accuracy))
    assert explain.ranked(NAMES) == by_accuracy
    assert by_accuracy[:3] == ["cond_gen", "swag-last_token", "swag-attentive"]
    assert ("multi_class-attentive (chance level)", "multi_class-attentive") in explain.choices(NAMES)


def test_answers_are_explained_with_the_best_meaningful_attentive_variant(shipped, tmp_path):
    config, _, _, card = shipped
    fake = FakePredictor()
    ask = AskCallbacks(PredictorHolder(predictor=fake), config, card=card)
    image = tmp_path / "chart.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(image)
    ticks = [True] * len(NAMES)
    _, table, *_, result = ask.answer(str(image), "Q?", 4, "a", "b", "c", "d", *[""] * 4, *ticks)
    notes = dict(zip(table["variant"], table["note"]))
    assert notes["multi_class-attentive"] == "chance level on validation" and notes["cond_gen"] == ""
    picker, *_, attr_picker, _, _, _, _ = ExplainCallbacks(ask.holder, card).refresh(result, 0.5)
    assert picker["value"] == "swag-attentive" and attr_picker["value"] == "cond_gen"


def test_option_buttons_keep_the_users_ticks_and_stop_at_the_limits(shipped):
    config, holder, assets, card = shipped
    ask = AskCallbacks(holder, config, assets.examples, card)
    count, *updates = ask.change_count(4, +1)
    ticks, (add, remove) = updates[MAX_OPTIONS:-2], updates[-2:]
    # Variants that answer 4 and 5 options keep whatever the user chose: no value is sent.
    assert [("value" in t) for t in ticks] == [False, True, True, False, False]
    assert add["interactive"] and remove["interactive"]
    count, *updates = ask.change_count(5, -1)
    ticks = updates[MAX_OPTIONS:-2]
    # multi_class comes back with its default tick (off: chance level), the rest untouched.
    assert [t.get("value") for t in ticks] == [None, False, False, None, None]
    assert ask.change_count(7, +1)[-2:][0]["interactive"] is False
    assert ask.change_count(3, -1)[-1]["interactive"] is False
    assert ask.change_count(2, +1)[-1]["interactive"] is True


def test_every_shipped_example_is_offered_with_its_full_caption(shipped):
    _, _, assets, _ = shipped
    listing = json.loads((ASSETS_DIR / "examples" / "examples.json").read_text())
    assert len(assets.examples) == len(listing) == 10
    for example, entry in zip(assets.examples, listing):
        assert example.image_path.name == entry["image"] and example.options == entry["options"]
        assert example.caption == f"{entry['family']}: {entry['question']}"
    assert {e["family"] for e in listing} == {"bar_chart", "clock", "pie_chart", "shapes", "table"}


def test_the_domain_heuristic_separates_diagrams_from_photos():
    split = load_split(ASSETS_DIR / "validation", check_images=False)
    shares = [palette_share(Image.open(ex.image_path)) for ex in split.examples]
    assert min(shares) > 0.85  # every shipped diagram is flat colour
    assert palette_share(photo_like()) < 0.2 and not looks_like_diagram(photo_like(1))


def installed_sample_photos() -> list:
    """Real photographs that ship inside installed packages (not with this project)."""
    import importlib.util
    from pathlib import Path

    found = []
    for package, folder in (
        ("gradio", "media_assets/images"),
        ("gradio", "test_data"),
        ("sklearn", "datasets/images"),
        ("matplotlib", "mpl-data/sample_data"),
    ):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(list(spec.submodule_search_locations)[0]) / folder
        found += sorted(p for p in root.glob("*") if p.suffix.lower() in {".jpg", ".jpeg"})
    return found


def test_real_photos_from_installed_packages_get_the_domain_note(shipped):
    _, _, _, card = shipped
    photos = installed_sample_photos()
    if len(photos) < 5:
        pytest.skip("fewer than 5 sample photos in the installed packages")
    for path in photos:
        with Image.open(path) as photo:
            assert domain_note(card, photo) is not None, (path, palette_share(photo))
    for example in ASSETS_DIR.joinpath("examples").glob("*.png"):
        with Image.open(example) as diagram:
            assert domain_note(card, diagram) is None, example


def test_a_photo_shows_the_domain_note_under_the_answer(shipped, tmp_path):
    config, _, _, card = shipped
    ask = AskCallbacks(PredictorHolder(predictor=FakePredictor()), config, card=card)
    notes = AnswerNotes(ask.holder, card)
    path = tmp_path / "photo.png"
    photo_like().save(path)
    *_, result = ask.answer(str(path), "What is in the picture?", 4, "a", "b", "c", "d", *[""] * 4, True)
    assert "Outside this model's domain" in notes.render(result) and "`VQA_BASE`" in notes.render(result)
    diagram = ASSETS_DIR / "examples" / "validation_000001.png"
    *_, result = ask.answer(str(diagram), "Which slice?", 4, "a", "b", "c", "d", *[""] * 4, True)
    assert notes.render(result) == ""
    # Another model (not the synthetic default) gets no such note.
    other = AnswerNotes(ask.holder, build_model_card([], None, base="google/paligemma2-3b-pt-448"))
    *_, result = ask.answer(str(path), "What is in the picture?", 4, "a", "b", "c", "d", *[""] * 4, True)
    assert other.render(result) == ""


def test_a_cut_prompt_shows_the_text_the_model_saw(tiny_predictor, app_assets):
    options = ["red", "blue", "green", "grey"]
    question = "Which colour " + " ".join(f"word{i}" for i in range(400)) + " END?"
    seen = seen_prompts(
        tiny_predictor, ["cond_gen", "swag-attentive", "multi_class-last_token"], question, options
    )
    assert set(seen) == {"cond_gen", "swag-attentive", "multi_class-last_token"}
    tokenizer = tiny_predictor.backbone.tokenizer
    for name, text in seen.items():
        config = tiny_predictor.variants[name].config
        # The kept text fills the text budget exactly (<bos> and the separator are the other tokens).
        kept = tokenizer(text, add_special_tokens=False)["input_ids"]
        separator = tokenizer("\n", add_special_tokens=False)["input_ids"]
        assert len(kept) == config.prompt.max_text_tokens - 1 - len(separator)
        assert text.startswith("Which colour word0") and "END?" not in text
    assert "Options: red | blue | green | grey" in seen["cond_gen"]
    assert seen["swag-attentive"].endswith("Hypothesis: red")
    assert seen_prompts(tiny_predictor, ["cond_gen"], "Which colour?", options) == {}

    holder = PredictorHolder(predictor=tiny_predictor)
    ask = AskCallbacks(holder, app_assets.config)
    image = next((app_assets.root / "validation").glob("*.png"))
    ticks = [n == "cond_gen" for n in holder.names]
    _, table, *_, result = ask.answer(str(image), question, 4, *options, *[""] * 4, *ticks)
    assert "truncated" in " ".join(table["note"])
    rendered = AnswerNotes(holder, None).render(result)
    assert (
        "saw only" in rendered and "`cond_gen`" in rendered and "word0" in rendered and "END?" not in rendered
    )
