"""Figure builders: pure functions from arrays to plotly figures (no Streamlit, no file access).

Every page of the explorer draws through these, so each figure can be unit-tested on synthetic
arrays. Groups of models (zoo, generated, each baseline) keep one colour across all figures.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

FIXED_COLOURS = {"zoo": "#1f77b4", "heldout": "#17becf", "generated": "#d62728", "fresh": "#2ca02c",
                 "copies": "#7f7f7f"}
OTHER_COLOURS = ["#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                 "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94"]
STATUS_COLOURS = {"done": "#2ca02c", "running": "#1f77b4", "failed": "#d62728", "interrupted": "#ff7f0e",
                  "stopped": "#ff7f0e", "pending": "#d9d9d9"}
PATH_COLOURS = ["#9467bd", "#ff7f0e", "#2ca02c", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
SYMBOLS = ["circle", "diamond", "square", "triangle-up", "cross", "x", "triangle-down", "pentagon", "hexagon",
           "star-diamond", "hourglass", "bowtie"]
# No plotly template: Streamlit draws every chart in its own theme (st.plotly_chart's theme="streamlit"), and
# validating a template costs ~10 ms per figure, most of a live page's refresh.
LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}}
# Charts whose points can be picked: a click selects a point only while the drag mode is zoom or pan
# (with "select" or "lasso" a click sends nothing); box and lasso stay one click away in the toolbar.
SELECTABLE = {"dragmode": "zoom", "clickmode": "event+select"}
SELECTION_MODES = ("points", "box", "lasso")
# A horizontal legend under the x-axis title: the toolbar (top right) never covers it.
LEGEND_BELOW = {"orientation": "h", "y": -0.14, "yanchor": "top", "x": 0, "xanchor": "left", "itemsizing": "constant"}


def group_colours(groups: Sequence[str]) -> dict[str, str]:
    """A stable colour per group: zoo blue, generated red, fresh SGD green, copies grey, the other
    groups from a palette in order, never repeating a fixed group's colour."""
    palette = [c for c in OTHER_COLOURS if c not in FIXED_COLOURS.values()]
    colours, others = {}, iter(palette * (1 + len(groups) // len(palette)))
    for g in groups:
        colours[g] = FIXED_COLOURS.get(g) or next(others)
    return colours


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


# --------------------------------------------------------------------------- overview

RULER_ZONES = (("copies", "#f2f2f2"), ("between", "#fdf1dc"), ("like fresh training", "#e3f2e1"),
               ("beyond fresh training", "#dcebf7"))


def ruler_figure(places: Mapping[str, Mapping[str, Mapping]], measures: Sequence[str],
                 bounds: Sequence[float], groups: Sequence[str],
                 decided: tuple[str, float, str] | None = None, leader: str = "generated") -> go.Figure:
    """The ruler: one row per measure, each group's position between copies (0) and fresh SGD (1)
    with its 95% interval, over shaded zones of the verdict's answers.

    `places[group][measure]` is `{"position", "ci"}` (judge/ruler.py); `bounds` are the verdict's
    zone boundaries (copies | between | like fresh | beyond). Groups without a position on a
    measure are left out of its row. `decided` (measure, position, answer) is the verdict's own
    reading, written beside the point it comes from, so the words and the figure share one source.
    `leader` is drawn as a large star (the generated models; on Compare, no group leads).
    """
    colours = group_colours(list(groups))
    fig = go.Figure()
    positions = [p["position"] for g in groups for p in (places.get(g) or {}).values()
                 if p and p.get("position") is not None]
    lo = min([-0.3, *positions, *[p - 0.1 for p in positions]])
    hi = max([1.6, *[p + 0.1 for p in positions]])
    edges = [lo, *bounds, hi]
    for (name, colour), left, right in zip(RULER_ZONES, edges, edges[1:]):
        fig.add_vrect(x0=left, x1=right, fillcolor=colour, line_width=0, layer="below",
                      annotation_text=name, annotation_position="outside top", annotation_font_size=11)
    for x, label in ((0, "copies"), (1, "fresh SGD")):
        fig.add_vline(x=x, line_dash="dot", line_color="#555", annotation_text=label,
                      annotation_position="bottom right", annotation_font_size=10)
    for i, g in enumerate(groups):
        xs, ys, err_lo, err_hi = [], [], [], []
        for measure in measures:
            place = (places.get(g) or {}).get(measure) or {}
            if place.get("position") is None:
                continue
            ci = place.get("ci") or [place["position"]] * 2
            xs.append(place["position"])
            ys.append(measure)
            err_lo.append(place["position"] - ci[0])
            err_hi.append(ci[1] - place["position"])
        if not xs:
            continue
        big = g == leader
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="markers", name=g, marker={"color": colours[g], "size": 14 if big else 9,
                                                         "symbol": "star" if big else SYMBOLS[i % len(SYMBOLS)],
                                                         "line": {"width": 1, "color": "white"}},
            error_x={"type": "data", "symmetric": False, "array": err_hi, "arrayminus": err_lo, "thickness": 1.5},
            hovertemplate=f"{g}<br>%{{y}}: position %{{x:.2f}}<extra></extra>"))
    if decided is not None:
        measure, x, answer = decided
        fig.add_annotation(x=x, y=measure, text=f"answer: {answer}", showarrow=True, arrowhead=2, ax=0, ay=-34,
                           font={"size": 12, "color": "#111"}, bgcolor="rgba(255,255,255,0.85)")
    fig.update_layout(**LAYOUT, height=max(150 + 80 * len(measures), 130 + 22 * len(groups)),
                      legend={"orientation": "v", "x": 1.01, "xanchor": "left", "y": 1, "yanchor": "top",
                              "itemsizing": "constant", "font": {"size": 11}},
                      xaxis={"title": "position: 0 = copies of training checkpoints, 1 = an independent SGD run",
                             "range": [lo, hi], "zeroline": False},
                      yaxis={"categoryorder": "array", "categoryarray": list(measures)[::-1]})
    return fig



