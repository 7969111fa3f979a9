"""An error explained side by side: the gold option next to the option a variant chose instead.

:func:`live_run` answers a validation example once with the selected variants and, for heads that
score each option in its own prompt row (SWAG), also computes the pooling weights of the gold
option's row: the predictor reports only the chosen row's weights, and a SWAG row's score and
weights depend on that row alone, so running the gold option by itself gives exactly its row.
:func:`side_views` turns a run into two panels (heatmap, highlighted tokens, caption) without
running the model; :func:`attribute_both` runs captum for the gold and the chosen option.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from vqa_demo.explain.attribution import attribute, attribute_until_complete
from vqa_demo.prediction import AttentionMap
from vqa_demo.predictor import Predictor, VariantPrediction
from vqa_demo.ui.answer_state import AskResult
from vqa_demo.ui.explain_panels import MAX_STEPS, TOLERANCE, attention_view, attribution_view
from vqa_demo.ui.explain_render import VIEWS, attribution_explanation
from vqa_demo.ui.session_memory import keep_image
from vqa_demo.ui.tabs.error_data import option_text

PER_OPTION_ROW = "chosen option"  # AttentionMap.row of heads with one prompt row per option


@dataclass
class LiveRun:
    """One validation example answered now: ``predictions`` per variant and the gold rows' pooling weights."""

    index: int
    image: Image.Image
    question: str
    options: list[str]
    gold: int
    predictions: dict[str, VariantPrediction]
    gold_attention: dict[str, AttentionMap] = field(default_factory=dict)

    def as_ask_result(self, predictor: Predictor) -> AskResult:
        """The run as the Ask tab's result, so the Explain section's rendering applies unchanged."""
        return AskResult(
            keep_image(self.image, predictor.pixel_values), self.question, self.options, self.predictions
        )


def live_run(predictor: Predictor, record: dict[str, Any], image: Image.Image, names: list[str]) -> LiveRun:
    """Answer ``record`` with ``names``; add the gold row's weights where the head pools per option."""
    options = list(record["options"])
    gold = int(record["gold"])
    predictions = predictor.predict(image, record["question"], options, names)
    run = LiveRun(int(record["index"]), image, record["question"], options, gold, predictions)
    for name, prediction in predictions.items():
        attention = prediction.attention
        if attention is None or attention.row != PER_OPTION_ROW:
            continue
        if prediction.choice == gold:
            run.gold_attention[name] = attention
        else:
            alone = predictor.predict(image, record["question"], [options[gold]], [name])[name]
            run.gold_attention[name] = alone.attention
    return run


def score_line(run: LiveRun, variant: str, option: int) -> str:
    """What ``variant`` gave ``option`` now: its score share, and COND_GEN's log-likelihoods."""
    prediction = run.predictions[variant]
    line = f"{variant} gives it a score share of **{prediction.probabilities[option]:.0%}** (score {prediction.option_scores[option]:.3f})"
    details = prediction.cond_gen
    if details is not None:
        line += (
            f"; log-likelihood {details.loglik_mean[option]:.2f} per token, "
            f"{details.loglik_sum[option]:.2f} in all"
        )
    return line + "."


def side_views(run: LiveRun | None, variant: str | None, opacity: float) -> tuple:
    """``(gold image, gold tokens, gold caption, chosen image, chosen tokens, chosen caption)`` for ``variant``."""
    if run is None or not variant or variant not in run.predictions:
        message = "Select an example and a variant that answered it."
        return None, None, message, None, None, message
    prediction = run.predictions[variant]
    choice, gold = prediction.choice, run.gold
    gold_title = f"**Gold: {option_text(run.options, gold)}**. {score_line(run, variant, gold)}"
    chosen_title = (
        f"**{variant} chose {option_text(run.options, choice)}**. {score_line(run, variant, choice)}"
    )
    if choice == gold:
        chosen_title += " Answered now, the variant gets this example right (the stored run did not)."
    if prediction.cond_gen is not None:
        chosen_title += f" It generated “{prediction.cond_gen.generated_text}”."
    attention = prediction.attention
    if attention is None:
        why = (
            "COND_GEN scores the options by likelihood and has no pooling weights"
            if prediction.cond_gen is not None
            else f"{variant} pools the last token and has no pooling weights"
        )
        note = f" {why}; compute an attribution below to see what drove each score."
        return None, None, gold_title + note, None, None, chosen_title + note
    chosen_image, chosen_tokens, chosen_caption = attention_view(run.image, attention, opacity)
    if attention.row == PER_OPTION_ROW and variant in run.gold_attention:
        gold_image, gold_tokens, gold_caption = attention_view(
            run.image, run.gold_attention[variant], opacity, row="gold option"
        )
        return (
            gold_image,
            gold_tokens,
            f"{gold_title}\n\nPooling weights of the gold option's row. {gold_caption}",
            chosen_image,
            chosen_tokens,
            f"{chosen_title}\n\nPooling weights of the chosen option's row. {chosen_caption}",
        )
    shared = (
        f" {variant} pools one prompt that holds every option, so the same weights serve both sides; "
        "an attribution below separates the two options."
    )
    return (
        chosen_image,
        chosen_tokens,
        gold_title + shared,
        chosen_image,
        chosen_tokens,
        chosen_title + "\n\n" + chosen_caption,
    )


def attribute_both(
    predictor: Predictor,
    run: LiveRun,
    variant: str,
    method: str,
    steps: int,
    opacity: float,
    on_progress=None,
) -> tuple:
    """Captum attributions of ``variant``'s gold and chosen option scores, rendered as :func:`side_views` is."""
    choice = run.predictions[variant].choice
    targets = [run.gold] if choice == run.gold else [run.gold, choice]
    result = run.as_ask_result(predictor)
    if method == "integrated_gradients":
        # As in the Ask tab: more steps while the completeness error is large.
        attributions = [
            attribute_until_complete(
                predictor,
                result.image.pixel_values,
                run.question,
                run.options,
                variant,
                target,
                n_steps=steps,
                max_steps=MAX_STEPS,
                tolerance=TOLERANCE,
                on_progress=on_progress,
            )
            for target in targets
        ]
    else:
        attributions = attribute(
            predictor,
            [run.image] * len(targets),
            [run.question] * len(targets),
            [run.options] * len(targets),
            variant,
            targets=targets,
            method=method,
            n_steps=steps,
            on_progress=on_progress,
        )
    grid = predictor.backbone.patch_grid(result.image.pixel_values)
    # One colour scale for both sides, so the gold and the chosen maps compare.
    peak = max(attribution_explanation(a, grid, VIEWS[0]).own_peak for a in attributions)
    views = [attribution_view(result, a, opacity, grid, VIEWS[0], peak) for a in attributions]
    gold_view, chosen_view = views[0], views[-1]
    return (*gold_view, *chosen_view)
