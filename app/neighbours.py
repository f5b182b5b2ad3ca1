"""The model in focus beside the models it resembles (Latent space and Similarity share this): the
training checkpoint it errs like (its max-IoU checkpoint, the memorization evidence), the fresh SGD
model it errs most like, and its k nearest checkpoints in a chosen space (parameters, latents,
predictions), as pictures and a table; on Similarity also which test samples it and one of them
both get wrong. Every number comes from the analysis or from pdiff.judge.neighbours.
"""
from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from app import data, figures, focus, tables
from pdiff.core.rundir import RunDir
from pdiff.judge import neighbours as near
from pdiff.judge import statements
from pdiff.judge.glossary import define_metric

Model = tuple[str, int]
MAX_PICTURES = 6


def offsets(meta: dict) -> dict[str, int]:
    """group -> its first row in the analysis' IoU matrix (groups in order)."""
    return dict(zip(meta["groups"], np.cumsum([0, *meta["sizes"][:-1]]).tolist()))


def iou_with(tensors: dict, meta: dict, model: Model, group: str) -> np.ndarray:
    """The model's IoU of wrong test predictions with every model of `group` (N_group,)."""
    start = offsets(meta)
    size = dict(zip(meta["groups"], meta["sizes"]))[group]
    return tensors["iou"][start[model[0]] + model[1], start[group]:start[group] + size]


def errs_like(tensors: dict, meta: dict, model: Model) -> near.ErrsLike:
    """Its max-IoU checkpoint as the analysis stored it, and the fresh SGD model it errs most like."""
    g, i = model
    fresh = torch.from_numpy(iou_with(tensors, meta, model, "fresh")) if "fresh" in meta["groups"] else None
    return near.errs_like(int(tensors[f"{g}.max_iou_index"][i]), float(tensors[f"{g}.max_iou"][i]), fresh,
                          exclude_fresh=i if g == "fresh" else None)


def nearest(run: RunDir, tensors: dict, meta: dict, model: Model, space: str, k: int) -> list[near.Neighbour]:
    """Its k nearest training checkpoints in `space` (itself excluded when it is one)."""
    g, i = model
    exclude = i if g == "zoo" else None
    if space == "predictions":
        return near.nearest(space, torch.from_numpy(iou_with(tensors, meta, model, "zoo")), torch.zeros(0), k, exclude)
    vectors = data.params(run) if space == "parameters" else data.latents(run)
    return near.nearest(space, torch.from_numpy(vectors[g][i]), torch.from_numpy(vectors["zoo"]), k, exclude)


def related(errs: near.ErrsLike, found: list[near.Neighbour], space: str) -> list[tuple[str, Model]]:
    """(role, model) of every model shown beside the one in focus, in order."""
    rows: list[tuple[str, Model]] = []
    if errs.checkpoint >= 0:
        rows.append(("errs like (max IoU)", ("zoo", errs.checkpoint)))
    if errs.fresh is not None:
        rows.append(("fresh SGD it errs most like", ("fresh", errs.fresh)))
    rows += [(f"nearest {n + 1} ({space})", ("zoo", hit.index)) for n, hit in enumerate(found)]
    return rows


def default_model(max_iou: dict[str, np.ndarray], accuracy: dict[str, np.ndarray]) -> Model:
    """The model a page opens on: the generated model most like a training checkpoint (the highest max
    IoU; of those, the most accurate), else the zoo's best checkpoint."""
    group = "generated" if "generated" in max_iou else "zoo"
    iou, acc = np.nan_to_num(np.asarray(max_iou[group], dtype=float), nan=-1.0), np.asarray(accuracy[group])
    best = max(range(len(iou)), key=lambda j: (iou[j], acc[j], -j))
    return group, int(best)


def marks(run: RunDir, tensors: dict, meta: dict, model: Model, space: str,
          k: int) -> list[tuple[str, str, list[Model]]]:
    """What the projector rings around the model in focus, (kind, label, models): the checkpoint it
    errs like, the fresh SGD model it errs most like, its k nearest checkpoints in `space`."""
    errs = errs_like(tensors, meta, model)
    out: list[tuple[str, str, list[Model]]] = []
    if errs.checkpoint >= 0:
        out.append(("errs like", f"errs like: zoo #{errs.checkpoint}", [("zoo", errs.checkpoint)]))
    if errs.fresh is not None:
        out.append(("fresh", f"errs most like of fresh SGD: #{errs.fresh}", [("fresh", errs.fresh)]))
    found = [("zoo", n.index) for n in nearest(run, tensors, meta, model, space, k)]
    return [*out, ("nearest", f"{k} nearest checkpoints ({space})", found)]