def pipeline_diagram(stages: Sequence[Mapping]) -> go.Figure:
    """The stages as boxes in a row, coloured by status, arrows between them.

    `stages`: dicts with `name`, `status`, optional `seconds`, `progress` (0..1) and `detail`
    (hover text). One invisible scatter trace carries the hover; boxes are layout shapes.
    """
    n = len(stages)
    hover, labels, shapes, arrows = [], [], [], []
    for i, s in enumerate(stages):
        status = s.get("status", "pending")
        fill = STATUS_COLOURS.get(status, STATUS_COLOURS["pending"])
        shapes.append({"type": "rect", "x0": i - 0.42, "x1": i + 0.42, "y0": -0.5, "y1": 0.5, "fillcolor": fill,
                       "opacity": 0.85, "line": {"color": "#444", "width": 1}, "layer": "below"})
        if status == "running" and s.get("progress") is not None:
            width = 0.84 * min(max(float(s["progress"]), 0.0), 1.0)
            shapes.append({"type": "rect", "x0": i - 0.42, "x1": i - 0.42 + width, "y0": -0.5, "y1": -0.38,
                           "fillcolor": "#08306b", "line": {"width": 0}, "layer": "below"})
        status_text = status if status != "running" or s.get("progress") is None else f"running {s['progress']:.0%}"
        labels.append(f"<b>{s['name']}</b><br>{status_text}<br>{format_seconds(s.get('seconds'))}")
        hover.append(s.get("detail") or labels[-1])
        if i + 1 < n:
            arrows.append({"x": i + 0.58, "y": 0, "ax": i + 0.42, "ay": 0, "xref": "x", "yref": "y", "axref": "x",
                           "ayref": "y", "showarrow": True, "arrowhead": 2, "arrowsize": 1.2, "arrowwidth": 1.5,
                           "arrowcolor": "#444", "text": ""})
    # One constructor call with every shape and arrow: a live page rebuilds this at every refresh.
    fig = go.Figure(go.Scatter(x=list(range(n)), y=[0] * n, mode="text", text=labels,
                               textfont={"size": 13, "color": "#111"}, hovertext=hover, hoverinfo="text",
                               showlegend=False),
                    layout={**LAYOUT, "height": 170, "shapes": shapes, "annotations": arrows,
                            "margin": {"l": 0, "r": 0, "t": 10, "b": 0},
                            "xaxis": {"visible": False, "range": [-0.5, n - 0.5]},
                            "yaxis": {"visible": False, "range": [-0.7, 0.7]}})
    return fig


# --------------------------------------------------------------------------- accuracy


def accuracy_distributions(accuracy: Mapping[str, np.ndarray], kind: str = "violin",
                           zoo_range: tuple[float, float] | None = None, resolution: float | None = None) -> go.Figure:
    """One violin per group, or one histogram panel per group; the zoo's min..max range shaded.

    Histograms are small multiples on one shared accuracy axis (overlaid, six groups hid the zoo
    and the generated models under each other), each panel the group's share of its models per
    bin, on bins shared by all groups and centred on the accuracies a model can have:
    `resolution` is one test sample (100 / test samples, in points), widened to a whole number of
    samples when the range would need more than 120 bins.
    """
    if kind == "histogram":
        return _accuracy_histograms(accuracy, zoo_range, resolution)
    colours = group_colours(list(accuracy))
    fig = go.Figure()
    for g, acc in accuracy.items():
        fig.add_trace(go.Violin(y=np.asarray(acc, dtype=float), name=g, line_color=colours[g], box_visible=True,
                                meanline_visible=True, points="all", pointpos=0, jitter=0.3, marker={"size": 3},
                                spanmode="hard"))
    if zoo_range is not None:
        fig.add_hrect(y0=zoo_range[0], y1=zoo_range[1], fillcolor=FIXED_COLOURS["zoo"], opacity=0.12, line_width=0,
                      layer="below", annotation_text="zoo range", annotation_position="top left")
    values = [np.asarray(a, dtype=float) for a in accuracy.values()] + [np.asarray(zoo_range or [], dtype=float)]
    values = np.concatenate(values) if values else np.zeros(0)
    if values.size:  # explicit range: autorange clips violins drawn beside a shaded band
        pad = max(0.05 * float(values.max() - values.min()), 0.5)
        fig.update_yaxes(range=[float(values.min()) - pad, float(values.max()) + pad])
    fig.update_layout(**LAYOUT, height=450, yaxis_title="test accuracy (%)", showlegend=False)
    return fig


