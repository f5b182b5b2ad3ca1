"""Glossary: every group of models and every metric of the explorer, one line each."""
import streamlit as st

from app import ui
from pdiff.judge import verdict as answers
from pdiff.judge.glossary import GROUPS, METRIC_NAMES, METRICS, TERMS, define_group

st.title("Glossary")
ui.intro("The same definitions appear as help text beside the numbers; they come from `pdiff.judge.glossary`, "
         "which the verdict and the notebooks use too.")

st.subheader("The method")
st.markdown("\n".join(f"- **{term}**: {text}" for term, text in TERMS.items()))
st.caption("The whole pipeline page draws them as one diagram, with the sizes of the selected run.")

st.subheader("Groups of models")
shown = [g for g in GROUPS if g not in ("noise-abs", "noise-rel", "averaged")]
shown[3:3] = ["noise-abs-0.01", "noise-rel-0.1", "averaged-16"]
st.markdown("\n".join(f"- **{g}**: {define_group(g)}" for g in shown))
st.caption("Baselines carry their parameter in the name (noise-abs-SIGMA, noise-rel-SIGMA, averaged-M). They are "
           "the cheap generators of the memorization study (arXiv 2506.07998): a generator worth having beats them.")

st.subheader("Metrics")
st.markdown("\n".join(f"- **{METRIC_NAMES[k]}**: {v}" for k, v in METRICS.items()))

st.subheader("How the answer is reached")
st.markdown(
    "- **The ruler**: each group is placed between **copies** (0: training checkpoints with 1% noise) and **fresh "
    "SGD** (1: an independent SGD run from the same start that the generator never saw), on **behaviour** (median "
    "max IoU of wrong test predictions to the training checkpoints, linear) and on **parameters** (median distance "
    "to the nearest training checkpoint, log scale), with a bootstrap interval. A measure whose two ends cannot be "
    "told apart on the task (on digits, models make about ten test errors and behaviour cannot) gives no position.\n"
    "- **Collapsed**: every generated model makes the same predictions. **Worse than the zoo**: fewer than half of "
    "them reach the zoo's range (its 5th-percentile accuracy less a point).\n"
    f"- Otherwise the smaller position of the measures that resolve decides: below {answers.COPIES_BELOW} "
    f"**copies**, below {answers.FRESH_FROM} **between** (closer to the training checkpoints than fresh training "
    f"gets), up to {answers.BEYOND_ABOVE} **like fresh training**, above it **beyond fresh training**; neither "
    "measure resolving: **can't tell**.\n"
    "- Caveats: the generator does not cover the training latents (recall below 0.7 of the zoo's own, or a latent "
    "spread outside 0.7-1.3x); the position's interval reaches into another answer; few test errors or models.\n"
    "- A **cheap baseline gets as far** when it is as accurate and at least as far along the ruler.\n"
    "- The thresholds were chosen on digits and mnist1d against cases of known nature (pdiff/calibration.py): "
    "`python -m benchmarks.bench_verdict` prints the confusion table.")
