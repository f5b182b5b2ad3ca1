"""Denoising: what the reverse process really does here, step by step, and the forward noising it
learned to undo."""
import numpy as np
import streamlit as st

from app import data, figures, ui
from pdiff.judge import statements, teaching

st.title("Denoising")
ui.intro("Sampling starts from pure noise in the latent space and removes a little at each step. At every step the "
         "denoiser also predicts the clean latent (the x0-prediction); decoding it gives a classifier. Move the "
         "slider from left (t = T, all noise) to right (t = 0, the final sample).")



run = ui.selected_run()
ui.require_generator(run, "the Denoising page")
with ui.guard(run):
    if ui.need(run, "evaluate", "the sampling trajectory") and ui.need(run, "analyse", "the sampling trajectory"):
        evaluation, _ = data.load(run, data.EVALUATION)
        tensors, meta = data.analysis(run)
        if "trajectory.accuracy" not in evaluation or "trajectory.params_pca" not in tensors:
            st.info("This run kept no sampling trajectory (sample.trajectory_models=0).")
        else:
            steps = evaluation["trajectory.steps"]  # (P,), from T-1 down to 0
            acc = evaluation["trajectory.accuracy"]  # (P, M)
            path = tensors["trajectory.params_pca"]  # (P, M, 2)
            accuracy = data.accuracy(run)
            zoo_acc = accuracy["zoo"]
            noise_acc = accuracy.get("decoder-only")
            resolution = data.test_resolution(run)
            summary = teaching.trajectory(steps, acc, zoo_acc, noise_acc, resolution[0] if resolution else None)
            st.markdown(statements.denoising_story(summary.t_max, summary.first, summary.last, summary.zoo,
                                                   summary.noise, summary.step))

            c1, c2 = st.columns([3, 1])
            t = c1.select_slider("Sampling step t (left: pure noise, right: final sample)", options=steps.tolist(),
                                 value=int(steps[0]), key="den_step")
            sample = c2.selectbox("Tracked sample", list(range(acc.shape[1])), key="den_sample",
                                  format_func=lambda m: f"generated #{m}")
            current = teaching.step_index(steps, t)
            m1, m2, m3, m4 = st.columns(4)
            m1.metric(f"generated #{sample}: accuracy of x0 at t={t}", f"{acc[current, sample]:.2f}%")
            m2.metric(f"mean accuracy of x0 at t={t}", f"{teaching.mean_at(acc, current):.2f}%")
            m3.metric("final mean accuracy (t=0)", f"{summary.last:.2f}%")
            if summary.noise is not None:
                m4.metric("decoding pure noise (median)", f"{summary.noise:.2f}%",
                          help="The decoder-only baseline: random standard-normal latents decoded without diffusion.")
            else:
                m4.metric("zoo median accuracy", f"{summary.zoo:.2f}%")

            trajectory, _ = data.trajectory(run)  # (P, M, D) decoded x0-predictions
            vectors = np.stack([trajectory[current, sample], trajectory[-1, sample]])
            titles = [f"x0-prediction at t={t}: {acc[current, sample]:.2f}%",
                      f"final sample (t=0): {acc[-1, sample]:.2f}%"]
            st.plotly_chart(figures.weight_heatmaps(data.normalized(run, vectors), titles, [True, True]),
                            key="den_picture")
            st.caption(f"generated #{sample}'s decoded parameters (normalized as the autoencoder sees them: 0 is the "
                       f"zoo's mean) at the chosen step beside where it ends. Each picture has its own colour scale, "
                       f"written in its title: near t = {summary.t_max} the x0-prediction is close to the zoo's mean "
                       f"model, so its values are small.")

            references = {"zoo median": summary.zoo}
            if summary.noise is not None:
                references["decoding pure noise (median)"] = summary.noise
            zoo_range = (float(zoo_acc.min()), float(zoo_acc.max()))
            left, right = st.columns(2)
            left.plotly_chart(figures.trajectory_accuracy(steps, acc, current, zoo_range, references), key="den_acc")
            background = {g: tensors[f"{g}.params_pca"] for g in ("zoo", "generated") if f"{g}.params_pca" in tensors}
            right.plotly_chart(figures.trajectory_projection(background, path, current, steps), key="den_path")
            st.caption(f"{acc.shape[1]} tracked samples (the first generated models), {len(steps)} recorded steps. "
                       "Right: the parameter PCA of the Latent space page; each line is one sample's x0-prediction.")

st.subheader("The forward process: noising one parameter vector")
ui.intro("Training teaches the denoiser to undo this: x_t = a_t x0 + s_t eps, with a_t = sqrt(abar_t) and "
         "s_t = sqrt(1 - abar_t) for DDPM (a_t = 1 - t, s_t = t on flow matching's straight path), and the noise eps "
         "fixed here so only t changes. p-diff noises the autoencoder's latent code; this shows the same process on a "
         "zoo model's normalized parameters, which are easier to see. The signal-to-noise ratio (a_t / s_t)^2 falls "
         "from thousands to almost zero: at large t nothing of x0 is left.")
with ui.guard(run):
    if ui.need(run, "autoencoder", "the forward noising"):
        cfg = data.config(run).diffusion
        zoo_size = len(data.params(run)["zoo"])
        c1, c2 = st.columns([1, 3])
        model = c1.number_input("Zoo model", 0, zoo_size - 1, 0, key="den_model")
        t = c2.slider("t", 0, cfg.timesteps - 1, min(cfg.timesteps - 1, cfg.timesteps // 10), key="den_t")
        noised = data.forward_noising(run, int(model), int(t))
        snr = noised["snr"]
        m1, m2, m3 = st.columns(3)
        m1.metric("SNR at t", f"{snr[t]:.3g}")
        m2.metric("signal weight a_t", f"{noised['signal'][t]:.3f}")
        m3.metric("noise weight s_t", f"{noised['noise'][t]:.3f}")
        st.plotly_chart(figures.noising_figure(noised["x0"], noised["xt"], int(t), snr, data.layout_segments(run)),
                        key="den_noise")