def _accuracy_histograms(accuracy: Mapping[str, np.ndarray], zoo_range: tuple[float, float] | None,
                         resolution: float | None) -> go.Figure:
    groups = list(accuracy) or ["(none)"]
    colours = group_colours(groups)
    bins = _accuracy_bins(accuracy, resolution)
    fig = make_subplots(rows=len(groups), cols=1, shared_xaxes=True, vertical_spacing=0.04 if len(groups) > 1 else 0,
                        subplot_titles=groups)
    for row, (g, acc) in enumerate(accuracy.items(), start=1):
        fig.add_trace(go.Histogram(x=np.asarray(acc, dtype=float), name=g, marker_color=colours[g], opacity=0.8,
                                   histnorm="percent", xbins=bins, showlegend=False,
                                   hovertemplate=f"{g}<br>%{{x}}%: %{{y:.1f}}% of its models<extra></extra>"),
                      row=row, col=1)
        if zoo_range is not None:
            fig.add_vrect(x0=zoo_range[0], x1=zoo_range[1], fillcolor=FIXED_COLOURS["zoo"], opacity=0.12,
                          line_width=0, layer="below", row=row, col=1)
        fig.update_yaxes(title="%" if row > 1 else "% of models", row=row, col=1)
    width = f" (bins of {bins['size']:.3g} points; shaded: the zoo's range)" if bins else ""
    fig.update_xaxes(title=f"test accuracy (%){width}", row=len(groups), col=1)
    fig.update_annotations(font={"size": 12}, xanchor="left", x=0)
    fig.update_layout(**LAYOUT, height=90 + 130 * len(groups))
    return fig


def _accuracy_bins(accuracy: Mapping[str, np.ndarray], resolution: float | None) -> dict | None:
    values = [np.asarray(a, dtype=float) for a in accuracy.values()]
    values = np.concatenate(values) if values else np.zeros(0)
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    lo, hi = float(values.min()), float(values.max())
    step = resolution if resolution and resolution > 0 else max(hi - lo, 1e-6) / 30
    step *= max(1, math.ceil((hi - lo) / step / 120))
    return {"start": lo - step / 2, "end": hi + step / 2, "size": step}


def compare_accuracy(runs: Mapping[str, Mapping[str, np.ndarray]]) -> go.Figure:
    """Accuracy distributions of several runs side by side: one violin trace per run, x = group."""
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"]
    fig = go.Figure()
    for i, (run, accuracy) in enumerate(runs.items()):
        xs = [g for g, acc in accuracy.items() for _ in range(len(acc))]
        ys = np.concatenate([np.asarray(a, dtype=float) for a in accuracy.values()]) if accuracy else np.zeros(0)
        fig.add_trace(go.Violin(x=xs, y=ys, name=run, line_color=palette[i % len(palette)], box_visible=True,
                                meanline_visible=True, points=False, spanmode="hard"))
    fig.update_layout(**LAYOUT, violinmode="group", yaxis_title="test accuracy (%)", height=450,
                      legend={"orientation": "h", "y": 1.08})
    return fig


# --------------------------------------------------------------------------- latent space


def draw_order(groups: Sequence[str]) -> list[str]:
    """Baselines first, then the zoo, generated last: the groups that matter are drawn on top."""
    front = [g for g in ("heldout", "zoo", "generated") if g in groups]
    return [g for g in groups if g not in front] + front


def grid_shape(dim: int) -> tuple[int, int]:
    """A near-square grid (rows, cols) holding `dim` values, for drawing a vector as an image."""
    cols = max(1, math.ceil(math.sqrt(dim)))
    return math.ceil(dim / cols), cols


def as_grid(vector: np.ndarray) -> np.ndarray:
    """(D,) -> (rows, cols) row-major, the tail padded with NaN (drawn blank)."""
    vector = np.asarray(vector, dtype=float).reshape(-1)
    rows, cols = grid_shape(vector.size)
    out = np.full(rows * cols, np.nan)
    out[: vector.size] = vector
    return out.reshape(rows, cols)


def weight_heatmaps(vectors: np.ndarray, titles: Sequence[str], own_scale: Sequence[bool] | None = None) -> go.Figure:
    """Parameter vectors drawn side by side as images on a diverging colour scale centred at 0.

    As in the memorization study (arXiv 2506.07998): a generated model beside its nearest zoo
    models; near-identical images mean the generator copied a training checkpoint. Panels share
    one scale (the colour bar) so they compare, except those marked in `own_scale` (a difference,
    a vector near the zoo's mean): on a shared scale they would be blank, so each gets its own,
    written in its title.
    """
    vectors = np.asarray(vectors, dtype=float)
    k = len(vectors)
    own = list(own_scale) if own_scale is not None else [False] * k
    shared = _scale(vectors[[i for i in range(k) if not own[i]]]) if not all(own) else 1.0
    scales = [_scale(v[None]) if own[i] else shared for i, v in enumerate(vectors)]
    titles = [f"{t}<br>(own scale ±{scales[i]:.2g})" if own[i] else t for i, t in enumerate(titles)]
    fig = make_subplots(rows=1, cols=k, subplot_titles=titles, horizontal_spacing=0.02)
    first_shared = next((i for i in range(k) if not own[i]), None)
    for i, v in enumerate(vectors):
        grid = as_grid(v)
        fig.add_trace(go.Heatmap(z=grid, zmin=-scales[i], zmax=scales[i], zmid=0, colorscale="RdBu_r",
                                 showscale=i == first_shared, colorbar={"title": "value", "len": 0.9},
                                 hovertemplate="parameter %{customdata}<br>value %{z:.4f}<extra></extra>",
                                 customdata=np.arange(grid.size).reshape(grid.shape)), row=1, col=i + 1)
        fig.update_yaxes(autorange="reversed", visible=False, scaleanchor=f"x{i + 1 if i else ''}",
                         row=1, col=i + 1)
        fig.update_xaxes(visible=False, row=1, col=i + 1)
    fig.update_annotations(font={"size": 12})
    fig.update_layout(**LAYOUT, height=300, plot_bgcolor="rgba(0,0,0,0)")
    fig.update_layout(margin={"l": 10, "r": 10, "t": 60 if any(own) else 40, "b": 10})
    return fig


