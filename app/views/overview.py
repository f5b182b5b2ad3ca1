"""Overview: the answer to "new or copied?" with the ruler and the numbers behind it, the pipeline
with each stage's status, time and training curves, the headline numbers and the config."""
from dataclasses import asdict

import streamlit as st

from app import data, figures, tables, ui
from pdiff.core.config import RunConfig
from pdiff.judge import verdict as answers
from pdiff.judge.glossary import define_metric
from pdiff.pipeline.report import run_lines

ANSWERS = {  # answer -> (label, colour, icon)
    "copies": ("Copies", "orange", ":material/content_copy:"),
    "between": ("Between copies and fresh training", "orange", ":material/compare_arrows:"),
    "like fresh training": ("Like fresh training", "green", ":material/auto_awesome:"),
    "beyond fresh training": ("Beyond fresh training", "blue", ":material/rocket_launch:"),
    "collapsed": ("Collapsed", "red", ":material/compress:"),
    "worse": ("Worse than the zoo", "red", ":material/trending_down:"),
    "can't tell": ("Can't tell on this task", "gray", ":material/help:"),
    "unknown": ("No answer yet", "gray", ":material/hourglass_top:"),
}
STATUS_ICONS = {"good": ":green[:material/check_circle:]", "bad": ":red[:material/cancel:]",
                "unknown": ":gray[:material/help:]"}

st.title("Overview")
ui.intro("Did the generator make new, good models, or copy its training checkpoints? The answer below places the "
         "generated models on a ruler between copies of the training checkpoints (0) and the checkpoints of an "
         "independent SGD run the generator never saw (1, fresh SGD), on their mistakes and on their parameters. It "
         "is computed from this run's metrics (pdiff.judge.verdict), with the numbers and 95% bootstrap intervals it "
         "rests on. Every term is defined on the Glossary page and in the help (?) beside it.")

run = ui.selected_run()

with ui.guard(run):
    if data.done(run, "analyse"):
        result = data.verdict(run)
        label, colour, icon = ANSWERS.get(result.answer, ANSWERS["unknown"]) if data.has_stage(run, "autoencoder") \
            else ("The zoo alone", "gray", ":material/scatter_plot:")
        with st.container(border=True, key="verdict"):
            st.markdown(f"### {icon} :{colour}[{label}]" + (" :gray[(weak evidence)]" if result.weak else ""))
            st.markdown(result.headline)
            for item in result.evidence:
                head, _, rest = item.text.partition(": ")
                st.markdown(f"{STATUS_ICONS.get(item.status, '')} **{head}:** {rest}")
            for caveat in result.caveats:
                st.caption(f":material/warning: {caveat}")
        card = data.scorecard(run)
        ruler = data.table(run).ruler
        measures = [m for m, axis in (ruler or {}).items() if axis.get("resolves")]
        if measures:
            shown = [g for g in ("generated", "fresh", "copies", "ae-reconstruction") if g in card] + [
                g for g in card if g not in ("zoo", "heldout", "generated", "fresh", "copies", "ae-reconstruction")]
            decided = None if result.position is None else (result.decided_by, result.position, result.answer)
            st.plotly_chart(figures.ruler_figure({g: card[g].get("ruler") or {} for g in shown}, measures,
                                                 (answers.COPIES_BELOW, answers.FRESH_FROM, answers.BEYOND_ABOVE),
                                                 shown, decided), key="ruler")
            st.caption("Each row is one measure; a marker is a group's position with its 95% interval. Shading: the "
                       "answer a position gives; the arrow marks the position the answer above was read from (the "
                       "smaller of the generated models' positions). Behaviour: max IoU of wrong test predictions to "
                       "the training checkpoints (linear). Parameters: distance to the nearest training checkpoint "
                       "(log scale).")
        for measure, axis in (ruler or {}).items():
            if not axis.get("resolves"):
                st.caption(f":material/info: No {measure} row on the ruler: {axis.get('why')}.")
        st.markdown("**The numbers behind it** (value [95% bootstrap interval]; hover a column for its meaning)")
        evidence = tables.evidence_frame(card)
        st.dataframe(evidence, width="stretch", key="evidence", height=38 + 35 * len(evidence), column_config={
            title: st.column_config.TextColumn(title, help=define_metric(key)) for key, title, _ in tables.EVIDENCE}
            | {title: st.column_config.TextColumn(title, help=define_metric("ruler")) for _, title in tables.RULER_COLUMNS})
        current = data.table(run)
        if current.alignment:
            st.caption(f":material/swap_horiz: Parameter distances "
                       f"{'between neuron-aligned models' if current.alignment.get('aligned') else 'as stored'}: "
                       f"{current.alignment.get('why')}.")
        if current.runs:
            st.markdown("**The zoo's runs** (checkpoints of one run against pairs from different runs)")
            st.dataframe(current.runs["runs"], hide_index=True, width="stretch", key="zoo_runs")
            st.caption("; ".join(line.strip() for line in run_lines(current.runs)) + ".")
        resolution = data.test_resolution(run)
        if resolution:
            st.caption(f"The test split has {resolution[0]} samples: accuracy moves in steps of {resolution[1]:.3g} "
                       f"points. Groups are defined on the Glossary page; the zoo's own similarity numbers compare "
                       f"each checkpoint with the *other* checkpoints.")
    else:
        ui.need(run, "analyse", "the answer to 'new or copied?'")

