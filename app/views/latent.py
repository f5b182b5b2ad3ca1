"""Latent space: the projector. Every model in one 2D map, coloured by any per-model value; click a dot
(or box/lasso several), search by id or click a row of the model table to put a model in focus and
see what it errs like and its nearest checkpoints; where in the zoo the generated models land."""
import streamlit as st

from app import data, figures, focus, neighbours, projector, tables, ui
from pdiff.judge import statements
from pdiff.judge.catalogue import COLUMNS, LABELS

st.title("Latent space")
ui.intro("Every dot is one model, placed so that models with similar parameters (or autoencoder latents) sit close "
         "together: UMAP keeps neighbourhoods, PCA keeps straight-line distances. Generated models lying on top of "
         "zoo models may be copies; ones spread between them are new. **Click a dot**, search a model by id, or click "
         "a row of the table below to put it in focus: the star marks it, a red diamond the training checkpoint it "
         "errs like, a green square the fresh SGD model it errs most like, black rings its nearest checkpoints. "
         "*Box select* or *Lasso select* in the chart's toolbar picks several. The model in focus stays in focus on "
         "the Similarity page and in the page's address.")

run = ui.selected_run()
with ui.guard(run):
    if ui.need(run, "analyse", "the projections"):
        tensors, meta = data.analysis(run)
        groups, sizes = meta["groups"], meta["sizes"]
        accuracy = data.accuracy(run)
        max_iou = data.group_arrays(run, "max_iou")
        values = data.per_model(run)
        has_umap = any(k.endswith("_umap") for k in tensors)
        has_latents = "zoo.latent_pca" in tensors  # a run without a generator has no autoencoder latents
        labels = data.zoo_labels(run)

        c1, c2, c3, c4 = st.columns([1, 1, 2, 3])
        method = c1.radio("Projection", ["UMAP", "PCA"] if has_umap else ["PCA"], key="lat_method")
        space = c2.radio("Space", ["parameters", "latents"] if has_latents else ["parameters"], key="lat_space_map",
                         help="parameters: the flat parameter vectors (z-scored per coordinate; neuron-aligned when "
                              "the zoo mixes runs); latents: the autoencoder's codes, where the diffusion model works")
        metadata = [c for c in labels if c not in COLUMNS]  # an imported zoo's own columns (run, labels)
        colour = c3.selectbox("Colour by", ["group", *COLUMNS, *metadata], key="lat_colour",
                              format_func=lambda c: "group" if c == "group" else LABELS.get(c, f"{c} (metadata)"),
                              help="group, one value per model (" + "; ".join(f"{LABELS[c]}: {d}"
                                                                            for c, d in COLUMNS.items())
                                   + "), or what the imported zoo's metadata says of each checkpoint")
        shown = c4.multiselect("Groups", groups, default=groups, key="lat_groups")
        if not has_umap:
            st.caption("This run has no UMAP (analysis.umap=false); showing PCA.")
        if not has_latents:
            st.caption("This run has no generator, so no autoencoder latents: the map shows the parameters.")
        suffix = f"{'params' if space == 'parameters' else 'latent'}_{method.lower()}"
        points = {g: tensors[f"{g}.{suffix}"] for g in shown}

        focus.sync_chart("lat_chart", groups, sizes)
        focus.sync_table("lat_table", st.session_state.get("_lat_table_rows", []))
        model = focus.pickers("lat", groups, sizes, accuracy, max_iou,
                              focus.current(groups, sizes, neighbours.default_model(max_iou, accuracy)))
        selected = focus.selection(model)
        marks = neighbours.marks(run, tensors, meta, model, st.session_state.get("lat_space", "parameters"),
                                 int(st.session_state.get("lat_k", 3)))
        by_metadata = colour in metadata
        fig = projector.projection_scatter(
            points, None if colour == "group" else labels[colour] if by_metadata else values[colour],
            "group" if colour == "group" else LABELS.get(colour, colour), accuracy, model,
            selected if len(selected) > 1 else (), marks, f"{method} ({space})")
        st.plotly_chart(fig, key="lat_chart", on_select="rerun", selection_mode=figures.SELECTION_MODES)
        if colour != "group":
            what = f"the imported metadata's {colour!r}" if by_metadata else COLUMNS[colour]
            st.caption(f"Colour: {what}. Grey: models without that value.")

        with st.expander("Every model of the groups shown: sort by a column, filter, click a row to focus it",
                         expanded=False):
            frame = tables.model_frame(values, shown)
            text = st.text_input("Only models whose id contains", key="lat_table_filter", placeholder="e.g. generated")
            if text.strip():
                frame = frame[frame["model"].str.contains(text.strip(), case=False, regex=False)]
            frame = frame.reset_index(drop=True)
            st.session_state["_lat_table_rows"] = list(zip(frame["group"], frame["index"].astype(int)))
            st.dataframe(frame.rename(columns=LABELS), key="lat_table", on_select="rerun",
                         selection_mode="single-row", hide_index=True, width="stretch", height=360,
                         column_config={LABELS[c]: st.column_config.NumberColumn(help=d, format="%.4g")
                                        for c, d in COLUMNS.items()})
            st.caption(f"{len(frame)} models. Click a column's header to sort by it.")

        neighbours.selection_table(run, selected, "lat")
        neighbours.focus_panel(run, model, "lat")

        card = data.scorecard(run)
        if "generated" in groups:  # a run without a generator skips what only generated models show
            st.subheader("Where in the zoo do the generated models land?")
            nn_index = data.group_arrays(run, "nn_index")
            landing = st.multiselect("Groups", groups, default=["generated"], key="lat_landing_groups")
            st.plotly_chart(figures.nearest_zoo_histogram({g: nn_index[g] for g in landing}, sizes[0]),
                            key="lat_landing")
        if "generated" in card and card["generated"].get("nn_top"):
            gen = card["generated"]
            top = ", ".join(f"#{i}" for i in sorted(gen["nn_top"]))
            st.caption(f"Each bar counts the models whose nearest training checkpoint (L2 over the raw parameters) is "
                       f"that checkpoint; the zoo is in SGD order. {round(gen['nn_top_share'] * gen['n'])} of "
                       f"{gen['n']} generated models are nearest to checkpoints {top}, and {gen['nn_targets']} of "
                       f"the zoo's {sizes[0]} checkpoints are nearest to any: a generator that covered its training "
                       f"set would spread over the whole axis.")

        st.subheader("Generator fidelity: does it cover the training latents?" if "generated" in groups else
                     "Fidelity: how each group covers the training zoo")
        stds = {g: tensors[f"{g}.latent_std"] for g in ("zoo", "generated", "ae-reconstruction", "decoder-only")
                if f"{g}.latent_std" in tensors}
        if "generated" in stds:
            st.plotly_chart(figures.latent_spread(stds), key="lat_spread")
            st.caption(statements.spread_caption(card.get("generated", {}).get("latent_spread_ratio")))
        space_name = st.radio("Space", ["latent", "parameters"] if has_latents else ["parameters"], horizontal=True,
                              key="lat_fidelity_space",
                              help="latent: standardized autoencoder latents; parameters: z-scored per coordinate")
        frame = tables.fidelity_frame(card, "latent" if space_name == "latent" else "param")
        st.dataframe(frame, width="stretch", key="lat_fidelity", column_config={
            c: st.column_config.NumberColumn(format="%.3f") for c in frame.columns})
        st.caption("Every group against the training zoo, each metric beside what two random halves of the zoo score "
                   "against each other (a perfect generator's floor). Precision: share of a group's models inside the "
                   "zoo's k-nearest-neighbour balls (realism). Recall: share of the zoo inside the group's balls "
                   "(coverage). A collapsed generator keeps precision and loses recall and spread.")
