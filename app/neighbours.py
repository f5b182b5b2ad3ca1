"""Picking models in a chart and showing them beside their nearest zoo models (Latent space and
Similarity pages share this).

A chart's selection (a click, a box or a lasso) arrives as plotly points whose customdata starts
with [group, index]; a stacked marker of the memorization plot also lists every model it holds
(customdata[3], "i j k"). `sync_selection` turns a new selection into the page's pickers, in the
script itself, so a real click and a selection written by a test take the same path.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from app import data, figures, tables
from pdiff.core.rundir import RunDir
from pdiff.judge.glossary import define_metric


def picked_models(event: Any, groups: list[str], sizes: list[int]) -> list[tuple[str, int]]:
    """(group, index) of every model in a plotly selection event, in the order selected, once each."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return []
    size = dict(zip(groups, sizes))
    out: list[tuple[str, int]] = []
    for point in points or []:
        custom = point.get("customdata") if isinstance(point, dict) else None
        if not isinstance(custom, (list, tuple)) or len(custom) < 2 or custom[0] not in size:
            continue
        listed = custom[3] if len(custom) > 3 and isinstance(custom[3], str) else None
        indices = [int(i) for i in listed.split()] if listed else [int(custom[1])]
        out += [(custom[0], i) for i in indices if 0 <= i < size[custom[0]] and (custom[0], i) not in out]
    first = {"generated": 0, "zoo": 1, "heldout": 2}
    return sorted(out, key=lambda model: first.get(model[0], 3))  # stable: the generated models lead


def sync_selection(chart_key: str, prefix: str, groups: list[str], sizes: list[int]) -> None:
    """Apply a chart selection that changed since the last run to `{prefix}_pick_group`,
    `{prefix}_pick_index` (the first model) and `{prefix}_selected` (all of them)."""
    picked = picked_models(st.session_state.get(chart_key), groups, sizes)
    signature = tuple(picked)
    if picked and signature != st.session_state.get(f"_{chart_key}_applied"):
        st.session_state[f"_{chart_key}_applied"] = signature
        st.session_state[f"{prefix}_selected"] = picked
        st.session_state[f"{prefix}_pick_group"], st.session_state[f"{prefix}_pick_index"] = picked[0]


def pickers(prefix: str, groups: list[str], sizes: list[int], accuracy: dict[str, np.ndarray],
            max_iou: dict[str, np.ndarray], default: tuple[str, int] | None = None) -> tuple[str, int]:
    """Group and model selectboxes (best model first); returns the model in focus."""
    s1, s2 = st.columns(2)
    group_key, index_key = f"{prefix}_pick_group", f"{prefix}_pick_index"
    if st.session_state.get(group_key) not in groups:
        st.session_state[group_key] = default[0] if default else ("generated" if "generated" in groups else groups[0])
        if default:
            st.session_state[index_key] = default[1]
    group = s1.selectbox("Model group", groups, key=group_key)
    n = sizes[groups.index(group)]
    if not 0 <= st.session_state.get(index_key, 0) < n:
        st.session_state[index_key] = int(np.argmax(accuracy[group]))
    order = np.argsort(-accuracy[group], kind="stable").tolist()
    index = s2.selectbox("Model (best first)", order, key=index_key,
                         format_func=lambda i: f"#{i}: {accuracy[group][i]:.2f}%, max IoU {max_iou[group][i]:.3f}")
    return group, int(index)


def selected_models(prefix: str, focus: tuple[str, int]) -> list[tuple[str, int]]:
    """The models picked in the chart, when the model in focus is one of them; else just it."""
    chosen = st.session_state.get(f"{prefix}_selected") or []
    return list(chosen) if focus in chosen else [focus]


def selection_table(run: RunDir, selected: list[tuple[str, int]], prefix: str) -> None:
    """The picked models, one row each: accuracy, max IoU, nearest zoo model and distance."""
    if len(selected) < 2:
        return
    frame = tables.selection_frame(selected, data.accuracy(run), data.group_arrays(run, "max_iou"),
                                   data.group_arrays(run, "nn_index"), data.group_arrays(run, "nn_distance"))
    st.markdown(f"**{len(selected)} models selected** (the first is shown below; pick another in the boxes above)")
    st.dataframe(frame, hide_index=True, width="stretch", key=f"{prefix}_selection", height=min(300, 38 + 35 * len(frame)),
                 column_config={"accuracy (%)": st.column_config.NumberColumn(format="%.2f"),
                                "max IoU to zoo": st.column_config.NumberColumn(format="%.3f",
                                                                                help=define_metric("max_iou")),
                                "NN distance": st.column_config.NumberColumn(format="%.3f",
                                                                             help=define_metric("nn_distance"))})