def _scale(vectors: np.ndarray) -> float:
    """The 99th percentile of |value| (a few extreme coordinates do not wash out the rest)."""
    finite = np.abs(vectors[np.isfinite(vectors)])
    scale = float(np.percentile(finite, 99)) if finite.size else 1.0
    return scale if scale > 0 else 1.0


# --------------------------------------------------------------------------- similarity


def iou_heatmap(iou: np.ndarray, groups: Sequence[str], sizes: Sequence[int]) -> go.Figure:
    """The pairwise IoU of wrong-prediction sets, rows and columns ordered by group, with group
    boundaries drawn and group names at the centre of each block."""
    iou = np.asarray(iou, dtype=np.float32)  # float32 halves what the browser receives
    edges = np.cumsum([0, *sizes])
    centres = [(a + b - 1) / 2 for a, b in itertools.pairwise(edges)]
    fig = go.Figure(go.Heatmap(z=iou, zmin=0, zmax=1, colorscale="Viridis", colorbar={"title": "IoU"},
                               hovertemplate="row %{y} / column %{x}<br>IoU %{z:.3f}<extra></extra>"))
    for e in edges[1:-1]:
        for axis in ("x", "y"):
            line = {"type": "line", "line": {"color": "white", "width": 1}}
            if axis == "x":
                fig.add_shape(**line, x0=e - 0.5, x1=e - 0.5, y0=-0.5, y1=edges[-1] - 0.5)
            else:
                fig.add_shape(**line, y0=e - 0.5, y1=e - 0.5, x0=-0.5, x1=edges[-1] - 0.5)
    ticks = {"tickmode": "array", "tickvals": centres, "ticktext": list(groups), "showgrid": False, "zeroline": False}
    fig.update_xaxes(**ticks, tickangle=-90)  # upright names never run into each other, however small a block
    fig.update_yaxes(**ticks, autorange="reversed", scaleanchor="x")
    fig.update_layout(**LAYOUT, height=620)
    return fig


