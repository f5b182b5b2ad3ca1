"""Training dynamics: where the generated models sit on the ruler along the denoiser's training,
scrubbed snapshot by snapshot, and the onset of copying across zoo sizes when the runs exist."""

import math

import streamlit as st

from app import data, figures, ui
from pdiff.judge import dynamics, verdict
from pdiff.judge.glossary import define_metric

st.title("Training dynamics")
ui.intro("Diffusion models of images first learn to generate and only later, with long training, start to copy "
         "their training set, and the later the larger it is (arXiv 2505.17638). The diffusion stage keeps the "
         "denoiser at a few log-spaced training steps (`diffusion.snapshots`); the dynamics stage samples models from "
         "each and judges them like the final generator: their place on the ruler between copies (0) and fresh SGD "
         "(1), their accuracy, and how well they cover the training latents. Move the slider along training.")

run = ui.selected_run()
ui.require_generator(run, "the Training dynamics page")
with ui.guard(run):
    if ui.need(run, "dynamics", "the training dynamics"):
        records = data.dynamics(run)
        if not records:
            st.info("This run kept no snapshots (diffusion.snapshots=0); set it above 0 to see training unfold.")
        else:
            steps = [r["step"] for r in records]
            step = st.select_slider("Denoiser training step", options=steps, value=steps[-1], key="train_step")
            record = records[steps.index(step)]
            m1, m2, m3, m4 = st.columns(4)
            position = record.get("position")
            m1.metric("answer at this step", record.get("answer") or "can't tell", help=define_metric("ruler"))
            m2.metric("ruler position", "–" if position is None else verdict.position_text(position))
            m3.metric("median accuracy", f"{record['median']:.2f}%")
            m4.metric("models in the zoo's range", f"{record['good']:.0f}%", help=define_metric("good"))
            bounds = (verdict.COPIES_BELOW, verdict.FRESH_FROM, verdict.BEYOND_ABOVE)
            lines = {m: dynamics.positions_tensor(records, m).tolist() for m in ("behaviour", "parameters")}
            lines = {m: [None if math.isnan(v) else v for v in values] for m, values in lines.items() if
                     not all(math.isnan(v) for v in values)}  # NaN (a measure that cannot tell) is left out
            lines["answer"] = [r.get("position") for r in records]
            st.plotly_chart(figures.dynamics_positions(steps, lines, bounds, step), key="train_positions")
            onset, good = dynamics.onset(records), dynamics.first_good(records)
            st.caption(f"Each line is one measure's position (the answer: the smaller of those that can tell). The "
                       f"models reach the zoo's range from step {good if good is not None else '– (never)'}; the "
                       f"onset of copying (from then on every snapshot is judged copies) is "
                       f"{'step ' + str(onset) if onset is not None else 'never within this training'}.")
            st.plotly_chart(figures.dynamics_panels(steps, {
                "accuracy": {"median accuracy (%)": [r["median"] for r in records]},
                "share in the zoo's range (%)": {"good": [r["good"] for r in records]},
                "fidelity to the training latents": {
                    "spread ratio": [r.get("latent_spread_ratio") for r in records],
                    "precision": [r.get("latent_precision") for r in records],
                    "recall": [r.get("latent_recall") for r in records]},
            }, step), key="train_panels")

        st.subheader("Across zoo sizes")
        grid = data.zoo_size_siblings(run)
        sizes = sorted({k for k, *_ in grid})
        if len(sizes) < 2:
            st.info("No other runs of this config with another zoo size (collect.num_checkpoints) are under the runs "
                    "root. Make some with the same settings and `--set collect.num_checkpoints=K` (e.g. 10, 25, 50, "
                    "100), or run notebook 09, and their onsets of copying appear here side by side.")
        else:
            longest = max(r[-1]["step"] for *_, r in grid)
            points = [(k, dynamics.onset(recs), f"{name} (seed {seed})") for k, seed, name, recs in grid]
            st.plotly_chart(figures.onset_by_size(points, longest * 1.5), key="train_onset")
            st.caption(f"{len(grid)} runs of this config with zoo sizes {', '.join(map(str, sizes))}: each point is "
                       f"one run's onset of copying (grey: no onset within its {longest} training steps).")
