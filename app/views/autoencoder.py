"""Autoencoder: what the parameter autoencoder keeps of a model, shown on one checkpoint before and
after encoding and decoding, with the accuracy of each."""
import numpy as np
import streamlit as st

from app import data, figures, ui
from pdiff.judge import statements, teaching

st.title("Autoencoder")
ui.intro("p-diff does not diffuse parameters directly. An autoencoder compresses each checkpoint's parameters "
         "(normalized over the zoo: by default centred on the zoo's mean) into a short latent code; the diffusion model learns to generate codes, and the "
         "decoder turns every code back into parameters. So the generator can only make what the decoder can "
         "output. Below: one training checkpoint before and after the autoencoder, and what that costs in accuracy.")

run = ui.selected_run()
ui.require_generator(run, "the Autoencoder page")
with ui.guard(run):
    if ui.need(run, "autoencoder", "the autoencoder"):
        config = data.config(run).autoencoder
        record = {s["name"]: s for s in data.stages(run)}["autoencoder"]
        dim = len(data.params(run)["zoo"][0])
        m1, m2, m3 = st.columns(3)
        m1.metric("parameters -> latent", f"{dim} -> {config.latent_dim}",
                  help="Numbers per model before and after the encoder.")
        mse = (record.get("metrics") or {}).get("reconstruction_mse")
        if mse is not None:
            m2.metric("reconstruction MSE (normalized)", f"{mse:.3g}",
                      help="Mean squared error between a checkpoint's normalized parameters and their reconstruction, "
                           "over the training checkpoints.")
        m3.metric("training noise (input / latent)", f"{config.input_noise:g} / {config.latent_noise:g}",
                  help="Noise added to the parameters and to the latent code while training (p-diff's augmentation): "
                       "it makes the decoder tolerant of codes a little off those of the zoo.")
        curves = data.losses(run)
        if "autoencoder" in curves:
            st.plotly_chart(figures.loss_curves({"autoencoder training loss (MSE)": curves["autoencoder"]}, 240),
                            key="ae_loss")

st.subheader("One checkpoint through the autoencoder")
with ui.guard(run):
    if ui.need(run, "evaluate", "the accuracy before and after the autoencoder"):
        accuracy = data.accuracy(run)
        params = data.params(run)
        if "ae-reconstruction" not in accuracy or "ae-reconstruction" not in params:
            st.info("This run has no autoencoder reconstructions (baselines.enabled=false).")
        else:
            zoo_acc, rec_acc = accuracy["zoo"], accuracy["ae-reconstruction"]
            c1, c2 = st.columns([1, 3])
            index = int(c1.number_input("Training checkpoint", 0, len(zoo_acc) - 1, 0, key="ae_index",
                                        help="Index in the zoo of training checkpoints (SGD order)."))
            numbers = teaching.reconstruction(zoo_acc, rec_acc, index)
            c2.markdown(f"zoo #{index}: **{numbers.before:.2f}%** before, **{numbers.after:.2f}%** after the "
                        f"autoencoder ({statements.signed(numbers.change, 2)} points). Over all training checkpoints: "
                        f"median {numbers.zoo_median:.2f}% before, {numbers.reconstructed_median:.2f}% after.")
            before, after = params["zoo"][index], params["ae-reconstruction"][index]
            normalized = data.normalized(run, np.stack([before, after]))
            titles = [f"before: zoo #{index} ({numbers.before:.2f}%)", f"after ({numbers.after:.2f}%)",
                      "after − before"]
            st.plotly_chart(figures.weight_heatmaps(np.stack([*normalized, normalized[1] - normalized[0]]), titles,
                                                    [False, False, True]), key="ae_heatmaps")
            st.caption("Before and after share one colour scale (the bar); the difference has its own, written in its "
                       "title: it is small, which is the point.")
            st.plotly_chart(figures.reconstruction_scatter(normalized[0], normalized[1], data.layout_segments(run)),
                            key="ae_scatter")
            st.caption("Values are normalized as the autoencoder sees them (by default: minus the zoo's mean, over one "
                       "spread). Points on the diagonal are reconstructed exactly; the spread around it is what the "
                       "autoencoder loses. Parameters that barely vary across the zoo come back as the zoo's mean.")
            noise = data.scorecard(run).get("decoder-only")
            if noise is not None:
                st.markdown(statements.decoded_noise(noise["median"], numbers.zoo_median, noise.get("good")))
