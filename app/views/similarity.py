"""Similarity: did the generator make new models or copy the zoo?"""
import numpy as np
import streamlit as st

from app import data, figures, focus, neighbours, ui
from pdiff.judge.glossary import define_metric

st.title("Similarity")
ui.intro("Two models are similar when they get the same test samples wrong: their similarity is the IoU of their "
         "sets of wrong predictions (1 = identical mistakes). In the memorization plot good new models sit high and "
         "left, copies of training checkpoints at the right near IoU 1. Distances in parameter space tell a "
         "different story only in appearance: the zoo is one SGD run whose neighbouring checkpoints are a small step "
         "apart, so a generated model can be many such steps away and still make the same mistakes.")

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
            ci = card[g].get("max_iou_median_ci")
            col.metric(f"{g}: median max IoU to zoo", ui.number(card[g]["max_iou_median"], ".3f"),
                       help=define_metric("max_iou") + (f". 95% interval {ci[0]:.3f} – {ci[1]:.3f}." if ci else
                                                        ". A dash for a zoo of one checkpoint: no other zoo model."))
        if "generated" in card:
            gen_nn, zoo_nn = card["generated"]["nn_distance_median"], card["zoo"]["nn_distance_median"]
            cols[2].metric("generated: median NN distance", ui.number(gen_nn, ".3f"),
                           **ui.delta(None if zoo_nn is None or gen_nn is None else gen_nn - zoo_nn, 3,
                                      "vs zoo → zoo"), help=define_metric("nn_distance"))

        st.subheader("Accuracy vs max IoU to the zoo (the memorization plot)")
        m1, m2 = st.columns([3, 1])
        default = [g for g in groups if g in ("zoo", "generated", "heldout", "fresh", "copies")]
        scatter_groups = m1.multiselect("Groups", groups, default=default, key="sim_scatter_groups")
        mode = m2.radio("Show", ["models", "density"], horizontal=True, key="sim_scatter_mode",
                        help="models: one marker per distinct point, its size growing with how many models sit there "
                             "(accuracy and IoU move in steps, so many models share a point); density: contours of "
                             "each group, for large groups, with the group's median as a diamond")
        zoo = accuracy.get("zoo")
        zoo_range = (float(zoo.min()), float(zoo.max())) if zoo is not None else None
        resolution = data.test_resolution(run)
        focus.sync_chart("sim_scatter", groups, sizes)  # a click or box in the chart
        model = focus.pickers("sim", groups, sizes, accuracy, max_iou,
                              focus.current(groups, sizes, neighbours.default_model(max_iou, accuracy)))
        selected = focus.selection(model)
        st.plotly_chart(figures.memorization_scatter({g: max_iou[g] for g in scatter_groups},
                                                     {g: accuracy[g] for g in scatter_groups}, zoo_range,
                                                     "density" if mode == "density" else "points",
                                                     resolution[1] if resolution else None, selected),
                        key="sim_scatter", on_select="rerun", selection_mode=figures.SELECTION_MODES)
        step = (f" One test sample is {resolution[1]:.3g} points of accuracy, so models stack on a few accuracies: "
                f"a larger marker holds more models (hover lists them)." if resolution else "")
        st.caption("The zoo's own points use the max IoU to the *other* zoo models. Baselines are drawn as rings "
                   "under the zoo and the generated models." + step + " Click a marker (or box/lasso several) to "
                   "see its models below; the gold ring marks the model in focus (until something is picked, the "
                   "generated model most like a training checkpoint), shared with the Latent space page.")
        neighbours.selection_table(run, selected, "sim")
        neighbours.focus_panel(run, model, "sim", show_overlap=True)

        st.subheader("Nearest-neighbour distance in parameter space")
        nn_groups = st.multiselect("Groups", groups, default=[g for g in ("generated", "zoo") if g in groups],
                                   key="sim_nn_groups")
        st.plotly_chart(figures.nn_histograms({g: nn[g] for g in nn_groups}), key="sim_nn")
        st.caption("generated -> zoo: L2 distance from each generated model to the closest zoo model. "
                   "zoo -> zoo: from each zoo model to the closest *other* zoo model, the spacing of the training set "
                   "(consecutive SGD checkpoints, hence small). Being further than that spacing does not make a model "
                   "new: what decides it is whether it errs like a checkpoint (the plot above).")

        st.subheader("IoU of wrong predictions, ordered by group")
        c1, c2 = st.columns([3, 1])
        chosen = c1.multiselect("Groups", groups, key="sim_groups",
                                default=[g for g in groups if g in ("zoo", "fresh", "generated", "copies")] or groups,
                                help="By default the zoo, the generated models and the ruler's two ends; every group "
                                     "added makes the matrix larger and slower to draw.")
        cap = c2.slider("Models per group (at most)", 5, max(5, max(sizes)), min(40, max(5, max(sizes))),
                        key="sim_cap", help="The first models of each group; fewer cells draw faster.")
        offsets = dict(zip(groups, np.cumsum([0, *sizes[:-1]]).tolist()))
        rows = [np.arange(offsets[g], offsets[g] + min(cap, sizes[groups.index(g)])) for g in chosen]
        if rows:
            cells = np.concatenate(rows)
            st.plotly_chart(figures.iou_heatmap(tensors["iou"][np.ix_(cells, cells)], chosen, [len(r) for r in rows]),
                            key="sim_heatmap")
            st.caption(f"{define_metric('iou_within').capitalize()}: the average of a diagonal block.")
