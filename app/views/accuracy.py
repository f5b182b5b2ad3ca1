"""Accuracy: the distribution of test accuracy per group, with intervals."""
import streamlit as st

from app import data, figures, tables, ui
from pdiff.judge.glossary import define_group, define_metric

st.title("Accuracy")
ui.intro("Each shape is one group of models: the trained zoo, the generated models and the baselines. "
         "The shaded band is the zoo's range (worst to best checkpoint): a generator worth having puts its "
         "models inside or above it. The table gives best / mean / median with 95% bootstrap intervals, so two "
         "groups differ only where their intervals do not overlap.")

run = ui.selected_run()
with ui.guard(run):
    if ui.need(run, "evaluate", "the accuracy distributions"):
        accuracy = data.accuracy(run)
        groups = list(accuracy)
        left, right = st.columns([3, 1])
        kind = right.radio("Plot", ["violin", "histogram"], horizontal=True, key="acc_kind")
        default = [g for g in groups if g in ("zoo", "heldout", "generated")] + [
            g for g in groups if g not in ("zoo", "heldout", "generated")][:4]
        chosen = left.multiselect("Groups", groups, default=default, key="acc_groups")
        zoo = accuracy.get("zoo")
        zoo_range = (float(zoo.min()), float(zoo.max())) if zoo is not None and len(zoo) else None
        resolution = data.test_resolution(run)
        st.plotly_chart(figures.accuracy_distributions({g: accuracy[g] for g in chosen}, kind, zoo_range,
                                                       resolution[1] if resolution else None), key="acc_chart")
        if resolution:
            st.caption(f"{resolution[0]} test samples: one sample is {resolution[1]:.3g} points of accuracy, so "
                       f"accuracies fall on a grid and many models share a value. Histograms show each group's share "
                       f"of its models per bin, on bins centred on that grid.")
        card = data.scorecard(run)
        table = tables.scorecard_frame(card, tables.ACCURACY, [g for g in groups if g in card])
        st.dataframe(table, width="stretch", key="acc_table", height=38 + 35 * len(table),
                     column_config={c: st.column_config.NumberColumn(format="%.2f", help=define_metric(c))
                                    for c in ("best", "mean", "median", "min", "std")}
                     | {c: st.column_config.TextColumn(c, help=define_metric("ci"))
                        for c in ("mean 95% CI", "median 95% CI")})
        with st.expander("What each group is"):
            st.dataframe([{"group": g, "what it is": define_group(g)} for g in groups], hide_index=True,
                         width="stretch", key="acc_groups_help")
        if not data.done(run, "analyse"):
            st.caption("The 95% intervals appear when the analyse stage has run.")
