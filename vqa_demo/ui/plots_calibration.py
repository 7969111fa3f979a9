"""The Compare tab's reliability diagrams: one small chart per variant, from ``comparison.json``.

Each variant's ``calibration`` holds, per probability definition, the held-out reliability table
before and after temperature scaling (:func:`vqa_demo.evaluation.calibration.calibration_report`);
the charts show the ``served`` definition, the score shares the app reports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from vqa_demo.config import in_variant_order
from vqa_demo.evaluation.calibration import SERVED
from vqa_demo.ui.plots import FONT, empty_figure, variant_colour

NO_CALIBRATION = "No calibration data in this run"
ECE_SENTENCE = (
    "**ECE** (expected calibration error) is the average gap between how sure a variant says it is "
    "and how often it is right, over answers grouped by that sureness: 0 is perfectly calibrated, "
    "and 0.10 means its score share is off by about 10 points."
)
COLUMNS = 3


def served_reliability(comparison: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``{variant: served calibration}`` for the variants that have reliability tables, in variant order."""
    variants = (comparison or {}).get("variants") or {}
    out = {}
    for name in in_variant_order(variants):
        served = (((variants[name] or {}).get("calibration") or {}) or {}).get(SERVED)
        if isinstance(served, Mapping) and served.get("reliability_before"):
            out[name] = served
    return out


def panel_title(name: str, served: Mapping[str, Any]) -> str:
    before, after = served.get("ece_before"), served.get("ece_after")
    if before is None:
        return name
    return f"{name}<br>ECE {before:.3f}" + (f" → {after:.3f}" if after is not None else "")


def reliability_figure(comparison: Mapping[str, Any] | None) -> go.Figure:
    """One panel per variant: held-out accuracy per confidence bin (bars, before temperature scaling)
    and after it (line), against the diagonal of perfect calibration; says so when there is no data."""
    tables = served_reliability(comparison)
    if not tables:
        return empty_figure(NO_CALIBRATION + " (comparison.json has no reliability tables).")
    names = list(tables)
    columns = min(COLUMNS, len(names))
    rows = math.ceil(len(names) / columns)
    fig = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=[panel_title(n, tables[n]) for n in names],
        horizontal_spacing=0.08,
        vertical_spacing=0.22 / rows,
    )
    for i, name in enumerate(names):
        row, col = i // columns + 1, i % columns + 1
        colour = variant_colour(name, names)
        fig.add_scatter(
            x=[0, 1], y=[0, 1], mode="lines", line={"color": "#999", "dash": "dash"}, name="calibrated",
            showlegend=i == 0, legendgroup="calibrated", hoverinfo="skip", row=row, col=col,
        )  # fmt: skip
        before = [b for b in tables[name]["reliability_before"] if b.get("count")]
        fig.add_bar(
            x=[(b["bin_low"] + b["bin_high"]) / 2 for b in before],
            y=[b["accuracy"] for b in before],
            width=[b["bin_high"] - b["bin_low"] for b in before],
            customdata=[[b["mean_confidence"], b["count"]] for b in before],
            hovertemplate="mean share %{customdata[0]:.2f}: right %{y:.0%} of %{customdata[1]}<extra></extra>",
            marker={"color": colour, "line": {"color": "#fff", "width": 1}},
            name=name,
            showlegend=False,
            row=row,
            col=col,
        )
        after = [b for b in tables[name].get("reliability_after") or [] if b.get("count")]
        if after:
            fig.add_scatter(
                x=[b["mean_confidence"] for b in after], y=[b["accuracy"] for b in after],
                mode="lines+markers", line={"color": "#222"}, marker={"size": 5},
                name="after temperature scaling", legendgroup="after", showlegend=i == 0, row=row, col=col,
            )  # fmt: skip
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title_text="score share", title_standoff=4)
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    for row in range(1, rows + 1):
        fig.update_yaxes(title_text="right", row=row, col=1)
    fig.update_annotations(font_size=12)
    fig.update_layout(
        template="plotly_white",
        height=250 * rows + 90,
        margin={"l": 50, "r": 10, "t": 60, "b": 40},
        font={"family": FONT, "size": 12},
        legend={"orientation": "h", "yanchor": "top", "y": -0.08 / rows - 0.04, "xanchor": "left", "x": 0},
        bargap=0,
    )
    return fig
