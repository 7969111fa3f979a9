"""Plotly figures for the app: answer probabilities, comparison charts, agreement and position bias.

Every function takes plain Python data (lists, the dicts of ``metrics.json`` / ``comparison.json``)
and returns a ``plotly.graph_objects.Figure``; a variant keeps the same colour in every chart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from vqa_demo.config import OPTION_LETTERS, VARIANTS, in_variant_order

PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6", "#9D755D")
VARIANT_ORDER = tuple(VARIANTS)
# Runs (backbones) get their own colours, far from every variant colour, and hatched bars, so a run is
# never read as a variant (tests/test_ui_compare.py checks the distance).
RUN_PALETTE = ("#2E2E2E", "#E0C000", "#5E3C99", "#5A5A5A", "#0B5563", "#800040", "#7A7A2A")
RUN_PATTERN = "/"
CHANCE_LINE = {"dash": "dot", "color": "#555", "width": 2}
FONT = "Inter, ui-sans-serif, system-ui, sans-serif"


def variant_colour(name: str, names: Sequence[str] = ()) -> str:
    """The colour of ``name``: the five standard variants have fixed colours, others follow ``names``."""
    if name in VARIANT_ORDER:
        return PALETTE[VARIANT_ORDER.index(name)]
    extra = [n for n in names if n not in VARIANT_ORDER]
    index = len(VARIANT_ORDER) + (extra.index(name) if name in extra else 0)
    return PALETTE[index % len(PALETTE)]


def option_label(index: int, text: str, width: int = 28) -> str:
    """``"B) a long option te…"``: a short axis label for option ``index``."""
    text = " ".join(str(text).split())
    short = text if len(text) <= width else text[: width - 1] + "…"
    return f"{OPTION_LETTERS[index]}) {short}"


def _layout(fig: go.Figure, title: str = "", height: int = 360, **extra) -> go.Figure:
    """House style; charts usually go without a title, the ``gr.Plot`` label says what they show."""
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 15}} if title else None,
        template="plotly_white",
        height=height,
        margin={"l": 55, "r": 20, "t": 70 if title else 36, "b": 50},
        font={"family": FONT, "size": 12},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1.0},
        **extra,
    )
    return fig


def empty_figure(message: str, height: int = 260) -> go.Figure:
    """A blank chart carrying ``message`` (used when a data file is missing)."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, font={"size": 14, "color": "#666"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, "", height=height)


def probabilities_figure(
    options: Sequence[str],
    probabilities: Mapping[str, Sequence[float]],
    choices: Mapping[str, int] | None = None,
    gold: int | None = None,
    title: str = "",
) -> go.Figure:
    """Grouped bars: x = options, one bar per variant; the chosen option's bar is outlined.

    ``probabilities`` maps variant -> ``float[K]``; ``gold`` (0-based) is marked on the axis.
    """
    labels = [option_label(i, o) for i, o in enumerate(options)]
    if gold is not None and 0 <= gold < len(labels):
        labels[gold] = f"<b>{labels[gold]} ✓</b>"
    names = in_variant_order(probabilities)
    fig = go.Figure()
    for name in names:
        probs = [float(p) for p in probabilities[name]]
        chosen = (choices or {}).get(name)
        fig.add_bar(
            name=name,
            x=labels,
            y=probs,
            marker={
                "color": variant_colour(name, names),
                "line": {"width": [3 if i == chosen else 0 for i in range(len(probs))], "color": "#222"},
            },
            text=[f"{p:.0%}" for p in probs],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}<br>" + name + ": %{y:.3f}<extra></extra>",
        )
    fig.update_yaxes(range=[0, 1.12], tickformat=".0%", title="score share")
    fig.update_layout(barmode="group", bargap=0.25)
    fig = _layout(fig, title, height=380)
    # Below the options, so a narrow chart can wrap the legend without covering the bars.
    fig.update_layout(
        legend={"orientation": "h", "yanchor": "top", "y": -0.14, "xanchor": "left", "x": 0},
        margin={"b": 90, "t": 70 if title else 24},
    )
    return fig


def accuracy_figure(variants: Mapping[str, Mapping], num_options: int | None = None) -> go.Figure:
    """Accuracy per variant with its 95% interval; ``variants`` is ``metrics.json``'s ``variants``."""
    names = in_variant_order(n for n, m in variants.items() if (m or {}).get("accuracy"))
    if not names:
        return empty_figure("No accuracy figures available")
    acc = [variants[n]["accuracy"] for n in names]
    fig = go.Figure(
        go.Bar(
            x=names,
            y=[a["accuracy"] for a in acc],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [a["high"] - a["accuracy"] for a in acc],
                "arrayminus": [a["accuracy"] - a["low"] for a in acc],
                "color": "#333",
            },
            marker={"color": [variant_colour(n, names) for n in names]},
            customdata=[[a["low"], a["high"], a.get("n", "")] for a in acc],
            hovertemplate="%{x}: %{y:.1%}<br>95% CI [%{customdata[0]:.1%}, %{customdata[1]:.1%}]"
            "<br>n = %{customdata[2]}<extra></extra>",
            showlegend=False,
        )
    )
    if num_options:
        fig.add_scatter(
            x=[names[0], names[-1]],
            y=[1 / num_options] * 2,
            mode="lines",
            name=f"chance ({1 / num_options:.0%})",
            line={"dash": "dot", "color": "#888"},
            hoverinfo="skip",
        )
        fig.update_xaxes(range=[-0.5, len(names) - 0.5])
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%", title="accuracy")
    return _layout(fig)