def stack_points(x: np.ndarray, y: np.ndarray) -> list[tuple[float, float, list[int]]]:
    """Models with the same (x, y) as one entry: (x, y, their indices), in order of first model.

    Accuracy moves in steps of one test sample and IoU in steps of one wrong sample, so a group of
    a hundred models often sits on a dozen distinct points; a chart then draws one marker per
    entry, sized by its count, instead of a hundred markers on top of each other.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keys = np.round(np.stack([x, y], 1), 6)
    stacks: dict[tuple[float, float], list[int]] = {}
    for i, key in enumerate(map(tuple, keys)):
        stacks.setdefault(key, []).append(i)
    return [(float(x[idx[0]]), float(y[idx[0]]), idx) for idx in stacks.values()]


def memorization_scatter(max_iou: Mapping[str, np.ndarray], accuracy: Mapping[str, np.ndarray],
                         zoo_range: tuple[float, float] | None = None, mode: str = "points",
                         resolution: float | None = None, selected: Sequence[tuple[str, int]] = ()) -> go.Figure:
    """Accuracy against max IoU to the zoo (the memorization plot): good and new models sit top
    left; copies of training checkpoints at the right, near IoU 1.

    mode "points": models at the same spot are one marker whose area grows with their count
    (hover lists them; customdata [group, first index, count, "i j k"] tells a selection which
    models a marker holds). mode "density": one contour per group (for large groups) with its
    median as a large symbol. Baselines are drawn first, then zoo, held-out, generated on top;
    `selected` (group, index) models get a gold ring. `resolution` (points of accuracy per test
    sample) goes into the axis title.
    """
    colours = group_colours(list(max_iou))
    order = draw_order(list(max_iou))
    fig = go.Figure()
    pick_x: list[float] = []
    pick_y: list[float] = []
    pick_custom: list[list] = []
    for g in order:
        iou, acc = np.asarray(max_iou[g], dtype=float), np.asarray(accuracy[g], dtype=float)
        finite = np.isfinite(iou) & np.isfinite(acc)
        rank = list(max_iou).index(g) + 1
        baseline = g not in ("zoo", "heldout", "generated")
        if mode == "density":
            if finite.sum() >= 3:
                fig.add_trace(go.Histogram2dContour(
                    x=iou[finite], y=acc[finite], name=g, legendgroup=g, showlegend=False, ncontours=6,
                    contours={"coloring": "lines"}, line={"color": colours[g], "width": 1.5}, showscale=False,
                    colorscale=[[0, colours[g]], [1, colours[g]]], hoverinfo="skip"))
            fig.add_trace(go.Scatter(
                x=[np.median(iou[finite])] if finite.any() else [], y=[np.median(acc[finite])] if finite.any() else [],
                mode="markers", name=f"{g} (median)", legendgroup=g, legendrank=rank,
                marker={"color": colours[g], "size": 16, "symbol": "diamond", "line": {"width": 1.5, "color": "black"}},
                hovertemplate=f"<b>{g}</b> median<br>max IoU %{{x:.3f}}<br>accuracy %{{y:.2f}}%<extra></extra>"))
            continue
        stacks = stack_points(iou, acc)
        counts = np.array([len(idx) for _, _, idx in stacks])
        listed = [" ".join(str(i) for i in idx) for _, _, idx in stacks]
        fig.add_trace(go.Scatter(
            x=[x for x, _, _ in stacks], y=[y for _, y, _ in stacks], mode="markers", name=g, legendrank=rank,
            hoverinfo="skip", unselected={"marker": {"opacity": 0.45 if baseline else 0.8}},
            marker={"color": colours[g], "size": 7 + 3.5 * np.sqrt(counts - 1), "sizemode": "diameter",
                    "opacity": 0.45 if baseline else 0.8,
                    "symbol": "circle-open" if baseline else "circle",
                    "line": {"width": 1.5 if baseline else 0.5, "color": colours[g] if baseline else "white"}}))
        pick_x += [x for x, _, _ in stacks]
        pick_y += [y for _, y, _ in stacks]
        pick_custom += [[g, idx[0], len(idx), text] for (_, _, idx), text in zip(stacks, listed)]
    if mode != "density":
        # Hover and clicks go to the nearest marker centre (see app/projector.py: plotly ranks points inside
        # several markers by marker size, and a stack of many models is a large marker).
        fig.add_trace(go.Scatter(x=np.asarray(pick_x), y=np.asarray(pick_y), mode="text",
                                 text=np.full(len(pick_x), "", dtype=object), name="pick", showlegend=False,
                                 customdata=np.array(pick_custom, dtype=object).reshape(len(pick_custom), 4),
                                 hovertemplate="<b>%{customdata[0]}</b>: %{customdata[2]} model(s)<br>"
                                               "#%{customdata[3]}<br>max IoU %{x:.3f}<br>accuracy %{y:.2f}%"
                                               "<extra></extra>"))
    picked = [(g, i) for g, i in selected if g in max_iou and 0 <= i < len(max_iou[g])]
    if picked:
        fig.add_trace(go.Scatter(
            x=[float(max_iou[g][i]) for g, i in picked], y=[float(accuracy[g][i]) for g, i in picked],
            mode="markers", name="selected", hoverinfo="skip",
            marker={"size": 24, "symbol": "circle-open", "color": "gold", "line": {"width": 3}}))
    if zoo_range is not None:
        fig.add_hrect(y0=zoo_range[0], y1=zoo_range[1], fillcolor=FIXED_COLOURS["zoo"], opacity=0.1, line_width=0,
                      layer="below", annotation_text="zoo range", annotation_position="top left")
    step = f"; one test sample = {resolution:.3g} points" if resolution else ""
    fig.update_layout(**LAYOUT, height=520, xaxis_title="max IoU to any zoo model (1 = same mistakes)",
                      yaxis_title=f"test accuracy (%{step})", hovermode="closest", hoverdistance=30,
                      legend=LEGEND_BELOW | {"itemclick": False, "itemdoubleclick": False})
    fig.update_layout(**SELECTABLE)
    return fig


def overlap_figure(counts: Mapping[str, int], names: tuple[str, str]) -> go.Figure:
    """How two models' wrong test samples overlap: one stacked bar, from the samples both get wrong
    (with the same answer, with different answers) to those only one of them gets wrong."""
    a, b = names
    parts = [("both wrong, same answer", counts.get("same", 0), "#7b3294"),
             ("both wrong, different answers", counts.get("different", 0), "#c2a5cf"),
             (f"only {a} wrong", counts.get("only_a", 0), FIXED_COLOURS["generated"]),
             (f"only {b} wrong", counts.get("only_b", 0), FIXED_COLOURS["zoo"])]
    fig = go.Figure()
    for name, count, colour in parts:
        fig.add_trace(go.Bar(x=[count], y=[""], orientation="h", name=f"{name}: {count}", marker_color=colour,
                             text=[count] if count else None, textposition="inside",
                             hovertemplate=f"{name}: {count} test samples<extra></extra>"))
    fig.update_layout(**LAYOUT, barmode="stack", height=170, xaxis_title="wrong test samples",
                      legend={"orientation": "h", "y": 1.1, "yanchor": "bottom", "x": 0, "traceorder": "normal"})
    return fig


def nearest_zoo_histogram(nn_index: Mapping[str, np.ndarray], zoo_size: int) -> go.Figure:
    """How many models of each group have each training checkpoint as their nearest zoo model.

    x is the checkpoint's index in the zoo (its order along the SGD run). A generator that covers
    its training set spreads over the whole axis; one that collapses piles up on a few bars.
    """
    colours = group_colours(list(nn_index))
    fig = go.Figure()
    for g in draw_order(list(nn_index)):
        index = np.asarray(nn_index[g]).astype(int)
        index = index[(index >= 0) & (index < zoo_size)]
        counts = np.bincount(index, minlength=zoo_size)
        used = np.flatnonzero(counts)
        fig.add_trace(go.Bar(x=used, y=counts[used], name=g, marker_color=colours[g], opacity=0.75,
                             legendrank=list(nn_index).index(g) + 1,
                             hovertemplate=f"{g}: %{{y}} model(s) nearest to zoo #%{{x}}<extra></extra>"))
    fig.update_xaxes(range=[-0.5, zoo_size - 0.5], title="training checkpoint (index in the zoo, in SGD order)")
    fig.update_layout(**LAYOUT, height=320, barmode="overlay", yaxis_title="models nearest to it", bargap=0,
                      legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})
    return fig


def nn_histograms(distances: Mapping[str, np.ndarray]) -> go.Figure:
    """Overlaid histograms of each group's L2 distance to its nearest zoo model (probability per
    bin, so groups of different sizes compare); zoo->zoo excludes the model itself."""
    colours = group_colours(list(distances))
    values = [np.asarray(d, dtype=float) for d in distances.values()]
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    bins = None
    if finite.size:  # shared bins, so the groups' bars line up
        lo, hi = float(finite.min()), float(finite.max())
        bins = {"start": lo, "end": hi + 1e-9, "size": max(hi - lo, 1e-6) / 30}
    fig = go.Figure()
    for (g, _), d in zip(distances.items(), values):
        fig.add_trace(go.Histogram(x=d, name=f"{g} -> zoo", marker_color=colours[g], opacity=0.6,
                                   histnorm="probability", xbins=bins))
    fig.update_layout(**LAYOUT, barmode="overlay", height=400, xaxis_title="L2 distance to the nearest zoo model",
                      yaxis_title="fraction of models")
    return fig


# --------------------------------------------------------------------------- denoising


def trajectory_accuracy(steps: np.ndarray, accuracy: np.ndarray, current: int | None = None,
                        zoo_range: tuple[float, float] | None = None,
                        references: Mapping[str, float] | None = None) -> go.Figure:
    """Accuracy of each tracked sample's x0-prediction along sampling (t from T down to 0),
    one line per sample, a vertical line at the step the slider shows, and dashed horizontal
    `references` (e.g. the accuracy of decoding pure noise, the decoder-only baseline)."""
    steps, accuracy = np.asarray(steps), np.asarray(accuracy, dtype=float)  # (P,), (P, M)
    fig = go.Figure()
    for m in range(accuracy.shape[1]):
        fig.add_trace(go.Scatter(x=steps, y=accuracy[:, m], mode="lines+markers", name=f"generated #{m}",
                                 line={"color": PATH_COLOURS[m % len(PATH_COLOURS)]},
                                 hovertemplate="t=%{x}<br>accuracy %{y:.2f}%<extra>%{fullData.name}</extra>"))
    if current is not None:
        fig.add_vline(x=float(steps[current]), line={"color": "black", "dash": "dash"})
    if zoo_range is not None:
        fig.add_hrect(y0=zoo_range[0], y1=zoo_range[1], fillcolor=FIXED_COLOURS["zoo"], opacity=0.1, line_width=0,
                      layer="below", annotation_text="zoo range", annotation_position="bottom left")
    for i, (name, value) in enumerate((references or {}).items()):
        fig.add_hline(y=float(value), line={"color": "#555", "dash": "dot", "width": 1.5}, annotation_text=name,
                      annotation_position="top right" if i % 2 == 0 else "bottom right", annotation_font={"size": 11})
    fig.update_xaxes(autorange="reversed", title="diffusion timestep t (sampling runs left to right)")
    fig.update_layout(**LAYOUT, height=380, yaxis_title="accuracy of the decoded x0-prediction (%)",
                      legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})
    return fig


def trajectory_projection(background: Mapping[str, np.ndarray], path: np.ndarray, current: int,
                          steps: np.ndarray | None = None) -> go.Figure:
    """Where the x0-predictions of tracked samples sit in the parameter PCA, up to step `current`.

    `background`: group -> (N, 2) points (zoo, generated); `path`: (P, M, 2). One trace per
    background group, one line per tracked sample, and one trace of the current positions.
    """
    path = np.asarray(path, dtype=float)
    colours = group_colours(list(background))
    fig = go.Figure()
    for g, xy in background.items():
        xy = np.asarray(xy, dtype=float)
        fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", name=g, opacity=0.45,
                                 marker={"color": colours[g], "size": 6}, hoverinfo="name"))
    for m in range(path.shape[1]):
        part = path[: current + 1, m]
        fig.add_trace(go.Scatter(x=part[:, 0], y=part[:, 1], mode="lines+markers", name=f"path #{m}",
                                 line={"width": 1.5, "color": PATH_COLOURS[m % len(PATH_COLOURS)]}, marker={"size": 4},
                                 showlegend=False,
                                 hovertemplate=f"generated #{m}<extra></extra>"))
    label = f"x0 at t={int(steps[current])}" if steps is not None else "x0 now"
    now = path[current]
    fig.add_trace(go.Scatter(x=now[:, 0], y=now[:, 1], mode="markers", name=label,
                             marker={"size": 14, "symbol": "star", "color": "gold",
                                     "line": {"width": 1, "color": "black"}}))
    fig.update_layout(**LAYOUT, height=420, xaxis_title="parameter PC 1", yaxis_title="parameter PC 2")
    return fig


def noising_figure(x0: np.ndarray, xt: np.ndarray, t: int, snr: np.ndarray,
                   segments: Sequence[tuple[str, int, int]] = ()) -> go.Figure:
    """The forward process on one vector: x0 and x_t over the parameter index (segments of the
    layout marked), and the signal-to-noise ratio abar_t / (1 - abar_t) over t with t marked."""
    x0, xt, snr = np.asarray(x0, dtype=float), np.asarray(xt, dtype=float), np.asarray(snr, dtype=float)
    fig = make_subplots(rows=2, cols=1, row_heights=[0.62, 0.38], vertical_spacing=0.2,
                        subplot_titles=(f"normalized parameter vector: x0 and x_t at t={t}",
                                        "signal-to-noise ratio abar_t / (1 - abar_t)"))
    index = np.arange(len(x0))
    fig.add_trace(go.Scatter(x=index, y=x0, mode="lines", name="x0 (clean)", line={"color": "#1f77b4"}), 1, 1)
    fig.add_trace(go.Scatter(x=index, y=xt, mode="lines", name=f"x_t (t={t})", line={"color": "#d62728", "width": 1},
                             opacity=0.8), 1, 1)
    for name, start, _ in segments:
        fig.add_vline(x=start - 0.5, line={"color": "#999", "dash": "dot", "width": 1}, row=1, col=1)
        fig.add_annotation(x=start, y=1.0, yref="y domain", text=name, showarrow=False, xanchor="left",
                           font={"size": 10, "color": "#666"}, row=1, col=1)
    ts = np.arange(len(snr))
    fig.add_trace(go.Scatter(x=ts, y=snr, mode="lines", name="SNR", line={"color": "#444"}), 2, 1)
    fig.add_trace(go.Scatter(x=[t], y=[snr[t]], mode="markers", name=f"SNR at t={t}",
                             marker={"size": 11, "color": "#d62728"}), 2, 1)
    fig.update_yaxes(type="log", title="SNR", row=2, col=1)
    fig.update_xaxes(title="parameter index", row=1, col=1)
    fig.update_xaxes(title="timestep t", row=2, col=1)
    fig.update_layout(**LAYOUT, height=600)
    fig.update_layout(margin={"l": 10, "r": 10, "t": 60, "b": 10})
    return fig


# --------------------------------------------------------------------------- training


def loss_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], height: int = 260) -> go.Figure:
    """One small panel per curve (label -> (step, loss)), log-scaled loss: how each stage trained."""
    names = list(curves)
    fig = make_subplots(rows=1, cols=max(1, len(names)), subplot_titles=names, horizontal_spacing=0.06)
    for i, name in enumerate(names):
        x, y = (np.asarray(v, dtype=float) for v in curves[name])
        positive = y > 0
        fig.add_trace(go.Scatter(x=x[positive], y=y[positive], mode="lines", name=name, showlegend=False,
                                 line={"color": PATH_COLOURS[i % len(PATH_COLOURS)], "width": 1.5},
                                 hovertemplate="step %{x}<br>loss %{y:.4g}<extra></extra>"), row=1, col=i + 1)
        fig.update_yaxes(type="log", dtick=1, exponentformat="power", row=1, col=i + 1,
                         title="loss" if i == 0 else None)
        fig.update_xaxes(title="step", row=1, col=i + 1)
    fig.update_annotations(font={"size": 12})
    fig.update_layout(**LAYOUT, height=height)
    fig.update_layout(margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


def reconstruction_scatter(before: np.ndarray, after: np.ndarray, segments: Sequence[tuple[str, int, int]] = ()
                           ) -> go.Figure:
    """Each parameter of one model before (x) and after (y) the autoencoder, one colour per
    tensor of the layout; the diagonal is a perfect reconstruction."""
    before, after = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    parts = list(segments) or [("parameters", 0, len(before))]
    fig = go.Figure()
    for i, (name, start, stop) in enumerate(parts):
        fig.add_trace(go.Scattergl(x=before[start:stop], y=after[start:stop], mode="markers", name=name,
                                   marker={"size": 4, "color": OTHER_COLOURS[i % len(OTHER_COLOURS)], "opacity": 0.7},
                                   hovertemplate=f"{name}<br>before %{{x:.4f}}<br>after %{{y:.4f}}<extra></extra>"))
    finite = np.concatenate([before[np.isfinite(before)], after[np.isfinite(after)]])
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="perfect reconstruction",
                                 line={"color": "#444", "dash": "dash", "width": 1}, hoverinfo="skip"))
    fig.update_layout(**LAYOUT, height=380, xaxis_title="before (the zoo checkpoint)",
                      yaxis_title="after (encoded, then decoded)", legend={"itemsizing": "constant"})
    return fig


# --------------------------------------------------------------------------- fidelity


def latent_spread(stds: Mapping[str, np.ndarray]) -> go.Figure:
    """Per-dimension spread of each group's latents, dimensions ordered by the zoo's spread.

    `stds`: group -> (L,) standard deviation of its standardized latents per dimension, "zoo"
    (the training latents) first. A generator that learned the distribution follows the zoo's
    curve; a collapsed one lies under it, one that adds noise above it."""
    groups = list(stds)
    colours = group_colours(groups)
    order = np.argsort(-np.asarray(stds[groups[0]], dtype=float))
    fig = go.Figure()
    for g in groups:
        values = np.asarray(stds[g], dtype=float)[order]
        fig.add_trace(go.Scatter(x=np.arange(len(values)), y=values, mode="lines+markers", name=g,
                                 line={"color": colours[g], "width": 2.5 if g in ("zoo", "generated") else 1.2},
                                 marker={"size": 4},
                                 hovertemplate=f"{g}<br>dimension rank %{{x}}<br>std %{{y:.3f}}<extra></extra>"))
    fig.update_yaxes(type="log", title="std of the latent dimension")
    fig.update_xaxes(title="latent dimensions, by the training latents' spread (largest first)")
    fig.update_layout(**LAYOUT, height=360, legend={"orientation": "h", "y": -0.25})
    return fig


# --------------------------------------------------------------------------- guided generation


def guided_distribution(zoo: np.ndarray, achieved: np.ndarray, requested: float) -> go.Figure:
    """Shares of the zoo's and of the guided models' accuracies on bins of equal width, and the request."""
    zoo, achieved = np.asarray(zoo, dtype=float), np.asarray(achieved, dtype=float)
    lo, hi = float(min(zoo.min(), achieved.min(), requested)), float(max(zoo.max(), achieved.max(), requested))
    bins = {"start": lo - 0.5, "end": hi + 0.5, "size": max((hi - lo) / 40, 0.2)}
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=zoo, name="zoo", marker_color="#aaaaaa", opacity=0.6, histnorm="probability",
                               xbins=bins))
    fig.add_trace(go.Histogram(x=achieved, name="guided", marker_color=FIXED_COLOURS["generated"], opacity=0.8,
                               histnorm="probability", xbins=bins))
    fig.add_vline(x=requested, line={"color": "black", "dash": "dash"}, annotation_text=f"requested {requested:g} %")
    fig.update_layout(**LAYOUT, barmode="overlay", height=360, xaxis_title="test accuracy (%)",
                      yaxis_title="share of models", legend={"orientation": "h", "y": -0.25})
    return fig


def guided_map(zoo_xy: np.ndarray, zoo_accuracy: np.ndarray, guided_xy: np.ndarray, guided_accuracy: np.ndarray) -> go.Figure:
    """The zoo's latents in 2D coloured by accuracy, with the guided models on top as stars."""
    zoo_xy, guided_xy = np.asarray(zoo_xy, dtype=float), np.asarray(guided_xy, dtype=float)
    every = np.concatenate([np.asarray(zoo_accuracy, dtype=float), np.asarray(guided_accuracy, dtype=float)])
    colour = {"coloraxis": "coloraxis"}
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=zoo_xy[:, 0], y=zoo_xy[:, 1], mode="markers", name="zoo",
                             marker={"size": 7, "color": zoo_accuracy, **colour},
                             hovertemplate="zoo<br>accuracy %{marker.color:.2f}%<extra></extra>"))
    fig.add_trace(go.Scatter(x=guided_xy[:, 0], y=guided_xy[:, 1], mode="markers", name="guided",
                             marker={"size": 13, "symbol": "star", "color": guided_accuracy,
                                     "line": {"width": 1, "color": "black"}, **colour},
                             hovertemplate="guided<br>accuracy %{marker.color:.2f}%<extra></extra>"))
    fig.update_layout(**LAYOUT, height=460, xaxis_title="latent PC 1", yaxis_title="latent PC 2",
                      legend={"orientation": "h", "y": -0.2},
                      coloraxis={"colorscale": "Viridis", "cmin": float(every.min()), "cmax": float(every.max()),
                                 "colorbar": {"title": "acc. %"}})
    return fig


