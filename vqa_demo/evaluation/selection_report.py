"""What a comparison adds per variant from its two evaluations: the selection split and the held-out one.

Everything fitted or chosen (COND_GEN's decision rule, the temperature, PriDe's position prior) uses
the selection split's records; everything reported is measured on the held-out split's records.
``training.compare`` writes the result into ``comparison.json``; the Compare tab and the model card
read it back. Older files lack these keys, and their readers treat them as absent. Torch-free.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vqa_demo.config import COND_GEN_SCORINGS
from vqa_demo.evaluation import metrics as M
from vqa_demo.evaluation.calibration import calibration_report
from vqa_demo.evaluation.position import PRIDE_RULE, position_prior, position_reading, pride_metrics

ZERO_SHOT = "zero_shot"
ZERO_SHOT_TRAINING = (
    "none: the base model with no adapter, scored by COND_GEN likelihood under the same prompt"
)
RULE_ALPHA = 0.05  # another decision rule replaces the default only when McNemar calls it better
CIRCULAR_KEYS = ("circular_accuracy", "circular", "mean_consistency", "per_rotation_accuracy")


def best_rule(scoring_accuracy: dict[str, dict]) -> str:
    """The COND_GEN decision rule with the highest selection-split accuracy (ties: the first in
    :data:`~vqa_demo.config.COND_GEN_SCORINGS` order)."""
    ranked = [rule for rule in COND_GEN_SCORINGS if rule in scoring_accuracy]
    return max(ranked, key=lambda rule: (scoring_accuracy[rule]["accuracy"], -ranked.index(rule)))


def rule_correct(records: list[dict], name: str, rule: str) -> list[bool]:
    """Per labeled record, whether the argmax of ``rule``'s scores is the gold option."""
    rows = [r for r in records if r["gold"] is not None and rule in r["variants"].get(name, {})]
    return [int(np.argmax(r["variants"][name][rule])) == r["gold"] for r in rows]


def chosen_rule(records: list[dict], name: str, default: str) -> str:
    """The decision rule a comparison uses: ``default`` unless another rule is more accurate on the
    selection split ``records`` and an exact McNemar test against ``default`` calls the difference
    (p < 0.05; the most accurate such rule). A bare maximum would follow noise: on 300 questions
    the rules often differ by a point or two."""
    base = rule_correct(records, name, default)
    best, best_accuracy = default, float(np.mean(base)) if base else 0.0
    for rule in COND_GEN_SCORINGS:
        correct = rule_correct(records, name, rule)
        if rule == default or len(correct) != len(base) or not correct:
            continue
        accuracy = float(np.mean(correct))
        if accuracy > best_accuracy and M.mcnemar_exact(correct, base)["p_value"] < RULE_ALPHA:
            best, best_accuracy = rule, accuracy
    return best


def decision_rules(selection: dict, held_out: dict, used: str | None) -> dict[str, Any]:
    """COND_GEN's rules side by side: accuracy on each split, the rule in use and the one the
    selection split favours (``selection``/``held_out``: the variant's metrics on each split)."""
    rules = {
        rule: {
            "selection_accuracy": (selection.get("scoring_accuracy") or {}).get(rule),
            "accuracy": held_out["scoring_accuracy"][rule],
        }
        for rule in COND_GEN_SCORINGS
        if rule in held_out["scoring_accuracy"]
    }
    chosen = best_rule(selection["scoring_accuracy"]) if selection.get("scoring_accuracy") else None
    return {"rules": rules, "used": used, "best_on_selection": chosen}


def circular_summary(metrics: dict) -> dict | None:
    """The circular evaluation's figures without its per-question lists (None when not run)."""
    circular = metrics.get("circular")
    return {k: circular[k] for k in CIRCULAR_KEYS if k in circular} if circular else None


def variant_report(
    name: str,
    selection: tuple[dict, list[dict]],
    held_out: tuple[dict, list[dict]],
    rule: str | None = None,
) -> dict[str, Any]:
    """The selection-split figures of variant ``name`` for ``comparison.json``.

    ``selection``/``held_out``: ``(metrics.json content, records)`` of each evaluation; ``rule``: the
    COND_GEN decision rule in use (None for other heads). Returns ``selection_accuracy``,
    ``calibration`` (per probability definition, :func:`~vqa_demo.evaluation.calibration.calibration_report`),
    ``circular``, ``position_reading``, ``pride`` (the prior-debiased rule on the held-out split, with
    the prior estimated on the selection split) and, for COND_GEN, ``decision_rules``.
    """
    sel_metrics = selection[0]["variants"].get(name, {})
    held_metrics = held_out[0]["variants"].get(name, {})
    circular = circular_summary(held_metrics)
    report: dict[str, Any] = {
        "selection_accuracy": sel_metrics.get("accuracy"),
        "calibration": calibration_report(selection[1], held_out[1], name),
        "circular": circular,
        "position_reading": position_reading(held_metrics.get("position_bias"), circular),
        PRIDE_RULE: pride_metrics(held_out[1], name, position_prior(selection[1], name)),
    }
    if "scoring_accuracy" in held_metrics:
        report["decision_rules"] = decision_rules(sel_metrics, held_metrics, rule)
    return report
