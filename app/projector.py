"""The projector: every model as a dot in a 2D map, coloured by any per-model value, with the model
in focus, its selection, the checkpoint it errs like and its neighbours drawn on top. Pure figure
builders (no Streamlit, no files), unit-tested on synthetic arrays.

Picking a dot must pick the dot under the cursor. Plotly's hover (and so its click) ranks points
inside several markers by marker size, not by the distance to their centres, so a click on a
small dot that touches a larger one picks the larger one. So the coloured markers here take no
hover at all, and one invisible text-mode trace at the same positions (its points have no radius:
plotly ranks them by the distance to their centre) holds every visible model's hover, click and
customdata. Groups are shown or hidden by the page's own group picker, never by a legend click,
so that trace always holds exactly the visible groups.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from app.figures import LAYOUT, LEGEND_BELOW, SELECTABLE, SYMBOLS, draw_order, group_colours

NO_VALUE = "#c8c8c8"
CATEGORY_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
                    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5"]
PICK = "pick"  # the name of the invisible trace that carries hover and clicks
Model = tuple[str, int]


def projection_scatter(points: Mapping[str, np.ndarray], values: Mapping[str, np.ndarray] | None = None,
                       label: str = "group", accuracy: Mapping[str, np.ndarray] | None = None,
                       focus: Model | None = None, selected: Sequence[Model] = (),
                       marks: Sequence[tuple[str, str, Sequence[Model]]] = (), axis_title: str = "") -> go.Figure:
    """2D projection of every model of the visible groups (`points`: group -> (N, 2)).

    `values` (group -> (N,)) colours the dots on one colour scale titled `label` (NaN: grey), or,
    when they are not numbers (an imported zoo's run ids, its labels), one colour per value with a
    legend entry each (None: grey); None colours by group. `focus` gets a gold star, `selected` gold rings, and each entry of `marks`,
    (kind, legend label, models) with kind one of MARK_STYLES ("errs like": a red diamond, "fresh": a
    green square, "nearest": black rings), its own ring. The pick trace's customdata per point is
    [group, index, accuracy, value].
    """
    colours = group_colours(list(points))
    symbols = {g: SYMBOLS[i % len(SYMBOLS)] for i, g in enumerate(points)}
    categories = _categories(values)
    fig = go.Figure()
    for g in draw_order(list(points)):
        xy, rank = np.asarray(points[g], dtype=float), list(points).index(g) + 1
        if categories:
            _category_traces(fig, g, xy, (values or {}).get(g), categories, label, symbols[g], rank)
        else:
            _group_traces(fig, g, xy, None if values is None else values.get(g), colours[g], symbols[g], rank,
                          by_value=values is not None)
    fig.add_trace(_pick_trace(points, values, label, accuracy))
    for kind, name, models in marks:
        _mark(fig, points, models, name, MARK_STYLES[kind])
    if selected:
        _mark(fig, points, selected, "selected", {"size": 17, "symbol": "circle-open", "color": "#d4a017",
                                                  "line": {"width": 2.5}})
    if focus is not None:
        _mark(fig, points, [focus], f"in focus: {focus[0]} #{focus[1]}",
              {"size": 20, "symbol": "star", "color": "gold", "line": {"width": 1.5, "color": "black"}})
    if values is not None and not categories:
        finite = np.concatenate([_finite(v) for v in values.values()] or [np.zeros(0)])
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        fig.update_layout(coloraxis={"colorscale": "Viridis", "cmin": low, "cmax": high if high > low else low + 1e-9,
                                     "colorbar": {"title": label, "x": 1.0, "xanchor": "left", "len": 0.8}})
    fig.update_layout(**LAYOUT, height=560, xaxis_title=f"{axis_title} 1", yaxis_title=f"{axis_title} 2",
                      hovermode="closest", hoverdistance=30)
    fig.update_layout(**SELECTABLE, legend=LEGEND_BELOW | {"itemclick": False, "itemdoubleclick": False},
                      margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


MARK_STYLES = {"errs like": {"size": 19, "symbol": "diamond-open", "color": "#d62728", "line": {"width": 2.5}},
               "fresh": {"size": 17, "symbol": "square-open", "color": "#2ca02c", "line": {"width": 2.5}},
               "nearest": {"size": 15, "symbol": "circle-open", "color": "black", "line": {"width": 2}}}


def _group_traces(fig: go.Figure, g: str, xy: np.ndarray, values: np.ndarray | None, colour: str, symbol: str,
                  rank: int, by_value: bool) -> None:
    """One group's dots: coloured by group, or by value with the models that have none in grey."""
    marker = {"size": 8 if g == "generated" else 7, "opacity": 0.85, "line": {"width": 0.5, "color": "white"}}
    common = {"mode": "markers", "hoverinfo": "skip", "legendrank": rank, "unselected": {"marker": {"opacity": 0.85}}}
    if not by_value:
        fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], name=g, marker=marker | {"color": colour}, **common))
        return
    v = np.asarray(values, dtype=float) if values is not None else np.full(len(xy), np.nan)
    has = np.isfinite(v)
    fig.add_trace(go.Scatter(x=xy[has, 0], y=xy[has, 1], name=g, legendgroup=g,
                             marker=marker | {"color": v[has], "coloraxis": "coloraxis", "symbol": symbol}, **common))
    if (~has).any():
        fig.add_trace(go.Scatter(x=xy[~has, 0], y=xy[~has, 1], name=f"{g} (no value)", legendgroup=g,
                                 marker=marker | {"color": NO_VALUE, "symbol": symbol}, **common))


