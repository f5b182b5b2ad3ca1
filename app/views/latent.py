"""Latent space: every model in one 2D map; pick a model to see its nearest zoo models."""
import numpy as np
import streamlit as st

from app import data, figures, ui

st.title("Latent space")
ui.intro("Every dot is one model, placed so that models with similar parameters (or autoencoder latents) sit close "
         "together: UMAP keeps neighbourhoods, PCA keeps straight-line distances. Generated models lying on top of "
         "zoo models may be copies; ones spread between them are new. Click a model (or pick it below) to see its "
         "parameters beside its three nearest zoo models, with their accuracy and IoU.")

run = ui.selected_run()
with ui.guard(run):
    if ui.need(run, "analyse", "the projections"):
        tensors, meta = data.analysis(run)
        groups, sizes = meta["groups"], meta["sizes"]
        accuracy = data.accuracy(run)
        max_iou = data.group_arrays(run, "max_iou")
        has_umap = any(k.endswith("_umap") for k in tensors)

        c1, c2, c3, c4 = st.columns([1, 1, 1, 3])
        method = c1.radio("Projection", ["UMAP", "PCA"] if has_umap else ["PCA"], key="lat_method")
        space = c2.radio("Space", ["parameters", "latents"], key="lat_space",
                         help="parameters: the flat parameter vectors (z-scored per coordinate); "
                              "latents: the autoencoder's codes, where the diffusion model works")
        colour = c3.radio("Colour by", ["group", "accuracy"], key="lat_colour")
        shown = c4.multiselect("Groups", groups, default=groups, key="lat_groups")
        if not has_umap:
            st.caption("This run has no UMAP (analysis.umap=false); showing PCA.")
        suffix = f"{'params' if space == 'parameters' else 'latent'}_{method.lower()}"
        points = {g: tensors[f"{g}.{suffix}"] for g in shown}

        # A click on the chart (its last selection) picks the model shown below.
        event = st.session_state.get("lat_chart")
        picked = (event or {}).get("selection", {}).get("points", []) if event else []
        if picked and isinstance(picked[0].get("customdata"), list):
            g, i = picked[0]["customdata"][0], int(picked[0]["customdata"][1])
            if g in groups and (g, i) != st.session_state.get("_lat_last_pick"):
                st.session_state["_lat_last_pick"] = (g, i)
                st.session_state["lat_pick_group"], st.session_state["lat_pick_index"] = g, i

        s1, s2 = st.columns(2)
        default_group = "generated" if "generated" in groups else groups[0]
        if st.session_state.get("lat_pick_group") not in groups:
            st.session_state["lat_pick_group"] = default_group
        group = s1.selectbox("Model group", groups, key="lat_pick_group")
        n = sizes[groups.index(group)]
        if not 0 <= st.session_state.get("lat_pick_index", 0) < n:
            st.session_state["lat_pick_index"] = 0
        order = np.argsort(-accuracy[group], kind="stable").tolist()
        index = s2.selectbox("Model (best first)", order, key="lat_pick_index",
                             format_func=lambda i: f"#{i}: {accuracy[group][i]:.2f}%, max IoU {max_iou[group][i]:.3f}")
        neighbours = tensors[f"{group}.neighbours"][index].tolist()

        fig = figures.projection_scatter(points, {g: accuracy[g] for g in shown}, max_iou, colour,
                                         selected=(group, index), neighbours=neighbours,
                                         axis_title=f"{method} ({space})")
        st.plotly_chart(fig, key="lat_chart", on_select="rerun", selection_mode="points")

        st.subheader(f"{group} #{index} beside its nearest zoo models")
        params = data.params(run)
        vectors = np.stack([params[group][index]] + [params["zoo"][j] for j in neighbours])
        offsets = dict(zip(groups, np.cumsum([0, *sizes[:-1]]).tolist()))
        row = offsets[group] + index
        iou = tensors["iou"]
        names = [f"{group} #{index}"] + [f"zoo #{j}" for j in neighbours]
        v1, v2 = st.columns(2)
        scale = v1.radio("Values", ["normalized per tensor", "raw"], horizontal=True, key="lat_values",
                         help="normalized: each tensor z-scored over the zoo, as the autoencoder sees it, so small "
                              "and large tensors show alike")
        difference = v2.toggle("Show differences from the selected model", key="lat_diff",
                               help="Zoo columns become (zoo - selected): near-white means nearly the same weights.")
        shown_vectors = data.normalized(run, vectors) if scale.startswith("normalized") else vectors.copy()
        if difference:
            shown_vectors[1:] = shown_vectors[1:] - shown_vectors[0]
        st.plotly_chart(figures.weight_heatmaps(shown_vectors, names), key="lat_heatmap")
        st.caption("Each image is one parameter vector laid out row by row (blank cells pad the square). "
                   "The nearest zoo models are the three closest in L2 over the raw parameters.")
        table = {
            "model": names,
            "accuracy (%)": [float(accuracy[group][index])] + [float(accuracy["zoo"][j]) for j in neighbours],
            "L2 distance": [0.0] + [float(np.linalg.norm(vectors[0] - params["zoo"][j])) for j in neighbours],
            "IoU with selected": [1.0] + [float(iou[row, offsets["zoo"] + j]) for j in neighbours],
        }
        st.dataframe(table, hide_index=True, key="lat_neighbours",
                     column_config={"accuracy (%)": st.column_config.NumberColumn(format="%.2f"),
                                    "L2 distance": st.column_config.NumberColumn(format="%.3f"),
                                    "IoU with selected": st.column_config.NumberColumn(format="%.3f")})
