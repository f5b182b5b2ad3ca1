"""Guided: ask a generator conditioned on accuracy for models of a chosen accuracy, and see what
comes out (classifier-free guidance; pdiff.guide)."""
import numpy as np
import streamlit as st

from app import data, figures, ui
from pdiff.core.artifacts import AUTOENCODER, BASE, DENOISER, ZOO
from pdiff.core.rundir import RunDir
from pdiff.core.runtime import resolve_device
from pdiff.guide import Guide

st.title("Guided generation")
ui.intro("A run made with `diffusion.condition=accuracy` (the *mnist1d-guided* preset) trains its denoiser with each "
         "checkpoint's test accuracy as a condition, dropped from a tenth of the batches. Sampling then mixes the "
         "conditional and unconditional predictions (classifier-free guidance): scale 0 ignores the request, 1 "
         "follows it, higher pushes harder. Ask for an accuracy and see what the generated models score.")


@st.cache_resource(show_spinner="Loading the generator ...", max_entries=4)
def _guide(run_path: str, key: tuple) -> Guide:
    """The run's generator, evaluator and zoo, loaded once (key: the files' stamps)."""
    run = RunDir(run_path)
    config = data.config(run)
    return Guide(run, config, resolve_device(config.device))


run = ui.selected_run()
ui.require_generator(run, "guided generation")
with ui.guard(run):
    config = data.config(run)
    if config.diffusion.condition != "accuracy":
        st.info("This run's denoiser is unconditional, so it cannot be asked for an accuracy. Start a run with the "
                "**mnist1d-guided** preset on the New run page (about as long as the default run), or on the command "
                "line: `python -m pdiff run --preset mnist1d-guided`.", icon=":material/info:")
    elif ui.need(run, "evaluate", "guided generation"):
        zoo = data.accuracy(run)["zoo"]
        lo, hi, mid = float(zoo.min()), float(zoo.max()), float(np.median(zoo))
        c1, c2, c3 = st.columns([2, 2, 1])
        requested = c1.slider("Requested test accuracy (%)", 0.0, 100.0, round(mid, 1), 0.5, key="guided_target",
                              help=f"The zoo spans {lo:.1f}-{hi:.1f} %.")
        scale = c2.slider("Guidance scale", 0.0, 6.0, 2.0, 0.5, key="guided_scale",
                          help="0: unconditional sampling (the request is ignored); 1: conditional; above 1: guided "
                               "further towards the request")
        models = c3.number_input("Models", 5, 500, 50, 5, key="guided_models")
        guide = _guide(str(run.path), tuple(data.stamp(run.file(n)) for n in (BASE, ZOO, AUTOENCODER, DENOISER)))
        with st.spinner("Sampling and evaluating ..."):
            samples, evaluation = guide.sample(requested, int(models), scale)
        achieved = evaluation.accuracy.numpy()
        median = float(np.median(achieved))
        q25, q75 = np.percentile(achieved, [25, 75])
        m1, m2, m3 = st.columns(3)
        m1.metric("Achieved median", f"{median:.2f}%", delta=f"{median - requested:+.2f} vs requested",
                  delta_color="off")
        m2.metric("Interquartile range", f"{q25:.2f}-{q75:.2f}%")
        m3.metric("Zoo range", f"{lo:.1f}-{hi:.1f}%")
        if not lo <= requested <= hi:
            st.warning(f"{requested:.1f} % lies outside the zoo's range ({lo:.1f}-{hi:.1f} %). The generator learned "
                       f"accuracies only from the zoo: above its best checkpoint it does not extrapolate, it returns "
                       f"models near the zoo's edge (here {median:.1f} %).", icon=":material/warning:")
        st.plotly_chart(figures.guided_distribution(zoo, achieved, requested), key="guided_hist")
        st.caption("Grey: the zoo's checkpoints. Colour: the generated models. The dashed line is the request.")
        st.subheader("Where the guided models sit among the zoo's latents")
        zoo_xy, guided_xy = guide.latent_map(samples.latents)
        st.plotly_chart(figures.guided_map(zoo_xy, zoo, guided_xy, achieved), key="guided_map")
        st.caption("PCA of the standardized autoencoder latents of the zoo (coloured by accuracy) with the guided "
                   "models' sampled latents (stars). A zoo collected from chance to trained is one path; guidance "
                   "picks a place on it.")