def _categories(values: Mapping[str, Sequence] | None) -> dict[str, str]:
    """value -> colour when `values` hold anything but numbers (else {}: a colour scale does)."""
    if values is None:
        return {}
    seen = [v for vs in values.values() if vs is not None for v in vs if v is not None]
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in seen):
        return {}
    palette = CATEGORY_COLOURS * (1 + len(seen) // len(CATEGORY_COLOURS))
    return {str(v): palette[i] for i, v in enumerate(dict.fromkeys(str(v) for v in seen))}


def _category_traces(fig: go.Figure, g: str, xy: np.ndarray, values: Sequence | None, categories: dict[str, str],
                     label: str, symbol: str, rank: int) -> None:
    """One group's dots, a trace per value (the legend names each value once), grey where none."""
    marker = {"size": 8 if g == "generated" else 7, "opacity": 0.85, "line": {"width": 0.5, "color": "white"},
              "symbol": symbol}
    common = {"mode": "markers", "hoverinfo": "skip", "legendrank": rank, "unselected": {"marker": {"opacity": 0.85}}}
    keys = [None if v is None else str(v) for v in values] if values is not None and len(values) == len(xy) \
        else [None] * len(xy)
    for value in dict.fromkeys(keys):
        rows = np.array([k == value for k in keys])
        name = f"{g} (no value)" if value is None else f"{g}: {label} {value}"
        fig.add_trace(go.Scatter(x=xy[rows, 0], y=xy[rows, 1], name=name, legendgroup=str(value),
                                 marker=marker | {"color": NO_VALUE if value is None else categories[value]},
                                 **common))


def _pick_trace(points: Mapping[str, np.ndarray], values: Mapping[str, np.ndarray] | None, label: str,
                accuracy: Mapping[str, np.ndarray] | None) -> go.Scatter:
    xs, ys, custom = [], [], []
    for g, xy in points.items():
        xy = np.asarray(xy, dtype=float)
        acc = np.asarray(accuracy[g], dtype=float) if accuracy is not None and g in accuracy else np.full(len(xy), np.nan)
        v = _shown(values.get(g) if values is not None else None, len(xy))
        xs += xy[:, 0].tolist()
        ys += xy[:, 1].tolist()
        custom += [[g, j, _number(acc[j]), v[j]] for j in range(len(xy))]
    shown = "" if values is None else f"<br>{label}: %{{customdata[3]}}"
    # numpy arrays: plotly validates a list of lists element by element (0.4 s for 1,400 points)
    return go.Scatter(x=np.asarray(xs), y=np.asarray(ys), mode="text", text=np.full(len(xs), "", dtype=object),
                      name=PICK, showlegend=False, customdata=np.array(custom, dtype=object).reshape(len(custom), 4),
                      hovertemplate="<b>%{customdata[0]} #%{customdata[1]}</b><br>accuracy %{customdata[2]}%"
                                    + shown + "<extra></extra>")


def _shown(values: Sequence | None, n: int) -> list:
    """The values the hover shows: numbers rounded, anything else as text, None where missing."""
    if values is None or len(values) != n:
        return [None] * n
    return [v if isinstance(v, str) else None if v is None else _number(float(v)) for v in values]


def _number(value: float) -> float | None:
    return round(float(value), 4) if np.isfinite(value) else None


def _mark(fig: go.Figure, points: Mapping[str, np.ndarray], models: Sequence[Model], name: str, style: dict) -> None:
    """Rings (or a star) on the models of the visible groups among `models`."""
    shown = [(g, i) for g, i in models if g in points and 0 <= i < len(points[g])]
    if not shown:
        return
    xy = np.array([np.asarray(points[g], dtype=float)[i] for g, i in shown])
    fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", name=name, hoverinfo="skip",
                             marker={k: v for k, v in style.items() if k != "line"} | {"line": style.get("line", {})}))


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]
