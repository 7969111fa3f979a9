"""An error explained side by side: the gold option next to the option a variant chose instead.

:func:`live_run` answers a validation example once with the selected variants and, for heads that
score each option in its own prompt row (SWAG), also computes the pooling weights of the gold
option's row: the predictor reports only the chosen row's weights, and a SWAG row's score and
weights depend on that row alone, so running the gold option by itself gives exactly its row.
:func:`side_views` turns a run into two panels (heatmap, token chips, caption) and one legend without
running the model; :func:`attribute_both` runs captum for the gold and the chosen option. Both draw
with the Ask tab's renderer, the two sides on one shared scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image

from vqa_demo.prediction import AttentionMap
from vqa_demo.ui.answer_state import AskResult
from vqa_demo.ui.explain_panels import attribution_panels, compute_attribution, pooling_panels
from vqa_demo.ui.explain_render import VIEWS
from vqa_demo.ui.session_memory import keep_image
from vqa_demo.ui.tabs.error_data import option_text

if TYPE_CHECKING:
    from vqa_demo.predictor import Predictor, VariantPrediction

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


def titles(run: LiveRun, variant: str) -> tuple[str, str]:
    """The gold and the chosen side's headings: the option, the variant's score for it, what it generated."""
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
    return gold_title, chosen_title


def side_views(run: LiveRun | None, variant: str | None, opacity: float, view: str = VIEWS[0]) -> tuple:
    """``(gold image, gold tokens, gold caption, chosen image, chosen tokens, chosen caption, legend)``.

    Both sides' pooling weights are drawn by the Ask tab's renderer on one shared scale, so the one
    legend reads both.
    """
    if run is None or not variant or variant not in run.predictions:
        message = "Select an example and a variant that answered it."
        return None, "", message, None, "", message, ""
    prediction = run.predictions[variant]
    gold_title, chosen_title = titles(run, variant)
    attention = prediction.attention
    if attention is None:
        why = (
            "COND_GEN scores the options by likelihood and has no pooling weights"
            if prediction.cond_gen is not None
            else f"{variant} pools the last token and has no pooling weights"
        )
        note = f" {why}; compute an attribution below to see what drove each score."
        return None, "", gold_title + note, None, "", chosen_title + note, ""
    display = run.image
    if attention.row == PER_OPTION_ROW and variant in run.gold_attention:
        (gold, chosen), legend = pooling_panels(
            display, [run.gold_attention[variant], attention], opacity, view, ["gold option", "chosen option"]
        )
        return (
            *gold[:2],
            f"{gold_title}\n\nPooling weights of the gold option's row. {gold[2]}",
            *chosen[:2],
            f"{chosen_title}\n\nPooling weights of the chosen option's row. {chosen[2]}",
            legend,
        )
    ((image, tokens, caption),), legend = pooling_panels(display, [attention], opacity, view)
    shared = (
        f" {variant} pools one prompt that holds every option, so the same weights serve both sides; "
        "an attribution below separates the two options."
    )
    return image, tokens, gold_title + shared, image, tokens, f"{chosen_title}\n\n{caption}", legend


def attribute_both(
    predictor: Predictor,
    run: LiveRun,
    variant: str,
    method: str,
    steps: int,
    opacity: float,
    view: str = VIEWS[0],
    on_progress=None,
) -> tuple:
    """Captum attributions of ``variant``'s gold and chosen option scores, as the Ask tab computes and
    draws them, on one shared scale: the seven views of :func:`side_views`, then what to keep for a
    repaint (:func:`attribution_views`)."""
    choice = run.predictions[variant].choice
    targets = [run.gold] if choice == run.gold else [run.gold, choice]
    result = run.as_ask_result(predictor)
    pixel_values = result.image.pixel_values
    attributions = [
        compute_attribution(
            predictor, pixel_values, run.question, run.options, variant, target, method, steps, on_progress
        )
        for target in targets
    ]
    stored = (result, attributions, predictor.backbone.patch_grid(pixel_values))
    return (*attribution_views(stored, opacity, view), stored)


def attribution_views(stored: tuple, opacity: float, view: str) -> tuple:
    """The seven views of :func:`side_views` for kept attributions ``(result, attributions, grid)``; no model call."""
    result, attributions, grid = stored
    panels, legend = attribution_panels(result, attributions, opacity, grid, view)
    return (*panels[0], *panels[-1], legend)
