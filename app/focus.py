"""The model in focus, shared by every page: picked by a click or a box in a chart, a row of the model
table, the group and model boxes, or a search by id; kept in session state and in the URL
(`?model=generated:12`), so it survives a change of page and a shared link opens on it.

A chart's selection arrives as plotly points whose customdata starts with [group, index]; a
stacked marker of the memorization plot also lists every model it holds (customdata[3], "i j k").
Every way of picking goes through `set_focus`, in the script or in a widget's callback, so a real
click and a selection written by a test take the same path.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import streamlit as st

FOCUS, SELECTION, URL_KEY, FIND_ERROR = "focus", "focus_selection", "model", "_focus_find_error"
Model = tuple[str, int]
FIRST = {"generated": 0, "zoo": 1, "heldout": 2}
_ID = re.compile(r"^\s*([A-Za-z][\w.\-]*?)\s*(?:#|:|\s)\s*#?\s*(\d+)\s*$")


def model_id(model: Model) -> str:
    return f"{model[0]} #{model[1]}"


def parse_model(text: str | None, groups: Sequence[str], sizes: Sequence[int]) -> Model | None:
    """A model from what a user types or a URL holds: "generated #12", "generated 12", "generated:12"
    or a unique start of a group's name ("gen 12"); None when it names no model of the run."""
    match = _ID.match(text or "")
    if not match:
        return None
    name, index = match.group(1).lower(), int(match.group(2))
    exact = [g for g in groups if g.lower() == name]
    found = exact or [g for g in groups if g.lower().startswith(name)]
    if len(found) != 1:
        return None
    size = dict(zip(groups, sizes))[found[0]]
    return (found[0], index) if 0 <= index < size else None


def picked_models(event: Any, groups: Sequence[str], sizes: Sequence[int]) -> list[Model]:
    """(group, index) of every model in a plotly selection event, once each, the generated models first."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return []
    size = dict(zip(groups, sizes))
    out: list[Model] = []
    for point in points or []:
        custom = point.get("customdata") if isinstance(point, dict) else None
        if not isinstance(custom, (list, tuple)) or len(custom) < 2 or custom[0] not in size:
            continue
        listed = custom[3] if len(custom) > 3 and isinstance(custom[3], str) else None
        indices = [int(i) for i in listed.split()] if listed else [int(custom[1])]
        out += [(custom[0], i) for i in indices if 0 <= i < size[custom[0]] and (custom[0], i) not in out]
    return sorted(out, key=lambda model: FIRST.get(model[0], 3))  # stable: the generated models lead


def set_focus(model: Model, selection: Sequence[Model] | None = None) -> None:
    """Put `model` in focus (and `selection` as the picked set), in session state and in the URL."""
    st.session_state[FOCUS] = (model[0], int(model[1]))
    st.session_state[SELECTION] = list(selection) if selection else [st.session_state[FOCUS]]
    st.query_params[URL_KEY] = f"{model[0]}:{int(model[1])}"


def current(groups: Sequence[str], sizes: Sequence[int], default: Model) -> Model:
    """The model in focus: this session's, else the URL's, else `default` (valid for this run)."""
    focus = st.session_state.get(FOCUS)
    if not _valid(focus, groups, sizes):
        focus = parse_model(st.query_params.get(URL_KEY), groups, sizes) or default
        set_focus(focus)
    elif st.query_params.get(URL_KEY) != f"{focus[0]}:{focus[1]}":
        st.query_params[URL_KEY] = f"{focus[0]}:{focus[1]}"
    return st.session_state[FOCUS]


def _valid(model: Any, groups: Sequence[str], sizes: Sequence[int]) -> bool:
    if not isinstance(model, (tuple, list)) or len(model) != 2 or model[0] not in groups:
        return False
    return 0 <= int(model[1]) < dict(zip(groups, sizes))[model[0]]


def selection(focus: Model) -> list[Model]:
    """The models picked together with the one in focus (a box or lasso); just it otherwise."""
    chosen = [tuple(m) for m in st.session_state.get(SELECTION) or []]
    return chosen if tuple(focus) in chosen else [focus]


def sync_chart(chart_key: str, groups: Sequence[str], sizes: Sequence[int]) -> None:
    """Apply a chart selection that changed since the last run: its first model in focus, all picked."""
    picked = picked_models(st.session_state.get(chart_key), groups, sizes)
    signature = tuple(picked)
    if picked and signature != st.session_state.get(f"_{chart_key}_applied"):
        st.session_state[f"_{chart_key}_applied"] = signature
        set_focus(picked[0], picked)


def sync_table(table_key: str, rows: Sequence[Model]) -> None:
    """Apply a row clicked in the model table (`rows`: the model of each row of the frame shown)."""
    event = st.session_state.get(table_key)
    try:
        chosen = list(event["selection"]["rows"])
    except (KeyError, TypeError):
        return
    picked = [tuple(rows[i]) for i in chosen if 0 <= i < len(rows)]
    signature = tuple(picked)  # the models, not the row numbers: a filter changes which model a row holds
    if picked and signature != st.session_state.get(f"_{table_key}_applied"):
        st.session_state[f"_{table_key}_applied"] = signature
        set_focus(picked[0])


def pickers(prefix: str, groups: Sequence[str], sizes: Sequence[int], accuracy: Mapping[str, np.ndarray],
            max_iou: Mapping[str, np.ndarray], focus: Model) -> Model:
    """Group and model boxes (models sorted by accuracy, best first) and a search by id, all showing
    and changing the shared focus; returns the model in focus."""
    group_key, index_key, find_key = f"{prefix}_pick_group", f"{prefix}_pick_index", f"{prefix}_find"
    st.session_state[group_key], st.session_state[index_key] = focus
    s1, s2, s3 = st.columns([2, 3, 2])
    s1.selectbox("Model group", list(groups), key=group_key, on_change=_group_changed, args=(group_key, accuracy))
    group = focus[0]
    order = np.argsort(-np.asarray(accuracy[group]), kind="stable").tolist()
    s2.selectbox("Model (sorted by accuracy, best first)", order, key=index_key, on_change=_index_changed,
                 help="The list is sorted by accuracy; the model in focus is whichever was picked last. A page "
                      "opens on the generated model most like a training checkpoint (the highest max IoU).",
                 args=(group, index_key), format_func=lambda i: f"#{i}: {accuracy[group][i]:.2f}%, "
                                                                f"max IoU {max_iou[group][i]:.3f}")
    s3.text_input("Find a model by id", key=find_key, placeholder="e.g. generated 12", on_change=_find,
                  args=(find_key, list(groups), list(sizes)), help="A group's name (or its first letters) and the "
                  "model's number: 'generated #12', 'zoo 3', 'noise-abs-0.01 5'. The model in focus is also in the "
                  "page's address (?model=...), so a link opens on it.")
    problem = st.session_state.pop(FIND_ERROR, None)
    if problem:
        s3.caption(f":red[{problem}]")
    return st.session_state[FOCUS]


def _group_changed(group_key: str, accuracy: Mapping[str, np.ndarray]) -> None:
    group = st.session_state[group_key]
    set_focus((group, int(np.argmax(accuracy[group]))))


def _index_changed(group: str, index_key: str) -> None:
    set_focus((group, int(st.session_state[index_key])))


def _find(find_key: str, groups: list[str], sizes: list[int]) -> None:
    text = st.session_state.get(find_key, "")
    model = parse_model(text, groups, sizes)
    if model is None:
        if text.strip():
            st.session_state[FIND_ERROR] = f"No model '{text.strip()}' in this run (groups: {', '.join(groups)})."
        return
    set_focus(model)
