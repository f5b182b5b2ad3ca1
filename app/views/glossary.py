"""Glossary: every group of models and every metric of the explorer, one line each."""
import streamlit as st

from app import ui
from pdiff.judge.glossary import GROUPS, METRICS, define_group

NAMES = {"ci": "95% interval", "max_iou": "max IoU", "nn_distance": "NN distance", "nn_agreement": "NN agreement",
         "nn_top_share": "top-3 NN share", "nn_targets": "NN targets", "iou_within": "IoU within",
         "distinct_predictions": "distinct predictions", "ensemble_gain": "ensemble gain",
         "errors_median": "test errors", "latent_spread_ratio": "spread ratio", "latent_fd": "Fréchet distance",
         "latent_precision": "precision", "latent_recall": "recall"}

st.title("Glossary")
ui.intro("The same definitions appear as help text beside the numbers; they come from `pdiff.judge.glossary`, "
         "which the verdict and the notebooks use too.")

st.subheader("Groups of models")
shown = [g for g in GROUPS if g not in ("noise-abs", "noise-rel", "averaged")]
shown[3:3] = ["noise-abs-0.01", "noise-rel-0.1", "averaged-16"]
st.markdown("\n".join(f"- **{g}**: {define_group(g)}" for g in shown))
st.caption("Baselines carry their parameter in the name (noise-abs-SIGMA, noise-rel-SIGMA, averaged-M). They are "
           "the cheap generators of the memorization study (arXiv 2506.07998): a generator worth having beats them.")

st.subheader("Metrics")
st.markdown("\n".join(f"- **{NAMES.get(k, k)}**: {v}" for k, v in METRICS.items()))

st.subheader("How the verdict is reached")
st.markdown(
    "- **Memorized**: the generated models' median max IoU is not clearly below that of the zoo's own checkpoints "
    "(held-out ones when the run has them) or of the autoencoder's reconstructions of them. *Clearly* means the "
    "intervals are apart by more than one step of IoU (one test sample), so **New** needs evidence the measure can "
    "resolve.\n"
    "- **Collapsed**: every generated model makes the same predictions.\n"
    "- **Worse than the zoo**: fewer than half the generated models are within 1 point of the zoo's median.\n"
    "- Diversity (within-group IoU, distinct predictions, where in the zoo the models land) and fidelity are "
    "reported beside the answer; **weak evidence** is flagged when a typical model gets fewer than 20 test samples "
    "wrong, when the zoo's own max IoU is already at 0.99 or more, or when a group has fewer than 10 models.\n"
    "- A **cheap baseline does as well** when its median accuracy reaches the generated models' interval and its "
    "max IoU is no higher than theirs.")
