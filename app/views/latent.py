"""Latent space: every model in one 2D map; click (or box/lasso) models to see them beside their
nearest zoo models; where in the zoo the generated models land."""
import streamlit as st

from app import data, figures, neighbours, tables, ui

st.title("Latent space")
ui.intro("Every dot is one model, placed so that models with similar parameters (or autoencoder latents) sit close "
         "together: UMAP keeps neighbourhoods, PCA keeps straight-line distances. Generated models lying on top of "
         "zoo models may be copies; ones spread between them are new. **Click a dot** to see that model beside "
         "its three nearest zoo models; pick *Box select* or *Lasso select* in the chart's toolbar to select "
         "several.")

run = ui.selected_run()
with ui.guard(run):
    if ui.need(run, "analyse", "the projections"):
        tensors, meta = data.analysis(run)
        groups, sizes = meta["groups"], meta["sizes"]
        accuracy = data.accuracy(run)
        max_iou = data.group_arrays(run, "max_iou")
        has_umap = any(k.endswith("_umap") for k in tensors)
        has_latents = "zoo.latent_pca" in tensors  # a run without a generator has no autoencoder latents
        labels = data.zoo_labels(run)

        c1, c2, c3, c4 = st.columns([1, 1, 1, 3])
        method = c1.radio("Projection", ["UMAP", "PCA"] if has_umap else ["PCA"], key="lat_method")
        space = c2.radio("Space", ["parameters", "latents"] if has_latents else ["parameters"], key="lat_space",
                         help="parameters: the flat parameter vectors (z-scored per coordinate; neuron-aligned when "
                              "the zoo mixes runs); latents: the autoencoder's codes, where the diffusion model works")
        colour = c3.radio("Colour by", ["group", "accuracy", *labels], key="lat_colour",
                          help="group, test accuracy, or what is known about each checkpoint (an imported zoo's "
                               "metadata: run, step and its labels; a collected zoo's step)")
        shown = c4.multiselect("Groups", groups, default=groups, key="lat_groups")
        if not has_umap:
            st.caption("This run has no UMAP (analysis.umap=false); showing PCA.")
        if not has_latents:
            st.caption("This run has no generator, so no autoencoder latents: the map shows the parameters.")
        suffix = f"{'params' if space == 'parameters' else 'latent'}_{method.lower()}"
        points = {g: tensors[f"{g}.{suffix}"] for g in shown}

        neighbours.sync_selection("lat_chart", "lat", groups, sizes)  # a click or box in the chart
        group, index = neighbours.pickers("lat", groups, sizes, accuracy, max_iou)
        selected = neighbours.selected_models("lat", (group, index))
        nearest = tensors[f"{group}.neighbours"][index].tolist()

        fig = figures.projection_scatter(points, {g: accuracy[g] for g in shown}, max_iou, colour,
                                         selected=(group, index), neighbours=nearest,
                                         axis_title=f"{method} ({space})", labels=labels.get(colour))
        st.plotly_chart(fig, key="lat_chart", on_select="rerun", selection_mode=figures.SELECTION_MODES)
        neighbours.selection_table(run, selected, "lat")
        neighbours.focus_panel(run, group, index, "lat")

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
            gen = card.get("generated", {})
            ratio = gen.get("latent_spread_ratio")
            st.caption("Each line is the spread (standard deviation) of one latent dimension over a group's models. "
                       "The generated models' latents are the ones the diffusion sampled; the others are what the "
                       "encoder makes of their parameters."
                       + (f" Median ratio generated / training: {ratio:.2f} (1 = the same spread)." if ratio else ""))
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