# --------------------------------------------------------------------------- training dynamics


def dynamics_positions(steps: Sequence[int], positions: Mapping[str, Sequence[float | None]],
                       bounds: Sequence[float], current: int | None = None) -> go.Figure:
    """The generated models' place on the ruler along the denoiser's training (log step), one line
    per measure (None where it gives no position), over the verdict's zones; `current` marks a step."""
    fig = go.Figure()
    finite = [p for values in positions.values() for p in values if p is not None]
    lo, hi = min([-0.3, *[p - 0.1 for p in finite]]), max([1.5, *[p + 0.1 for p in finite]])
    edges = [lo, *bounds, hi]
    for (name, colour), low, high in zip(RULER_ZONES, edges, edges[1:]):
        fig.add_hrect(y0=low, y1=high, fillcolor=colour, line_width=0, layer="below", annotation_text=name,
                      annotation_position="left", annotation_font_size=10)
    styles = {"behaviour": ("#d62728", "circle"), "parameters": ("#1f77b4", "square"), "answer": ("#111", "star")}
    for name, values in positions.items():
        colour, symbol = styles.get(name, ("#7f7f7f", "diamond"))
        fig.add_trace(go.Scatter(x=list(steps), y=[np.nan if v is None else v for v in values], mode="lines+markers",
                                 name=name, line={"color": colour, "width": 3 if name == "answer" else 1.5},
                                 marker={"symbol": symbol, "size": 9 if name == "answer" else 6},
                                 hovertemplate=f"{name}<br>step %{{x}}: position %{{y:.2f}}<extra></extra>"))
    if current is not None:
        fig.add_vline(x=current, line_dash="dot", line_color="#555")
    fig.update_layout(**LAYOUT, height=380, legend=LEGEND_BELOW,
                      xaxis={"title": "denoiser training step (log)", "type": "log"},
                      yaxis={"title": "ruler position (0 copies, 1 fresh SGD)", "range": [lo, hi]})
    return fig