def grouped_accuracy_figure(groups: Mapping[str, Mapping[str, Mapping]], x_title: str) -> go.Figure:
    """Grouped bars with intervals: ``groups`` maps variant -> {group: accuracy_ci dict}."""
    names = in_variant_order(n for n, g in groups.items() if g)
    if not names:
        return empty_figure(f"No accuracy per {x_title} available")
    keys = sorted({k for n in names for k in groups[n]})
    fig = go.Figure()
    for name in names:
        _interval_bars(
            fig, name, keys, [groups[name].get(k) or {} for k in keys], variant_colour(name, names)
        )
    return _grouped_layout(fig, x_title)


def backbone_accuracy_figure(
    runs: Mapping[str, Mapping[str, Mapping]],
    keys: Sequence[str],
    x_title: str = "variant",
    chances: Mapping[str, float | None] | None = None,
) -> go.Figure:
    """Accuracy per key on x (a variant, or a question family) with one bar per run (e.g. per backbone):
    ``runs`` maps run label -> {key: accuracy_ci dict}; a key a run lacks leaves a gap. ``chances``
    maps run label -> its chance level: one dotted line when the runs agree, else one per run."""
    if not any(runs.values()):
        return empty_figure("No run has accuracy figures")
    fig = go.Figure()
    colours = {label: RUN_PALETTE[i % len(RUN_PALETTE)] for i, label in enumerate(runs)}
    for label, accuracies in runs.items():
        cells = [accuracies.get(k) or {} for k in keys]
        _interval_bars(fig, label, list(keys), cells, colours[label], pattern=RUN_PATTERN)
    levels = {label: c for label, c in (chances or {}).items() if c is not None}
    if len({round(c, 4) for c in levels.values()}) == 1:
        chance_line(fig, next(iter(levels.values())))
    else:
        for label, level in levels.items():
            chance_line(fig, level, f"chance, {label} ({level:.0%})", colours.get(label, "#555"))
    return _grouped_layout(fig, x_title)


def chance_line(fig: go.Figure, level: float, name: str | None = None, colour: str = "#555") -> None:
    """A dotted horizontal line at ``level`` across the whole plot, with a legend entry."""
    line = {**CHANCE_LINE, "color": colour}
    fig.add_shape(type="line", xref="x domain", x0=0, x1=1, yref="y", y0=level, y1=level, line=line)
    fig.add_scatter(
        x=[None], y=[None], mode="lines", name=name or f"chance ({level:.0%})", line=line, hoverinfo="skip"
    )


def _interval_bars(
    fig: go.Figure, name: str, keys: Sequence[str], cells: Sequence[Mapping], colour: str, pattern: str = ""
) -> None:
    """One bar trace over ``keys`` with 95% interval whiskers; an empty cell leaves a gap."""
    values = [c.get("accuracy") for c in cells]
    fig.add_bar(
        name=name,
        x=list(keys),
        y=values,
        error_y={
            "type": "data",
            "symmetric": False,
            "array": [(c["high"] - c["accuracy"]) if c.get("accuracy") is not None else 0 for c in cells],
            "arrayminus": [(c["accuracy"] - c["low"]) if c.get("accuracy") is not None else 0 for c in cells],
            "thickness": 1,
            "color": "#555",
        },
        marker={"color": colour, "pattern": {"shape": pattern, "fgcolor": "#fff", "solidity": 0.25}},
        customdata=[c.get("n", 0) for c in cells],
        hovertemplate="%{x}<br>" + name + ": %{y:.1%} (n = %{customdata})<extra></extra>",
    )


def _grouped_layout(fig: go.Figure, x_title: str) -> go.Figure:
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%", title="accuracy")
    fig.update_xaxes(title=x_title)
    fig.update_layout(barmode="group")
    fig = _layout(fig)
    fig.update_layout(margin={"t": 64})
    return fig


def position_figure(position_bias: Mapping[str, Mapping], chance: float | None = None) -> go.Figure:
    """Accuracy by the gold answer's position (A, B, ...) per variant: a position bias check, with a
    dotted line at ``chance`` (the mean 1/K of the questions)."""
    groups = {
        name: {row["position"]: row for row in (bias or {}).get("accuracy_by_gold_position", [])}
        for name, bias in position_bias.items()
    }
    fig = grouped_accuracy_figure(groups, "gold position")
    if chance is not None and any(groups.values()):
        chance_line(fig, chance)
    return fig


