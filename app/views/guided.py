"""Guided: ask a generator conditioned on accuracy for models of a chosen accuracy, and see what
comes out (classifier-free guidance; pdiff.guide). Each request is sampled and measured once and kept
in the run folder, so asking again (or coming back to the page) is a file read."""
import streamlit as st

from app import data, figures, ui
from pdiff.core.artifacts import AUTOENCODER, BASE, DENOISER, ZOO
from pdiff.core.rundir import RunDir
from pdiff.core.runtime import resolve_device
from pdiff.guide import Guide, GuidedRequest, guided_bytes, guided_samples
from pdiff.judge import statements
from pdiff.judge.glossary import define_metric
from pdiff.judge.verdict import BEYOND_ABOVE, COPIES_BELOW, FRESH_FROM, zone

st.title("Guided generation")
ui.intro("A run made with `diffusion.condition=accuracy` (the *mnist1d-guided* preset) trains its denoiser with each "
         "checkpoint's validation accuracy as a condition, dropped from a tenth of the batches. Sampling then mixes "
         "the conditional and unconditional predictions (classifier-free guidance): scale 0 ignores the request, 1 "
         "follows it, higher pushes harder. Ask for an accuracy and see what the generated models score on the test "
         "split, how new they are, and where they sit on the ruler between copies and fresh training.")


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
        zoo_row = data.scorecard(run)["zoo"]
        c1, c2, c3, c4 = st.columns([3, 3, 1, 1])
        requested = c1.slider("Requested accuracy (%)", 0.0, 100.0, round(zoo_row["median"], 1), 0.5,
                              key="guided_target", help="A validation accuracy: what the denoiser was conditioned on.")
        scale = c2.slider("Guidance scale", 0.0, 6.0, 2.0, 0.5, key="guided_scale",
                          help="0: unconditional sampling (the request is ignored); 1: conditional; above 1: guided "
                               "further towards the request")
        models = c3.number_input("Models", 5, 500, 50, 5, key="guided_models")
        seed = c4.number_input("Seed", 0, 10_000, 0, 1, key="guided_seed")
        request = GuidedRequest(float(requested), float(scale), int(models), int(seed))
        stamps = tuple(data.stamp(run.file(n)) for n in (BASE, ZOO, AUTOENCODER, DENOISER))
        with st.spinner("Sampling and evaluating (once per request: the answer is kept in the run folder) ..."):
            result, cached = guided_samples(run, request, lambda: _guide(str(run.path), stamps))
        summary, tensors = result.summary, result.tensors
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("Achieved median", f"{summary['achieved_median']:.2f}%",
                  **ui.delta(summary["achieved_median"] - requested, 2, "vs requested"),
                  help="Test accuracy, which played no part in the conditioning.")
        m2.metric("Interquartile range", f"{summary['achieved_q25']:.2f}-{summary['achieved_q75']:.2f}%")
        m3.metric("Novelty (median)", f"{summary['novelty_median']:.3f}",
                  help=define_metric("novelty") + f". Median max IoU to the zoo: {summary['max_iou_median']:.3f}.")
        m4.metric("Zoo range (validation)", "{:.1f}-{:.1f}%".format(*summary["zoo_val_range"]))
        kind, text = statements.guided_notice(requested, scale, tuple(summary["zoo_val_range"]),
                                              summary["achieved_median"])
        if kind == "info":
            st.info(text, icon=":material/info:")
        elif kind == "warning":
            st.warning(text, icon=":material/warning:")
        places = summary.get("ruler") or {}
        placed = {m: p for m, p in places.items() if p.get("position") is not None}
        if placed:
            words = "; ".join(f"{m}: {p['position']:.2f}" + (" [{:.2f}, {:.2f}]".format(*p["ci"]) if p.get("ci") else "")
                              + f" ({zone(p['position'])})" for m, p in placed.items())
            st.markdown(f"**On the ruler** (0 = copies of the training checkpoints, 1 = fresh SGD): {words}.")
            st.plotly_chart(figures.ruler_figure({"guided": placed}, list(placed), (COPIES_BELOW, FRESH_FROM, BEYOND_ABOVE),
                                                 ["guided"],
                                                 leader="guided"), key="guided_ruler")
        else:
            st.caption("No ruler for these models: the run's analysis is not current, it has no copies or no fresh "
                       "SGD run to place them between, or neither measure tells copies from fresh training here.")
        st.plotly_chart(figures.guided_distribution(zoo, tensors["accuracy"].numpy(), requested), key="guided_hist")
        st.caption("Grey: the zoo's checkpoints (test accuracy). Colour: the generated models. The dashed line is the "
                   "request." + (" Kept from an earlier request with these settings." if cached else
                                 f" Sampled and measured in {summary['seconds']:.1f} s; kept in the run folder."))
        st.download_button("Download these models", data=guided_bytes(result, run.name),
                           file_name=f"{run.name}-guided-{requested:g}-{scale:g}-{int(models)}-{int(seed)}.safetensors",
                           mime="application/octet-stream", key="guided_download", icon=":material/download:",
                           on_click="ignore", help="safetensors: the parameter vectors (N × D), their test accuracies "
                                                   "and latents; the request and these numbers as JSON metadata.")
        st.subheader("Where the guided models sit among the zoo's latents")
        st.plotly_chart(figures.guided_map(tensors["zoo_xy"].numpy(), zoo, tensors["latent_xy"].numpy(),
                                           tensors["accuracy"].numpy()), key="guided_map")
        st.caption("PCA of the standardized autoencoder latents of the zoo (coloured by test accuracy) with the guided "
                   "models' sampled latents (stars). A zoo collected from chance to trained is one path; guidance "
                   "picks a place on it.")