def dynamics_panels(steps: Sequence[int], series: Mapping[str, Mapping[str, Sequence[float | None]]],
                    current: int | None = None) -> go.Figure:
    """Side by side along training: each panel (title -> line name -> values per snapshot) on its
    own scale, e.g. accuracy and the share of good models, fidelity's spread, precision, recall."""
    fig = make_subplots(rows=1, cols=len(series), subplot_titles=list(series), horizontal_spacing=0.08)
    colours = iter(PATH_COLOURS * 2)
    for col, (title, lines) in enumerate(series.items(), 1):
        for name, values in lines.items():
            fig.add_trace(go.Scatter(x=list(steps), y=[np.nan if v is None else v for v in values],
                                     mode="lines+markers", name=name, line={"color": next(colours)},
                                     hovertemplate=f"{name}<br>step %{{x}}: %{{y:.3g}}<extra></extra>"), row=1, col=col)
        fig.update_xaxes(type="log", title_text="training step", row=1, col=col)
        if current is not None:
            fig.add_vline(x=current, line_dash="dot", line_color="#555", row=1, col=col)
    fig.update_layout(**LAYOUT, height=320, legend=LEGEND_BELOW)
    return fig


def onset_by_size(points: Sequence[tuple[int, int | None, str]], never_at: float) -> go.Figure:
    """The onset of copying against the zoo size: one point per run (K, onset step or None, label);
    a run that never copies within its training is drawn at `never_at`, on a dotted line."""
    fig = go.Figure()
    xs = [k for k, _, _ in points]
    ys = [never_at if onset is None else onset for _, onset, _ in points]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", text=[label for *_, label in points], name="runs",
                             marker={"size": 10, "color": ["#bbb" if o is None else "#d62728" for _, o, _ in points]},
                             hovertemplate="%{text}<br>K = %{x}: onset %{y}<extra></extra>"))
    fig.add_hline(y=never_at, line_dash="dot", line_color="#999", annotation_text="never (within training)",
                  annotation_position="top left", annotation_font_size=10)
    fig.update_layout(**LAYOUT, height=340, xaxis={"title": "zoo size K (training checkpoints)", "type": "log"},
                      yaxis={"title": "onset of copying (training step)", "type": "log"})
    return fig
