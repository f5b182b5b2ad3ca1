"""Similarity: did the generator make new models or copy the zoo?"""
import numpy as np
import streamlit as st

from app import data, figures, ui

st.title("Similarity")
ui.intro("Two models are similar when they get the same test samples wrong: their similarity is the IoU of their "
         "sets of wrong predictions (1 = identical mistakes). Good new models sit high and left in the scatter, "
         "copies of training checkpoints at the right near IoU 1. The histograms compare each model's parameter "
         "distance to its nearest zoo model: generated models far closer to the zoo than zoo models are to each "
         "other are copies.")

run = ui.selected_run()
with ui.guard(run):
    if ui.need(run, "analyse", "the similarity analysis"):
        tensors, meta = data.analysis(run)
        groups, sizes = meta["groups"], meta["sizes"]
        card = data.scorecard(run)
        accuracy = data.accuracy(run)
        max_iou = data.group_arrays(run, "max_iou")
        nn = data.group_arrays(run, "nn_distance")

        cols = st.columns(3)
        for col, g in zip(cols, [g for g in ("zoo", "generated") if g in card]):
            col.metric(f"{g}: median max IoU to zoo", ui.number(card[g]["max_iou_median"], ".3f"),
                       help="A dash for a zoo of one checkpoint: it has no other zoo model to compare with.")
        if "generated" in card:
            gen_nn, zoo_nn = card["generated"]["nn_distance_median"], card["zoo"]["nn_distance_median"]
            cols[2].metric("generated: median NN distance", ui.number(gen_nn, ".3f"),
                           delta=None if zoo_nn is None else f"{gen_nn - zoo_nn:+.3f} vs zoo->zoo", delta_color="off")

        st.subheader("IoU of wrong predictions, ordered by group")
        c1, c2 = st.columns([3, 1])
        chosen = c1.multiselect("Groups", groups, default=groups, key="sim_groups")
        cap = c2.slider("Models per group (at most)", 5, max(5, max(sizes)), min(40, max(5, max(sizes))),
                        key="sim_cap", help="The first models of each group; fewer cells draw faster.")
        offsets = dict(zip(groups, np.cumsum([0, *sizes[:-1]]).tolist()))
        rows = [np.arange(offsets[g], offsets[g] + min(cap, sizes[groups.index(g)])) for g in chosen]
        if rows:
            index = np.concatenate(rows)
            st.plotly_chart(figures.iou_heatmap(tensors["iou"][np.ix_(index, index)], chosen, [len(r) for r in rows]),
                            key="sim_heatmap")

        st.subheader("Accuracy vs max IoU to the zoo (the memorization plot)")
        default = [g for g in groups if g in ("zoo", "generated", "heldout")] + [
            g for g in groups if g.startswith("noise-")][:2]
        scatter_groups = st.multiselect("Groups", groups, default=default, key="sim_scatter_groups")
        zoo = accuracy.get("zoo")
        zoo_range = (float(zoo.min()), float(zoo.max())) if zoo is not None else None
        st.plotly_chart(figures.memorization_scatter({g: max_iou[g] for g in scatter_groups},
                                                     {g: accuracy[g] for g in scatter_groups}, zoo_range),
                        key="sim_scatter")
        st.caption("The zoo's own points use the max IoU to the *other* zoo models.")

        st.subheader("Nearest-neighbour distance in parameter space")
        nn_groups = st.multiselect("Groups", groups, default=[g for g in ("generated", "zoo") if g in groups],
                                   key="sim_nn_groups")
        st.plotly_chart(figures.nn_histograms({g: nn[g] for g in nn_groups}), key="sim_nn")
        st.caption("generated -> zoo: L2 distance from each generated model to the closest zoo model. "
                   "zoo -> zoo: from each zoo model to the closest *other* zoo model, the spacing of the training set.")