st.subheader("Pipeline")
st.page_link("views/pipeline.py", label="How the method works, with this run's sizes: the whole pipeline on one screen",
             icon=":material/schema:")
ui.pipeline(run)

st.subheader("Headline: zoo vs generated")
with ui.guard(run):
    if ui.need(run, "evaluate", "the headline numbers"):
        card = data.scorecard(run)
        if "zoo" in card and "generated" in card:
            zoo, gen = card["zoo"], card["generated"]
            cols = st.columns(4)
            cols[0].metric("Zoo median accuracy", f"{zoo['median']:.2f}%", help=define_metric("median"))
            cols[1].metric("Generated median accuracy", f"{gen['median']:.2f}%",
                           **ui.delta(gen["median"] - zoo["median"], 2, "vs zoo"),
                           help="Against the zoo's median; whether the difference means anything is in the verdict "
                                "above (intervals), not in the arrow.")
            if gen.get("distinct_predictions") is not None:
                same_n = gen.get("zoo_distinct_same_n")
                cols[2].metric("Generated: distinct predictions", f"{gen['distinct_predictions']} of {gen['n']}",
                               **ui.delta(None if same_n is None else gen["distinct_predictions"] - same_n, 0,
                                          f"vs {same_n:.0f} of {gen['n']} zoo checkpoints" if same_n is not None
                                          else ""),
                               help=define_metric("distinct_predictions") + ". " + define_metric("zoo_distinct_same_n"))
            if gen.get("novelty_median") is not None:
                cols[3].metric("Generated novelty (median)", f"{gen['novelty_median']:.3f}",
                               help=define_metric("novelty"))
        st.caption("Every group's numbers are in the table under the answer above; the Accuracy page has best, mean, "
                   "min and standard deviation with intervals.")
        if card.get("generated", {}).get("latent_spread_ratio") is not None:
            st.markdown("**Generator fidelity** (generated latents against the training latents; the floor is what "
                        "two halves of the zoo score against each other)")
            st.dataframe(tables.fidelity_frame(card, "latent", ["generated", "ae-reconstruction", "decoder-only"]),
                         width="stretch", key="headline_fidelity",
                         column_config={title: st.column_config.NumberColumn(format="%.3f")
                                        for _, title in tables.FIDELITY})
            st.caption("More on the Latent space page: per-dimension spread, and the same in parameter space.")

st.subheader("Config")
with ui.guard(run):
    manifest = data.manifest(run)
    config = data.config_dict(run)
    show_all = st.toggle("Show every key (otherwise only keys that differ from the defaults)", key="config_all")
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