def focus_panel(run: RunDir, group: str, index: int, prefix: str) -> None:
    """One model's parameters beside its three nearest zoo models, their accuracy, distance and
    IoU, and a download of the model as a full classifier."""
    tensors, meta = data.analysis(run)
    groups, sizes = meta["groups"], meta["sizes"]
    accuracy = data.accuracy(run)
    neighbours = tensors[f"{group}.neighbours"][index].tolist()
    st.subheader(f"{group} #{index} beside its nearest zoo models")
    params = data.params(run)
    vectors = np.stack([params[group][index]] + [params["zoo"][j] for j in neighbours])
    offsets = dict(zip(groups, np.cumsum([0, *sizes[:-1]]).tolist()))
    row = offsets[group] + index
    iou = tensors["iou"]
    names = [f"{group} #{index}"] + [f"zoo #{j}" for j in neighbours]
    v1, v2, v3 = st.columns([2, 2, 1])
    scales = ["normalized", "raw"] if data.done(run, "autoencoder") else ["raw"]  # no generator: no normalizer
    scale = v1.radio("Values", scales, horizontal=True, key=f"{prefix}_values",
                     help="normalized as the autoencoder sees it (by default: minus the zoo's mean, over one spread; "
                          "`autoencoder.centre=false`: each tensor z-scored), so what differs between models stands out")
    difference = v2.toggle("Show differences from the selected model", key=f"{prefix}_diff",
                           help="Zoo columns become (zoo - selected): near-white means nearly the same weights.")
    v3.download_button("Download classifier", data=lambda: data.export_file(run, group, index),
                       file_name=f"{run.name}-{group}-{index}.safetensors", mime="application/octet-stream",
                       key=f"{prefix}_export", on_click="ignore", icon=":material/download:",
                       help="The full classifier state dict (the run's frozen base with this model's parameters), "
                            "as `python -m pdiff export` writes it; load it with load_state_dict (see the README).")
    shown_vectors = data.normalized(run, vectors) if scale.startswith("normalized") else vectors.copy()
    if difference:
        shown_vectors[1:] = shown_vectors[1:] - shown_vectors[0]
    titles = [f"{n}: {a:.2f}%" for n, a in zip(names, [accuracy[group][index]] + [accuracy["zoo"][j] for j in neighbours])]
    st.plotly_chart(figures.weight_heatmaps(shown_vectors, titles), key=f"{prefix}_weights")
    aligned = (data.table(run).alignment or {}).get("aligned")
    st.caption("Each image is one parameter vector laid out row by row (blank cells pad the square). "
               "The nearest zoo models are the three closest in L2 over the "
               + ("neuron-aligned parameters (the images show them as stored)." if aligned else "raw parameters."))
    table = {
        "model": names,
        "accuracy (%)": [float(accuracy[group][index])] + [float(accuracy["zoo"][j]) for j in neighbours],
        "L2 distance": [0.0] + _neighbour_distances(tensors, group, index, vectors, params["zoo"], neighbours),
        "IoU with selected": [1.0] + [float(iou[row, offsets["zoo"] + j]) for j in neighbours],
    }
    st.dataframe(table, hide_index=True, key=f"{prefix}_neighbours",
                 column_config={"accuracy (%)": st.column_config.NumberColumn(format="%.2f"),
                                "L2 distance": st.column_config.NumberColumn(format="%.3f"),
                                "IoU with selected": st.column_config.NumberColumn(format="%.3f")})


def _neighbour_distances(tensors: dict[str, np.ndarray], group: str, index: int, vectors: np.ndarray,
                         zoo: np.ndarray, neighbours: list[int]) -> list[float]:
    """The distances the analysis measured (between aligned models where it aligned); recomputed
    from the stored parameters for an analysis that kept none."""
    key = f"{group}.neighbour_distances"
    if key in tensors:
        return [float(d) for d in tensors[key][index]]
    return [float(np.linalg.norm(vectors[0] - zoo[j])) for j in neighbours]