def controls(prefix: str, spaces: tuple[str, ...] = near.SPACES) -> tuple[str, int]:
    """The space neighbours are measured in and how many to show."""
    c1, c2 = st.columns([3, 2])
    space = c1.radio("Nearest checkpoints by", spaces, horizontal=True, key=f"{prefix}_space",
                     help="parameters: L2 over the raw parameter vectors; latents: L2 over the standardized "
                          "autoencoder latents (where the diffusion works); predictions: 1 − IoU of the sets of wrong "
                          "test predictions (0 = the same mistakes)")
    k = c2.slider("How many", 1, 10, 3, key=f"{prefix}_k")
    return space, int(k)


def focus_panel(run: RunDir, model: Model, prefix: str, show_overlap: bool = False) -> None:
    """The model in focus: what it errs like, its nearest checkpoints, their pictures and a table,
    a download; with `show_overlap`, the wrong test samples it shares with one of them."""
    tensors, meta = data.analysis(run)
    g, i = model
    st.subheader(f"{g} #{i}: what it errs like and its nearest checkpoints")
    with_generator = data.done(run, "autoencoder")  # a zoo explored alone has no latents, no normalizer
    space, k = controls(prefix, near.SPACES if with_generator else tuple(s for s in near.SPACES if s != "latents"))
    errs = errs_like(tensors, meta, model)
    found = nearest(run, tensors, meta, model, space, k)
    rows = related(errs, found, space)
    _errs_sentence(run, model, errs)
    _pictures(run, model, rows, prefix)
    _table(run, tensors, meta, model, rows, space, prefix)
    if show_overlap and rows:
        overlap_panel(run, model, rows, prefix)


def _errs_sentence(run: RunDir, model: Model, errs: near.ErrsLike) -> None:
    if errs.checkpoint < 0:
        st.caption("A lone training checkpoint has no other checkpoint to err like.")
        return
    zoo = data.scorecard(run).get("zoo", {})
    step = 1.0 / (zoo["errors_median"] + 1.0) if zoo.get("errors_median") is not None else 0.0
    text = statements.errs_like_sentence(focus.model_id(model), f"zoo #{errs.checkpoint}", errs.checkpoint_iou,
                                         None if errs.fresh is None else f"fresh #{errs.fresh}", errs.fresh_iou, step)
    st.markdown(f"**Errs like.** {text}")


def _pictures(run: RunDir, model: Model, rows: list[tuple[str, Model]], prefix: str) -> None:
    params, accuracy = data.params(run), data.accuracy(run)
    shown = [("in focus", model)] + [r for r in rows if r[1] != model][: MAX_PICTURES - 1]
    v1, v2, v3 = st.columns([2, 2, 1])
    scales = ["normalized", "raw"] if data.done(run, "autoencoder") else ["raw"]  # no generator: no normalizer
    scale = v1.radio("Values", scales, horizontal=True, key=f"{prefix}_values",
                     help="normalized as the autoencoder sees it (by default: minus the zoo's mean, over one spread; "
                          "`autoencoder.centre=false`: each tensor z-scored), so what differs between models stands out")
    difference = v2.toggle("Show differences from the model in focus", key=f"{prefix}_diff",
                           help="The other pictures become (other − in focus), each on its own scale: near-white "
                                "means nearly the same weights.")
    v3.download_button("Download classifier", data=lambda: data.export_file(run, model[0], model[1]),
                       file_name=f"{run.name}-{model[0]}-{model[1]}.safetensors", mime="application/octet-stream",
                       key=f"{prefix}_export", on_click="ignore", icon=":material/download:",
                       help="The full classifier state dict (the run's frozen base with this model's parameters), "
                            "as `python -m pdiff export` writes it; load it with load_state_dict (see the README).")
    vectors = np.stack([params[m[0]][m[1]] for _, m in shown])
    pictures = data.normalized(run, vectors) if scale == "normalized" else vectors.copy()
    if difference:
        pictures[1:] = pictures[1:] - pictures[0]
    titles = [f"{role}<br>{focus.model_id(m)}: {accuracy[m[0]][m[1]]:.2f}%" for role, m in shown]
    own = [False] + [difference] * (len(shown) - 1)
    st.plotly_chart(figures.weight_heatmaps(pictures, titles, own), key=f"{prefix}_weights")
    aligned = (data.table(run).alignment or {}).get("aligned")
    st.caption("Each image is one parameter vector laid out row by row (blank cells pad the square)."
               + (" The analysis measured distances between neuron-aligned models (the images show them as stored);"
                  " the nearest checkpoints here are by the stored parameters." if aligned else ""))


