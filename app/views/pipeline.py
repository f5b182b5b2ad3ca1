"""How it works: the whole method on one screen, with this run's sizes: what is generated, what stays
frozen, and the words the other pages use."""
import streamlit as st

from app import data, diagram, ui
from pdiff.judge.glossary import TERMS

st.title("The whole pipeline")
ui.intro("p-diff learns to generate the parameters of a classifier. Top row: the zoo of checkpoints is normalized and "
         "encoded into short latent codes, and a diffusion model learns to denoise those codes. Bottom row: new codes "
         "are denoised from pure noise, decoded into parameters, set into the classifier and tested. The numbers "
         "are this run's.")

run = ui.selected_run()
with ui.guard(run):
    if ui.need(run, "collect", "the pipeline's sizes"):
        sizes = data.run_anatomy(run)
        st.plotly_chart(diagram.dataflow_diagram(sizes), config={"displayModeBar": False}, key="dataflow")
        target = ", ".join(f"`{name}` ({n:,})" for name, n in sizes.target)
        st.markdown(
            f"**Only part of the classifier is generated.** Of the {sizes.classifier}'s {sizes.total_params:,} "
            f"parameters, the generator makes {sizes.target_params:,}: {target}. The other "
            f"{sizes.frozen_params:,} (the frozen backbone) are the trained classifier's, the same in every model of "
            f"this run. That is why even a rough guess of the generated part is already a working classifier: the "
            f"backbone's features do most of the work (the Denoising page shows decoded noise scoring close to the "
            f"zoo).")
        split = ", ".join(f"{n:,} {name}" for name, n in sizes.splits.items())
        st.caption(f"{sizes.dataset}: inputs {' × '.join(map(str, sizes.input_shape))}, {sizes.num_classes} classes; "
                   f"samples: {split}. Zoo: {sizes.zoo} training checkpoints"
                   + (f", {sizes.heldout} held out" if sizes.heldout else "")
                   + (f"; fresh SGD: {sizes.fresh} checkpoints of an independent run" if sizes.fresh else "") + ".")

st.subheader("The words of the method")
left, right = st.columns(2)
items = list(TERMS.items())
half = (len(items) + 1) // 2
for column, part in ((left, items[:half]), (right, items[half:])):
    column.markdown("\n".join(f"- **{term}**: {text}" for term, text in part))
st.caption("Every metric is defined on the Glossary page and in the help (?) beside each number.")
