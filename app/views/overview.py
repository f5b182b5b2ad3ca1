"""Overview: the pipeline with each stage's status and time, the headline table, the config."""
import streamlit as st

from app import data, tables, ui
from pdiff.config import RunConfig

st.title("Overview")
ui.intro("A run trains a zoo of classifier checkpoints, compresses their parameters with an autoencoder, learns "
         "to generate new latents with diffusion, then samples, evaluates and analyses new models. Each box is one "
         "stage, coloured by its status and labelled with its time. The table compares the trained zoo with the "
         "generated models and with baselines that any generator should beat.")

run = ui.selected_run()
ui.pipeline(run)

st.subheader("Headline: zoo vs generated vs baselines")
with ui.guard(run):
    if ui.need(run, "evaluate", "the headline table"):
        card = data.scorecard(run)
        if "zoo" in card and "generated" in card:
            zoo, gen = card["zoo"], card["generated"]
            cols = st.columns(4)
            cols[0].metric("Zoo median accuracy", f"{zoo['median']:.2f}%")
            cols[1].metric("Generated median accuracy", f"{gen['median']:.2f}%",
                           delta=f"{gen['median'] - zoo['median']:+.2f} vs zoo")
            cols[2].metric("Generated best", f"{gen['best']:.2f}%", delta=f"{gen['best'] - zoo['best']:+.2f} vs zoo")
            if "novelty_median" in gen:
                cols[3].metric("Generated novelty (median)", f"{gen['novelty_median']:.3f}",
                               help="1 - max IoU of wrong predictions to any zoo model "
                                    "(0 = the same mistakes as some zoo model)")
        st.dataframe(tables.scorecard_frame(card), width="stretch", key="headline", column_config={
            c: st.column_config.NumberColumn(format="%.3f" if "IoU" in c or "novelty" in c or "NN" in c else "%.2f")
            for c in ("best", "mean", "median", "min", "std", "max IoU (median)", "novelty (median)",
                      "NN distance (median)", "ensemble gain")})
        st.caption("Accuracy in percent on the test split. max IoU: median over a group's models of the largest IoU "
                   "of its wrong-prediction set with any zoo model (memorization). NN distance: L2 to the nearest "
                   "zoo parameter vector. Ensemble gain: the group's ensemble accuracy minus its mean accuracy.")

st.subheader("Config")
with ui.guard(run):
    manifest = data.manifest(run)
    config = data.config_dict(run)
    show_all = st.toggle("Show every key (otherwise only keys that differ from the defaults)", key="config_all")
    from dataclasses import asdict

    frame = tables.config_frame(config, asdict(RunConfig()))
    shown = frame if show_all else frame[frame["changed"]]
    if shown.empty:
        st.caption("The run uses the default config (the `digits` preset).")
    else:
        st.dataframe(shown, hide_index=True, width="stretch", key="config_table")
    versions = manifest.get("versions", {})
    st.caption(f"seed {manifest.get('seed')} · device {manifest.get('device', '?')} · "
               + " · ".join(f"{k} {v}" for k, v in versions.items())
               + f" · `{run.path}`")