def _table(run: RunDir, tensors: dict, meta: dict, model: Model, rows: list[tuple[str, Model]], space: str,
           prefix: str) -> None:
    params, accuracy = data.params(run), data.accuracy(run)
    vectors = data.latents(run) if space == "latents" else params
    start = offsets(meta)
    row = tensors["iou"][start[model[0]] + model[1]]
    others = [m for _, m in rows]
    iou = np.array([float(row[start[g] + j]) for g, j in others])
    l2 = near.distances("parameters", torch.from_numpy(params[model[0]][model[1]]),
                        torch.from_numpy(np.stack([params[g][j] for g, j in others]) if others else np.zeros((0, 1))))
    if space == "predictions":
        chosen = near.distances(space, torch.from_numpy(iou), torch.zeros(0))
    else:
        chosen = near.distances(space, torch.from_numpy(vectors[model[0]][model[1]]),
                                torch.from_numpy(np.stack([vectors[g][j] for g, j in others])
                                                 if others else np.zeros((0, 1))))
    frame = tables.neighbour_frame(model, rows, accuracy, iou, l2.numpy(), chosen.numpy(), space)
    st.dataframe(frame, hide_index=True, key=f"{prefix}_neighbours", width="stretch", column_config={
        "accuracy (%)": st.column_config.NumberColumn(format="%.2f"),
        "IoU with it": st.column_config.NumberColumn(format="%.3f", help=define_metric("max_iou")),
        "L2 distance": st.column_config.NumberColumn(format="%.3f", help="over the raw parameters"),
        f"distance ({space})": st.column_config.NumberColumn(format="%.3f", help=near.SPACE_UNITS[space])})


def selection_table(run: RunDir, selected: list[Model], prefix: str) -> None:
    """The picked models, one row each: accuracy, max IoU, nearest zoo model and distance."""
    if len(selected) < 2:
        return
    frame = tables.selection_frame(selected, data.accuracy(run), data.group_arrays(run, "max_iou"),
                                   data.group_arrays(run, "nn_index"), data.group_arrays(run, "nn_distance"))
    st.markdown(f"**{len(selected)} models selected** (the first is in focus below; pick another in the boxes above)")
    st.dataframe(frame, hide_index=True, width="stretch", key=f"{prefix}_selection", height=min(300, 38 + 35 * len(frame)),
                 column_config={"accuracy (%)": st.column_config.NumberColumn(format="%.2f"),
                                "max IoU to zoo": st.column_config.NumberColumn(format="%.3f",
                                                                                help=define_metric("max_iou")),
                                "NN distance": st.column_config.NumberColumn(format="%.3f",
                                                                             help=define_metric("nn_distance"))})


def overlap_panel(run: RunDir, model: Model, rows: list[tuple[str, Model]], prefix: str) -> None:
    """Which test samples the model in focus and one of its related models both get wrong."""
    st.markdown(f"**Shared mistakes.** Which test samples {focus.model_id(model)} and another model both get wrong.")
    labels_of = {f"{focus.model_id(m)} ({role})": m for role, m in rows}
    partner_name = st.selectbox("Compare its mistakes with", list(labels_of), key=f"{prefix}_partner")
    partner = labels_of[partner_name]
    predictions, labels = data.predictions(run)
    a, b = predictions[model[0]][model[1]], predictions[partner[0]][partner[1]]
    overlap = near.wrong_overlap(torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(labels))
    same = int(overlap.same_answer.sum())
    counts = {"same": same, "different": len(overlap.both) - same, "only_a": len(overlap.only_a),
              "only_b": len(overlap.only_b)}
    names = (focus.model_id(model), focus.model_id(partner))
    st.plotly_chart(figures.overlap_figure(counts, names), key=f"{prefix}_overlap")
    st.caption(f"IoU of the two sets of wrong test samples: {overlap.iou:.3f} ({len(overlap.both)} shared of "
               f"{len(overlap.both) + len(overlap.only_a) + len(overlap.only_b)} wrong by either).")
    frame = tables.overlap_frame(overlap, a, b, labels, names)
    if not frame.empty:
        st.dataframe(frame, hide_index=True, key=f"{prefix}_overlap_samples", width="stretch",
                     height=min(320, 38 + 35 * len(frame)))