def agreement_figure(agreement: Mapping | None) -> go.Figure:
    """Heatmap of how often two variants chose the same option (``metrics.json``'s ``agreement``)."""
    if not agreement or not agreement.get("variants"):
        return empty_figure("No agreement matrix available")
    given = list(agreement["variants"])
    names = in_variant_order(given)
    order = [given.index(n) for n in names]
    matrix = [[agreement["matrix"][i][j] for j in order] for i in order]
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=names,
            y=names,
            zmin=0,
            zmax=1,
            colorscale="Blues",
            text=[[f"{v:.0%}" for v in row] for row in matrix],
            texttemplate="%{text}",
            hovertemplate="%{y} vs %{x}: %{z:.1%}<extra></extra>",
            colorbar={"tickformat": ".0%"},
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, height=400)


def confusion_figure(counts, labels: Sequence[str]) -> go.Figure:
    """Heatmap of ``counts int[K, K]``: rows the gold position, columns the chosen one; each cell shows its count
    and its share of the row (the diagonal is right, the rest are mistakes)."""
    rows = [[int(v) for v in row] for row in counts]
    totals = [sum(row) or 1 for row in rows]
    shares = [[v / t for v in row] for row, t in zip(rows, totals)]
    fig = go.Figure(
        go.Heatmap(
            z=shares,
            x=[f"chose {x}" for x in labels],
            y=[f"gold {y}" for y in labels],
            zmin=0,
            zmax=1,
            colorscale="Blues",
            text=[[f"{v}<br>{s:.0%}" for v, s in zip(row, share)] for row, share in zip(rows, shares)],
            texttemplate="%{text}",
            hovertemplate="%{y}, %{x}: %{text}<extra></extra>",
            colorbar={"tickformat": ".0%", "title": {"text": "share of row"}},
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, height=380)


def family_accuracy_figure(
    groups: Mapping[str, Mapping[str, Mapping]], chance: Mapping[str, float]
) -> go.Figure:
    """:func:`grouped_accuracy_figure` over families with a dotted chance line over each family's bars.

    ``chance`` maps family -> expected accuracy of guessing (mean 1/K of its questions).
    """
    fig = grouped_accuracy_figure(groups, "family")
    keys = sorted({k for g in groups.values() if g for k in g})
    for position, key in enumerate(keys):
        if key not in chance:
            continue
        # Categories sit at 0, 1, ...: the segment spans the family's group of bars.
        fig.add_shape(
            type="line",
            x0=position - 0.45,
            x1=position + 0.45,
            y0=chance[key],
            y1=chance[key],
            xref="x",
            yref="y",
            line={"dash": "dot", "color": "#555", "width": 2},
        )
    if keys and any(k in chance for k in keys):
        fig.add_scatter(
            x=[None],
            y=[None],
            mode="lines",
            name="chance",
            line={"dash": "dot", "color": "#555", "width": 2},
        )
    return fig


def _curve_trace(fig: go.Figure, records, name, names, key, col, showlegend) -> None:
    points = [r for r in records if r.get(key) is not None and r.get("step") is not None]
    if not points:
        return
    fig.add_scatter(
        x=[r["step"] for r in points],
        y=[r[key] for r in points],
        name=name,
        mode="lines+markers" if key == "accuracy" else "lines",
        line={"color": variant_colour(name, names)},
        legendgroup=name,
        showlegend=showlegend,
        row=1,
        col=col,
    )


def split_loss_curves_figure(
    curves: Mapping[str, Sequence[Mapping]], token_level: Sequence[str], chance: float | None = None
) -> go.Figure:
    """Training curves in three panels: the K-way cross-entropies together, the token-level LM losses
    (``token_level`` variants, e.g. COND_GEN) on their own axis, and validation accuracy with chance."""
    names = in_variant_order(n for n, c in curves.items() if c)
    if not names:
        return empty_figure("No training curves available")
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=(
            "K-way loss (cross-entropy over the options)",
            "token-level loss (COND_GEN)",
            "validation accuracy",
        ),
        horizontal_spacing=0.07,
    )
    for name in names:
        col = 2 if name in token_level else 1
        _curve_trace(fig, curves[name], name, names, "loss", col, True)
        _curve_trace(fig, curves[name], name, names, "accuracy", 3, False)
    if chance is not None:
        steps = [r["step"] for n in names for r in curves[n] if r.get("step") is not None]
        if steps:
            fig.add_scatter(
                x=[min(steps), max(steps)],
                y=[chance, chance],
                mode="lines",
                name=f"chance ({chance:.0%})",
                line={"dash": "dot", "color": "#888"},
                hoverinfo="skip",
                row=1,
                col=3,
            )
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="loss", row=1, col=1)
    fig.update_yaxes(title="loss per token", row=1, col=2)
    fig.update_yaxes(title="accuracy", tickformat=".0%", range=[0, 1.05], row=1, col=3)
    fig = _layout(fig, height=380)
    fig.update_layout(
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0},
        margin={"t": 40, "r": 10, "b": 90},
    )
    return fig
